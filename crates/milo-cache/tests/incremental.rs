//! Incremental runs end to end: real pipelines of the milo core over a [`Cache`], asserting
//! which phases ran, their decisions and reasons, and what is on disk.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Build, Def, World, read_tree, write_atomic};
use milo::pipeline::{Check, DepResult, Dependency, Incremental, Status, Verdict};
use milo_cache::{Cache, Force, Options};

fn chain(w: &World) -> Vec<Def> {
    w.write("src/a/x.txt", "a1");
    w.write("src/b/x.txt", "b1");
    w.write("src/c/x.txt", "c1");
    w.write("src/d/x.txt", "d1");
    vec![
        w.std_phase("a", &[]),
        w.std_phase("b", &["a"]),
        w.std_phase("c", &["b"]),
        w.std_phase("d", &[]),
    ]
}

const ALL: [&str; 4] = ["a", "b", "c", "d"];

#[test]
fn the_first_run_runs_everything_and_the_second_nothing() {
    let w = World::new();
    let defs = chain(&w);
    let first = w.run(&defs);
    assert_eq!(first.status, Status::Completed);
    assert_eq!(first.ran(), ALL);
    for p in ALL {
        assert_eq!(first.verdict(p), Verdict::Run);
        assert_eq!(first.reason(p), "never ran");
    }
    let second = w.run(&defs);
    assert_eq!(second.status, Status::Completed);
    assert!(second.ran.is_empty(), "ran {:?}", second.ran);
    for p in ALL {
        assert_eq!(second.verdict(p), Verdict::UpToDate);
        assert_eq!(second.reason(p), "up to date");
        // The recorded result and lines are replayed.
        assert_eq!(second.results[p], first.results[p]);
        assert_eq!(second.logs[p], [format!("built {p}")]);
    }
}

#[test]
fn an_edited_source_reruns_exactly_its_phase_and_dependents() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    w.write("src/b/x.txt", "b2");
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["b", "c"]);
    assert_eq!(o.reason("b"), "src/b/x.txt changed");
    assert_eq!(o.reason("c"), "dependency `b` produced a different result");
    assert_eq!(o.verdict("a"), Verdict::UpToDate);
    assert_eq!(o.verdict("d"), Verdict::UpToDate);
    assert!(w.read("out/c.txt").contains("b2"));
    assert!(w.run(&defs).ran.is_empty());
}

#[test]
fn a_touch_without_change_reruns_nothing() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    let later = filetime::FileTime::from_system_time(SystemTime::now() + Duration::from_secs(30));
    for p in ALL {
        filetime::set_file_mtime(w.path(&format!("src/{p}/x.txt")), later).unwrap();
    }
    let o = w.run(&defs);
    assert!(o.ran.is_empty(), "ran {:?}", o.ran);
    assert_eq!(o.reason("a"), "up to date");
    assert!(w.run(&defs).ran.is_empty());
}

#[test]
fn an_edit_in_the_same_second_as_the_last_run_is_seen() {
    let w = World::new();
    let defs = chain(&w);
    let src = w.path("src/a/x.txt");
    let mtime = filetime::FileTime::from_last_modification_time(&std::fs::metadata(&src).unwrap());
    w.run(&defs);
    // Same size, same mtime: only the racy rule (and ctime) can tell.
    std::fs::write(&src, "a9").unwrap();
    filetime::set_file_mtime(&src, mtime).unwrap();
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["a", "b", "c"]);
    assert_eq!(o.reason("a"), "src/a/x.txt changed");
}

#[test]
fn added_and_removed_files_are_named_or_counted() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    w.write("src/d/new.txt", "n");
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["d"]);
    assert_eq!(o.reason("d"), "src/d/new.txt added");
    for i in 0..3 {
        w.write(&format!("src/d/more/{i}.txt"), "m");
    }
    let o = w.run(&defs);
    assert_eq!(o.reason("d"), "3 files added to src/d/**");
    w.remove("src/d/new.txt");
    let o = w.run(&defs);
    assert_eq!(o.reason("d"), "src/d/new.txt removed");
    w.remove("src/d/more");
    w.write("src/d/x.txt", "d2");
    let o = w.run(&defs);
    assert_eq!(o.reason("d"), "src/d/x.txt changed; 3 files removed from src/d/**");
}

#[test]
fn many_reasons_are_capped() {
    let w = World::new();
    let defs = chain(&w);
    for i in 0..5 {
        w.write(&format!("src/d/{i}.txt"), "x");
    }
    w.run(&defs);
    for i in 0..5 {
        w.write(&format!("src/d/{i}.txt"), "y");
    }
    let o = w.run(&defs);
    assert_eq!(
        o.reason("d"),
        "src/d/0.txt changed; src/d/1.txt changed; src/d/2.txt changed; and 2 more"
    );
}

#[test]
fn files_under_milo_and_the_phase_outputs_are_not_sources() {
    let w = World::new();
    w.write("gen/in.txt", "i");
    let build: Build = Arc::new(|cwd: &Path, _| {
        write_atomic(&cwd.join("gen/out.txt"), b"o")?;
        Ok(serde_json::json!(1))
    });
    let defs = vec![Def {
        spec: w.spec("g", &["**/*.txt"], &["gen/out.txt"]),
        deps: vec![],
        build,
    }];
    assert_eq!(w.run(&defs).ran(), ["g"]);
    // The cache wrote under .milo, the phase wrote its output: neither is a change.
    w.write(".milo/other/x.txt", "x");
    assert!(w.run(&defs).ran.is_empty());
}

#[test]
fn a_changed_definition_part_reruns_with_its_name() {
    let w = World::new();
    let mut defs = chain(&w);
    w.run(&defs);
    defs[3].spec.definition[0].1 = "build d --fast".into();
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["d"]);
    assert_eq!(o.reason("d"), "command changed");
    defs[3].spec.definition.push(("env".into(), "X=1".into()));
    defs[3].spec.definition[1].1 = "bash".into();
    let o = w.run(&defs);
    assert_eq!(o.reason("d"), "shell changed; env changed");
}

#[test]
fn a_dependency_with_a_new_key_and_the_same_result_is_named() {
    let w = World::new();
    w.write("src/gen/x.txt", "1");
    w.write("src/use/x.txt", "u");
    let constant: Build = Arc::new(|cwd: &Path, _| {
        write_atomic(&cwd.join("out/gen.txt"), b"same")?;
        Ok(serde_json::json!("same"))
    });
    let mut defs = vec![w.std_phase("gen", &[]), w.std_phase("use", &["gen"])];
    defs[0].build = constant;
    w.run(&defs);
    w.write("src/gen/x.txt", "2");
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["gen", "use"]);
    assert_eq!(o.reason("use"), "dependency `gen` changed");
}

#[test]
fn a_deleted_or_edited_output_is_restored_without_running() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    let built = w.read("out/b.txt");
    w.remove("out/b.txt");
    let o = w.run(&defs);
    assert!(o.ran.is_empty(), "ran {:?}", o.ran);
    assert_eq!(o.verdict("b"), Verdict::Restored);
    assert_eq!(o.reason("b"), "output out/b.txt was deleted (restored from cache)");
    assert_eq!(o.verdict("c"), Verdict::UpToDate);
    assert_eq!(w.read("out/b.txt"), built);
    assert_eq!(o.logs["b"], ["built b"]);

    w.write("out/b.txt", "tampered");
    let o = w.run(&defs);
    assert!(o.ran.is_empty());
    assert_eq!(o.reason("b"), "output out/b.txt was modified (restored from cache)");
    assert_eq!(w.read("out/b.txt"), built);
    // After a restore, up to date again.
    assert_eq!(w.run(&defs).reason("b"), "up to date");
}

#[test]
fn without_the_cache_a_missing_output_reruns() {
    let w = World::new();
    let mut defs = chain(&w);
    w.run(&defs);
    w.remove("out/a.txt");
    let o = w.run_with(
        &defs,
        Options {
            use_cache: false,
            ..w.options()
        },
    );
    assert_eq!(o.ran(), ["a"]);
    assert_eq!(o.reason("a"), "output out/a.txt was deleted");
    // A phase with `cache = false` never stores nor restores.
    defs[3].spec.cache = false;
    w.run(&defs);
    w.remove("out/d.txt");
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["d"]);
    assert_eq!(o.reason("d"), "output out/d.txt was deleted");
}

#[test]
fn a_missing_object_costs_a_run_not_a_failure() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    std::fs::remove_dir_all(w.cache_dir.join("objects")).unwrap();
    w.remove("out/a.txt");
    let o = w.run(&defs);
    assert_eq!(o.status, Status::Completed);
    assert_eq!(o.ran(), ["a"]);
    assert_eq!(o.reason("a"), "output out/a.txt was deleted");
    // Its record stored the object again.
    w.remove("out/a.txt");
    assert_eq!(w.run(&defs).verdict("a"), Verdict::Restored);
}

#[test]
fn reverting_a_source_restores_the_earlier_outputs() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    let (a1, b1) = (w.read("out/a.txt"), w.read("out/b.txt"));
    w.write("src/a/x.txt", "a2");
    assert_eq!(w.run(&defs).ran(), ["a", "b", "c"]);
    w.write("src/a/x.txt", "a1");
    let o = w.run(&defs);
    assert!(o.ran.is_empty(), "ran {:?}", o.ran);
    assert_eq!(o.verdict("a"), Verdict::Restored);
    assert_eq!(
        o.reason("a"),
        "src/a/x.txt changed back to an earlier version (restored from cache)"
    );
    assert_eq!(o.verdict("b"), Verdict::Restored);
    assert_eq!(
        o.reason("b"),
        "dependency `a` produced a different result (restored from cache)"
    );
    assert_eq!((w.read("out/a.txt"), w.read("out/b.txt")), (a1, b1));
    // The restored record is now the latest: nothing to do.
    assert!(w.run(&defs).ran.is_empty());
}

fn dir_phase(w: &World) -> Vec<Def> {
    w.write("src/site/page.md", "p");
    let build: Build = Arc::new(|cwd: &Path, _| {
        let out = cwd.join("out/site");
        write_atomic(&out.join("index.html"), b"<html>")?;
        write_atomic(&out.join("assets/app.js"), b"js")?;
        write_atomic(&out.join("run.sh"), b"#!/bin/sh\n")?;
        std::fs::set_permissions(out.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(out.join("empty")).map_err(|e| e.to_string())?;
        let link = out.join("latest");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("index.html", &link).map_err(|e| e.to_string())?;
        }
        Ok(serde_json::json!("site"))
    });
    vec![Def {
        spec: w.spec("site", &["src/site/**"], &["out/site"]),
        deps: vec![],
        build,
    }]
}

#[test]
fn a_directory_output_is_restored_exactly_with_modes_and_links() {
    let w = World::new();
    let defs = dir_phase(&w);
    w.run(&defs);
    let tree = read_tree(&w.path("out/site"));
    w.remove("out/site/assets/app.js");
    w.write("out/site/stale.txt", "stale");
    std::fs::set_permissions(w.path("out/site/run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = w.run(&defs);
    assert!(o.ran.is_empty());
    assert_eq!(
        o.reason("site"),
        "output out/site/assets/app.js was deleted; output out/site/run.sh was modified; \
         output out/site/stale.txt was added (restored from cache)"
    );
    assert_eq!(read_tree(&w.path("out/site")), tree);
    assert!(!w.exists("out/site/stale.txt"));
    let mode = std::fs::metadata(w.path("out/site/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // The whole directory gone: rebuilt, link and empty directory included.
    w.remove("out");
    let o = w.run(&defs);
    assert!(o.ran.is_empty());
    assert_eq!(o.reason("site"), "output out/site was deleted (restored from cache)");
    assert_eq!(read_tree(&w.path("out/site")), tree);
    assert_eq!(
        std::fs::read_link(w.path("out/site/latest")).unwrap(),
        Path::new("index.html")
    );
    assert!(w.path("out/site/empty").is_dir());
    let mode = std::fs::metadata(w.path("out/site/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(w.run(&defs).reason("site"), "up to date");
}

#[test]
fn a_declared_output_not_written_fails_the_phase_and_is_not_recorded() {
    let w = World::new();
    w.write("src/x/a.txt", "a");
    let build: Build = Arc::new(|_: &Path, _| Ok(serde_json::json!(null)));
    let defs = vec![Def {
        spec: w.spec("x", &["src/x/**"], &["out/x"]),
        deps: vec![],
        build,
    }];
    let o = w.run(&defs);
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.errors["x"], "declared output `out/x` was not written by the phase");
    let o = w.run(&defs);
    assert_eq!(o.ran(), ["x"]);
    assert_eq!(o.reason("x"), "never ran");
}

#[test]
fn force_reruns_and_records_the_same_key() {
    let w = World::new();
    let defs = chain(&w);
    w.run(&defs);
    let o = w.run_with(
        &defs,
        Options {
            force: Force::Phases(BTreeSet::from(["b".to_owned()])),
            ..w.options()
        },
    );
    assert_eq!(o.ran(), ["b"]);
    assert_eq!(o.reason("b"), "forced (--force)");
    assert_eq!(o.verdict("c"), Verdict::UpToDate);
    let o = w.run_with(
        &defs,
        Options {
            force: Force::All,
            ..w.options()
        },
    );
    assert_eq!(o.ran(), ALL);
    assert!(w.run(&defs).ran.is_empty());
}

/// Every file under `dir` with a digest of its contents (small enough to print).
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    read_tree(dir)
        .into_iter()
        .map(|(rel, bytes)| (rel, blake3::hash(&bytes).to_hex()[..12].to_owned()))
        .collect()
}

#[test]
fn read_only_decides_and_writes_nothing() {
    let w = World::new();
    let defs = chain(&w);
    let ro = || Options {
        read_only: true,
        ..w.options()
    };
    // No cache yet: everything would run, and no directory appears.
    let cache = w.cache(&defs, ro());
    let check = cache.check("a", &[]).unwrap();
    assert!(
        matches!(&check, Check::Run(d) if &*d.reason == "never ran"),
        "{check:?}"
    );
    assert!(!w.cache_dir.exists());
    drop(cache);

    w.run(&defs);
    let before = snapshot(&w.cache_dir);
    w.remove("out/a.txt");
    w.write("src/d/x.txt", "d2");
    let later = filetime::FileTime::from_system_time(SystemTime::now() + Duration::from_secs(30));
    filetime::set_file_mtime(w.path("src/c/x.txt"), later).unwrap();
    let cache = w.cache(&defs, ro());
    match cache.check("a", &[]).unwrap() {
        Check::Fresh(d, r) => {
            assert_eq!(d.verdict, Verdict::Restored);
            assert_eq!(&*d.reason, "output out/a.txt was deleted (would restore from cache)");
            assert!(r.result.as_str().is_some_and(|s| s.contains("a1")));
        }
        other => panic!("{other:?}"),
    }
    assert!(!w.exists("out/a.txt"), "a dry run restored");
    match cache.check("d", &[]).unwrap() {
        Check::Run(d) => assert_eq!(&*d.reason, "src/d/x.txt changed"),
        other => panic!("{other:?}"),
    }
    let b_result = serde_json::json!("whatever");
    let deps = [Dependency {
        name: "a",
        key: None,
        result: DepResult::Unknown,
    }];
    match cache.check("b", &deps).unwrap() {
        Check::Run(d) => assert_eq!(&*d.reason, "dependency `a` will run"),
        other => panic!("{other:?}"),
    }
    let _ = b_result;
    drop(cache);
    assert_eq!(snapshot(&w.cache_dir), before, "a read-only cache wrote");
}

#[test]
fn eviction_keeps_the_store_under_max_size() {
    let w = World::new();
    let mut defs = Vec::new();
    for i in 0..6 {
        let name = format!("p{i}");
        w.write(&format!("src/{name}/x.txt"), &name);
        let n = name.clone();
        let build: Build = Arc::new(move |cwd: &Path, _| {
            let big: Vec<u8> = (0..10_000u32).map(|j| (j as u8) ^ n.as_bytes()[1]).collect();
            write_atomic(&cwd.join(format!("out/{n}.bin")), &big)?;
            Ok(serde_json::json!(n))
        });
        defs.push(Def {
            spec: w.spec(&name, &[&format!("src/{name}/**")], &[&format!("out/{name}.bin")]),
            deps: if i == 0 { vec![] } else { vec![format!("p{}", i - 1)] },
            build,
        });
    }
    let options = Options {
        max_size: 25_000,
        ..w.options()
    };
    w.run_with(&defs, options.clone());
    let st = milo_cache::status(&w.cache_dir).unwrap();
    assert_eq!(st.entries, 6);
    assert!(st.bytes <= 25_000, "{st}");
    assert_eq!(st.objects, 2, "{st}");
    // The most recently stored are restorable, the evicted ones rerun.
    w.remove("out/p5.bin");
    w.remove("out/p0.bin");
    let o = w.run_with(&defs, options);
    assert_eq!(o.verdict("p5"), Verdict::Restored);
    assert_eq!(o.ran(), ["p0"]);
    assert_eq!(o.reason("p0"), "output out/p0.bin was deleted");

    let report = milo_cache::prune(&w.cache_dir, 0).unwrap();
    assert!(report.freed_bytes >= 10_000, "{report}");
    let st = milo_cache::status(&w.cache_dir).unwrap();
    assert_eq!((st.objects, st.bytes), (0, 0));
    assert!(st.to_string().starts_with("6 entries, 0 objects, 0 B"), "{st}");
    let freed = milo_cache::clean(&w.cache_dir).unwrap();
    assert!(freed > 0);
    assert!(!w.cache_dir.exists());
    assert_eq!(milo_cache::status(&w.cache_dir).unwrap().entries, 0);
}

#[test]
fn two_concurrent_runs_on_one_cache_corrupt_nothing() {
    let w = World::new();
    let defs = chain(&w);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| w.run(&defs));
        let b = s.spawn(|| w.run(&defs));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.status, Status::Completed, "{a:?}");
    assert_eq!(b.status, Status::Completed, "{b:?}");
    let third = w.run(&defs);
    assert!(third.ran.is_empty(), "{third:?}");
    for p in ALL {
        assert_eq!(third.verdict(p), Verdict::UpToDate);
    }
    // And again under edits, both at once.
    w.write("src/a/x.txt", "a3");
    std::thread::scope(|s| {
        let a = s.spawn(|| w.run(&defs));
        let b = s.spawn(|| w.run(&defs));
        assert_eq!(a.join().unwrap().status, Status::Completed);
        assert_eq!(b.join().unwrap().status, Status::Completed);
    });
    assert!(w.run(&defs).ran.is_empty());
}

/// Environment inputs are read from the process environment, so they are exercised in a
/// child process (changing this process's environment is `unsafe` and races other tests).
#[test]
fn env_inputs_rerun_when_they_change() {
    if let Some(dir) = std::env::var_os("MILO_CACHE_ENV_CHILD") {
        let w = World {
            tmp: tempfile::tempdir().unwrap(),
            root: dir.into(),
            cache_dir: Path::new(&std::env::var_os("MILO_CACHE_ENV_CHILD").unwrap()).join(".milo/cache"),
            calls: Default::default(),
        };
        let mut defs = vec![w.std_phase("e", &[])];
        defs[0].spec.env_inputs = vec!["MILO_CACHE_TEST_CFLAGS".into()];
        let o = w.run(&defs);
        std::fs::write(w.path("verdict"), format!("{}|{}", o.ran().join(","), o.reason("e"))).unwrap();
        return;
    }
    let w = World::new();
    w.write("src/e/x.txt", "e");
    let run = |value: Option<&str>| {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["--exact", "env_inputs_rerun_when_they_change"])
            .env("MILO_CACHE_ENV_CHILD", &w.root);
        match value {
            Some(v) => cmd.env("MILO_CACHE_TEST_CFLAGS", v),
            None => cmd.env_remove("MILO_CACHE_TEST_CFLAGS"),
        };
        // Its own test harness output stays out of this one's.
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        w.read("verdict")
    };
    assert_eq!(run(Some("-O2")), "e|never ran");
    assert_eq!(run(Some("-O2")), "|up to date");
    assert_eq!(run(Some("-O3")), "e|MILO_CACHE_TEST_CFLAGS changed");
    assert_eq!(run(None), "e|MILO_CACHE_TEST_CFLAGS changed");
    assert_eq!(run(None), "|up to date");
    // Only digests of values are stored, never the values.
    for file in ["index.db", "index.db-wal"] {
        let bytes = std::fs::read(w.cache_dir.join(file)).unwrap_or_default();
        assert!(!bytes.windows(3).any(|win| win == b"-O3"), "{file} holds an env value");
    }
}

#[test]
fn processes_opening_a_new_cache_at_the_same_moment_all_succeed() {
    // Two `milo run` in a fresh checkout create the index together: setting up a new file
    // (WAL, schema) takes locks SQLite reports busy at once, without its busy timeout.
    for round in 0..20 {
        let w = World::new();
        let dir = w.cache_dir.join(format!("round{round}"));
        let barrier = std::sync::Barrier::new(6);
        std::thread::scope(|s| {
            let opened: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Cache::open(Options::new(&dir), Vec::new()).map(|_| ())
                    })
                })
                .collect();
            for handle in opened {
                let result = handle.join().expect("the thread does not panic");
                assert!(
                    result.is_ok(),
                    "round {round}: {}",
                    result.err().map(|e| e.to_string()).unwrap_or_default()
                );
            }
        });
    }
}
