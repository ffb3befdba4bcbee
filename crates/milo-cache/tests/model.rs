//! A property test against a from-scratch model: random DAGs of phases, random sequences of
//! edits (change a source, revert it, delete an output, touch without change), and after
//! every run the set of phases that ran is exactly what the model says, and every output
//! holds what a clean build would write.
//!
//! The model: a phase's abstract key is its source content and its direct dependencies'
//! (abstract key, result). With the cache on and large enough, a phase runs iff that key
//! was never recorded for it; otherwise it is up to date (its output is as recorded) or
//! restored (its output was deleted or is from another version).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Build, Def, World, write_atomic};
use milo::pipeline::{Status, Verdict};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Edit {
    /// Sets phase `.0`'s source to version `.1` (possibly the current or an earlier one).
    Source(usize, u8),
    /// Deletes phase `.0`'s output.
    DeleteOutput(usize),
    /// Bumps phase `.0`'s source mtime without changing it.
    Touch(usize),
}

fn content(i: usize, src: &str, deps: &[usize], results: &BTreeMap<usize, String>) -> String {
    let mut s = format!("p{i}:{src}");
    for d in deps {
        s.push_str(&format!("|{}", results[d]));
    }
    s
}

fn defs(w: &World, deps: &[Vec<usize>]) -> Vec<Def> {
    deps.iter()
        .enumerate()
        .map(|(i, ds)| {
            let ds = ds.clone();
            let names: Vec<String> = ds.iter().map(|d| format!("p{d}")).collect();
            let build: Build = Arc::new(move |cwd: &Path, inputs: &serde_json::Value| {
                let src = std::fs::read_to_string(cwd.join(format!("src/p{i}/s.txt"))).map_err(|e| e.to_string())?;
                let results: BTreeMap<usize, String> = ds
                    .iter()
                    .map(|d| {
                        let r = inputs[format!("p{d}")].as_str().unwrap_or("?").to_owned();
                        (*d, r)
                    })
                    .collect();
                let text = content(i, &src, &ds, &results);
                write_atomic(&cwd.join(format!("out/p{i}.txt")), text.as_bytes())?;
                Ok(serde_json::Value::String(text))
            });
            Def {
                spec: w.spec(
                    &format!("p{i}"),
                    &[&format!("src/p{i}/*.txt")],
                    &[&format!("out/p{i}.txt")],
                ),
                deps: names,
                build,
            }
        })
        .collect()
}

/// The model's expectation for the current sources: (phases that run, each output's text).
fn expect(
    deps: &[Vec<usize>],
    src: &[u8],
    seen: &mut [HashSet<String>],
) -> (BTreeSet<String>, BTreeMap<usize, String>) {
    let mut keys: BTreeMap<usize, String> = BTreeMap::new();
    let mut results: BTreeMap<usize, String> = BTreeMap::new();
    let mut ran = BTreeSet::new();
    for (i, ds) in deps.iter().enumerate() {
        let mut key = format!("s{}", src[i]);
        for d in ds {
            key.push_str(&format!("({}:{})", keys[d], results[d]));
        }
        results.insert(i, content(i, &format!("v{}", src[i]), ds, &results));
        if seen[i].insert(key.clone()) {
            ran.insert(format!("p{i}"));
        }
        keys.insert(i, key);
    }
    (ran, results)
}

fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..=8).prop_flat_map(|n| {
        proptest::collection::vec(proptest::collection::vec(any::<bool>(), 8), n).prop_map(|rows| {
            rows.iter()
                .enumerate()
                .map(|(i, row)| (0..i).filter(|&j| row[j] && (i - j) <= 3).collect())
                .collect()
        })
    })
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0usize..8, 0u8..3).prop_map(|(i, v)| Edit::Source(i, v)),
            1 => (0usize..8).prop_map(Edit::DeleteOutput),
            1 => (0usize..8).prop_map(Edit::Touch),
        ],
        1..10,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_phases_that_run_are_the_models(deps in dag(), edits in edits()) {
        let w = World::new();
        let n = deps.len();
        let mut src = vec![0u8; n];
        for i in 0..n {
            w.write(&format!("src/p{i}/s.txt"), "v0");
        }
        let defs = defs(&w, &deps);
        let mut seen = vec![HashSet::new(); n];
        let mut deleted = BTreeSet::new();
        for (step, edit) in std::iter::once(None).chain(edits.into_iter().map(Some)).enumerate() {
            match edit {
                None => {}
                Some(Edit::Source(i, v)) => {
                    let i = i % n;
                    src[i] = v;
                    w.write(&format!("src/p{i}/s.txt"), &format!("v{v}"));
                }
                Some(Edit::DeleteOutput(i)) => {
                    let i = i % n;
                    if w.exists(&format!("out/p{i}.txt")) {
                        w.remove(&format!("out/p{i}.txt"));
                        deleted.insert(format!("p{i}"));
                    }
                }
                Some(Edit::Touch(i)) => {
                    let i = i % n;
                    let t = SystemTime::now() + Duration::from_secs(60 + step as u64);
                    filetime::set_file_mtime(w.path(&format!("src/p{i}/s.txt")), filetime::FileTime::from_system_time(t)).unwrap();
                }
            }
            let (want_ran, want_out) = expect(&deps, &src, &mut seen);
            let o = w.run(&defs);
            prop_assert_eq!(o.status, Status::Completed, "step {}: {:?}", step, o.errors);
            prop_assert_eq!(&o.ran, &want_ran, "step {}: decisions {:?}", step, o.decisions);
            for (i, text) in &want_out {
                let name = format!("p{i}");
                prop_assert_eq!(&w.read(&format!("out/p{i}.txt")), text, "step {}: output of {}", step, name);
                let verdict = o.verdict(&name);
                prop_assert_eq!(verdict == Verdict::Run, want_ran.contains(&name), "step {}: {} {:?}", step, name, o.decisions[&name]);
                if deleted.contains(&name) && !want_ran.contains(&name) {
                    prop_assert_eq!(verdict, Verdict::Restored, "step {}: {}", step, name);
                }
            }
            deleted.clear();
        }
    }
}
