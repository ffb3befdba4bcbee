//! Benchmarks of the cache's hot paths, so figures can be quoted:
//! * `check/noop_100x100`: deciding 100 up-to-date phases of 100 unchanged 4 KiB sources
//!   each (sequentially, and in parallel as the saga's blocking threads do);
//! * `hash/cold_64MiB`: a check with an empty stat cache over 64 MiB of sources (16 × 4 MiB,
//!   and 1024 × 64 KiB);
//! * `restore/dir_32MiB`: restoring a deleted 32 MiB directory output (128 × 256 KiB).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use milo::pipeline::{Check, Incremental};
use milo_cache::{Cache, Options, PhaseSpec};
use rayon::prelude::*;

fn spec(root: &Path, name: &str, sources: &str, output: &str) -> PhaseSpec {
    PhaseSpec {
        name: name.into(),
        definition: vec![("command".into(), format!("make {name}"))],
        cwd: root.to_path_buf(),
        sources: vec![sources.into()],
        outputs: vec![output.into()],
        env_inputs: vec![],
        cache: true,
    }
}

/// Writes `count` files of `size` bytes (distinct contents) under `dir`, an hour old.
fn files(dir: &Path, count: usize, size: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let old = filetime::FileTime::from_system_time(SystemTime::now() - Duration::from_secs(3600));
    (0..count).into_par_iter().for_each(|i| {
        let mut bytes = vec![0u8; size];
        let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = chunk.len();
            chunk.copy_from_slice(&x.to_le_bytes()[..n]);
        }
        let p = dir.join(format!("f{i:05}.dat"));
        std::fs::write(&p, bytes).unwrap();
        filetime::set_file_mtime(&p, old).unwrap();
    });
}

/// Checks and records every phase once (as a first run does).
fn first_run(cache: &Cache, root: &Path, specs: &[PhaseSpec]) {
    for s in specs {
        match cache.check(&s.name, &[]).unwrap() {
            Check::Run(d) => {
                let out = root.join(&s.outputs[0]);
                if !out.exists() {
                    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
                    std::fs::write(&out, s.name.as_bytes()).unwrap();
                }
                cache.record(&s.name, &d, &serde_json::json!(s.name), &[]).unwrap();
            }
            other => panic!("{}: {other:?}", s.name),
        }
    }
}

fn noop(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let specs: Vec<PhaseSpec> = (0..100)
        .map(|p| {
            files(&root.join(format!("src/p{p}")), 100, 4096, p);
            spec(
                &root,
                &format!("p{p}"),
                &format!("src/p{p}/**/*.dat"),
                &format!("out/p{p}.txt"),
            )
        })
        .collect();
    let options = Options::new(root.join(".milo/cache"));
    {
        let cache = Cache::open(options.clone(), specs.clone()).unwrap();
        first_run(&cache, &root, &specs);
    }
    // Outputs written just now are racy once: age them as the sources are.
    let old = filetime::FileTime::from_system_time(SystemTime::now() - Duration::from_secs(3600));
    for s in &specs {
        filetime::set_file_mtime(root.join(&s.outputs[0]), old).unwrap();
    }
    let cache = Cache::open(options, specs.clone()).unwrap();
    for s in &specs {
        assert!(matches!(cache.check(&s.name, &[]).unwrap(), Check::Fresh(..)));
    }
    let mut g = c.benchmark_group("check");
    g.throughput(Throughput::Elements(specs.len() as u64));
    g.bench_function("noop_100x100", |b| {
        b.iter(|| {
            for s in &specs {
                let r = cache.check(&s.name, &[]).unwrap();
                assert!(matches!(r, Check::Fresh(..)));
            }
        })
    });
    // Baselines under the same load: the bare stat walk every no-op needs (std's read_dir
    // and a stat of each entry), and find(1) stat'ing the same files.
    g.bench_function("baseline_stat_walk_100x100", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for p in 0..100 {
                for e in std::fs::read_dir(root.join(format!("src/p{p}"))).unwrap() {
                    n += e.unwrap().metadata().unwrap().len();
                }
            }
            n
        })
    });
    g.bench_function("baseline_find_100x100", |b| {
        b.iter(|| {
            let status = std::process::Command::new("find")
                .arg(root.join("src"))
                .args(["-type", "f", "-printf", "%s %T@ %i %C@\\n"])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        })
    });
    g.bench_function("noop_100x100_parallel", |b| {
        b.iter(|| {
            specs.par_iter().for_each(|s| {
                let r = cache.check(&s.name, &[]).unwrap();
                assert!(matches!(r, Check::Fresh(..)));
            })
        })
    });
    g.finish();
}

fn cold(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(64 << 20));
    for (label, count, size) in [
        ("cold_64MiB_16x4MiB", 16, 4 << 20),
        ("cold_64MiB_1024x64KiB", 1024, 64 << 10),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        files(&root.join("src"), count, size, 7);
        let specs = vec![spec(&root, "big", "src/*.dat", "out/big")];
        // Read-only over an absent cache: nothing is cached, so every check hashes it all.
        let options = Options {
            read_only: true,
            ..Options::new(root.join(".milo/cache"))
        };
        let cache = Cache::open(options, specs).unwrap();
        g.bench_function(label, |b| b.iter(|| cache.check("big", &[]).unwrap()));
    }
    g.finish();
}

fn restore(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let root: PathBuf = tmp.path().to_path_buf();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/in.txt"), "in").unwrap();
    files(&root.join("out/site"), 128, 256 << 10, 3);
    let specs = vec![spec(&root, "site", "src/*", "out/site")];
    let cache = Cache::open(Options::new(root.join(".milo/cache")), specs.clone()).unwrap();
    first_run(&cache, &root, &specs);
    let mut g = c.benchmark_group("restore");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(32 << 20));
    g.bench_function("dir_32MiB", |b| {
        b.iter_batched(
            || std::fs::remove_dir_all(root.join("out/site")).unwrap(),
            |()| {
                let r = cache.check("site", &[]).unwrap();
                assert!(matches!(r, Check::Fresh(..)), "{r:?}");
            },
            BatchSize::PerIteration,
        )
    });
    // Baseline under the same load: cp -r of the same directory.
    let reference = root.join("reference");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(root.join("out/site"))
        .arg(&reference)
        .status()
        .unwrap();
    assert!(status.success());
    let copy = root.join("copy");
    g.bench_function("baseline_cp_r_32MiB", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&copy);
            },
            |()| {
                let status = std::process::Command::new("cp")
                    .arg("-r")
                    .arg(&reference)
                    .arg(&copy)
                    .status()
                    .unwrap();
                assert!(status.success());
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, noop, cold, restore);
criterion_main!(benches);
