//! A test world: a temporary project, phases that build outputs from their sources and
//! their dependencies' results, and runs through the real milo core with a [`Cache`].
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use milo::pipeline::{Phase, PhaseContext, Pipeline, Status, Verdict};
use milo_cache::{Cache, Options, PhaseSpec};
use parking_lot::Mutex;

/// What a phase does when it runs: given cwd, writes its outputs and returns its result.
pub type Build = Arc<dyn Fn(&Path, &serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;

#[derive(Clone)]
pub struct Def {
    pub spec: PhaseSpec,
    pub deps: Vec<String>,
    pub build: Build,
}

pub struct World {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub cache_dir: PathBuf,
    pub calls: Arc<Mutex<BTreeMap<String, u32>>>,
}

#[derive(Debug)]
pub struct Outcome {
    pub ran: BTreeSet<String>,
    pub decisions: BTreeMap<String, (Verdict, String)>,
    pub errors: BTreeMap<String, String>,
    pub status: Status,
    pub logs: BTreeMap<String, Vec<String>>,
    pub results: BTreeMap<String, serde_json::Value>,
}

impl Outcome {
    pub fn verdict(&self, phase: &str) -> Verdict {
        self.decisions[phase].0
    }
    pub fn reason(&self, phase: &str) -> &str {
        &self.decisions[phase].1
    }
    pub fn ran(&self) -> Vec<&str> {
        self.ran.iter().map(String::as_str).collect()
    }
}

/// Writes a file atomically (as a well-behaved build tool does).
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), String> {
    let parent = path.parent().ok_or("no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(|e| e.to_string())?;
    tmp.write_all(content).map_err(|e| e.to_string())?;
    tmp.persist(path).map_err(|e| e.to_string())?;
    Ok(())
}

/// Every file under `dir`, sorted, as (relative path, content).
pub fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.push((rel, std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

impl World {
    pub fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("project");
        std::fs::create_dir_all(&root).unwrap();
        let cache_dir = root.join(".milo/cache");
        World {
            tmp,
            root,
            cache_dir,
            calls: Arc::default(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }

    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }

    pub fn options(&self) -> Options {
        Options::new(&self.cache_dir)
    }

    pub fn spec(&self, name: &str, sources: &[&str], outputs: &[&str]) -> PhaseSpec {
        PhaseSpec {
            name: name.into(),
            definition: vec![
                ("command".into(), format!("build {name}")),
                ("shell".into(), "sh".into()),
            ],
            cwd: self.root.clone(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            env_inputs: Vec::new(),
            cache: true,
        }
    }

    /// The standard phase: sources `src/<name>/**`, output `out/<name>.txt` holding its
    /// sources' contents and its inputs; its result is that text.
    pub fn std_phase(&self, name: &str, deps: &[&str]) -> Def {
        let n = name.to_owned();
        let build: Build = Arc::new(move |cwd: &Path, inputs: &serde_json::Value| {
            let mut text = format!("{n}:");
            for (rel, content) in read_tree(&cwd.join("src").join(&n)) {
                text.push_str(&format!("[{rel}={}]", String::from_utf8_lossy(&content)));
            }
            text.push_str(&format!("<{inputs}>"));
            write_atomic(&cwd.join(format!("out/{n}.txt")), text.as_bytes())?;
            Ok(serde_json::Value::String(text))
        });
        Def {
            spec: self.spec(name, &[&format!("src/{name}/**")], &[&format!("out/{name}.txt")]),
            deps: deps.iter().map(|s| s.to_string()).collect(),
            build,
        }
    }

    pub fn cache(&self, defs: &[Def], options: Options) -> Cache {
        Cache::open(options, defs.iter().map(|d| d.spec.clone()).collect()).unwrap()
    }

    pub fn pipeline(&self, defs: &[Def], cache: Arc<Cache>) -> Pipeline {
        let phases = defs.iter().map(|d| {
            let calls = self.calls.clone();
            let build = d.build.clone();
            let name = d.spec.name.clone();
            let cwd = d.spec.cwd.clone();
            Phase::new(name.clone(), move |cx: &PhaseContext| {
                *calls.lock().entry(name.clone()).or_default() += 1;
                writeln!(cx.stdout(), "built {name}").map_err(|e| e.to_string())?;
                build(&cwd, &cx.inputs_json())
            })
            .depends_on(d.deps.clone())
        });
        Pipeline::new("test", phases)
            .unwrap()
            .capture_output(true)
            .incremental(cache)
    }

    pub fn run(&self, defs: &[Def]) -> Outcome {
        self.run_with(defs, self.options())
    }

    pub fn run_with(&self, defs: &[Def], options: Options) -> Outcome {
        let cache = Arc::new(self.cache(defs, options));
        self.run_cache(defs, cache)
    }

    pub fn run_cache(&self, defs: &[Def], cache: Arc<Cache>) -> Outcome {
        let before = self.calls.lock().clone();
        let out = self.pipeline(defs, cache).run_blocking().unwrap();
        let after = self.calls.lock().clone();
        let ran = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        let mut decisions = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let mut logs = BTreeMap::new();
        let mut results = BTreeMap::new();
        for d in defs {
            let name = &d.spec.name;
            let st = out.state.phase(name).unwrap();
            if let Some(dec) = &st.decision {
                decisions.insert(name.clone(), (dec.verdict, dec.reason.to_string()));
            }
            if let Some(e) = &st.error {
                errors.insert(name.clone(), e.clone());
            }
            if let Some(r) = &st.result {
                results.insert(name.clone(), (**r).clone());
            }
            logs.insert(name.clone(), st.logs.iter().map(|l| l.line.to_string()).collect());
        }
        Outcome {
            ran,
            decisions,
            errors,
            status: out.report.status,
            logs,
            results,
        }
    }
}
