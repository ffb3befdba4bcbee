//! Phases on a real single-node Slurm cluster (`executor = "slurm"`), through the `milo`
//! binary. The cluster is `scripts/slurm-cluster.sh`'s: `scripts/test.sh` starts it before the
//! tests and stops it after; run alone, the first test starts it (and leaves it running; stop
//! it with `scripts/slurm-cluster.sh stop`). Where Slurm is missing and cannot be installed
//! (not root, no apt-get) the cluster tests say so and pass without running; as root, or with
//! `MILO_SLURM_REQUIRED=1`, a cluster that does not start fails them.

mod common;
// Shared with the `cli` tests, which use more of them.
#[allow(dead_code)]
#[path = "cli/pty.rs"]
mod pty;
#[allow(dead_code)]
#[path = "cli/util.rs"]
mod util;

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::processes_with;
use util::{Test, phase};

/// The `SLURM_CONF` of the running test cluster; `None` when Slurm cannot run here.
fn cluster() -> Option<&'static str> {
    static CONF: OnceLock<Option<String>> = OnceLock::new();
    CONF.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/slurm-cluster.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/slurm-cluster.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let required = nix::unistd::geteuid().is_root() || std::env::var_os("MILO_SLURM_REQUIRED").is_some();
        if out.status.code() == Some(2) && !required {
            // The skip is said where the test output shows it.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("SKIPPED: Slurm cannot be installed here, the Slurm tests do not run: {stderr}");
            }
            return None;
        }
        assert!(
            out.status.success(),
            "scripts/slurm-cluster.sh start failed ({:?}):\n{stdout}{stderr}",
            out.status.code()
        );
        let conf = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .expect("the script prints the SLURM_CONF")
            .to_owned();
        Some(conf)
    })
    .as_deref()
}

/// A test directory whose `milo` talks to the test cluster; `None` (with the skip already
/// said) when there is none.
fn on_cluster(toml: &str) -> Option<Test> {
    let conf = cluster()?;
    Some(Test::with(toml).env("SLURM_CONF", Some(conf)))
}

/// A pipeline name no other test uses (job names start with `milo.<name>-`).
fn unique(base: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{base}{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// `squeue`'s not-yet-ended jobs (id, state, name) of pipeline `name`.
fn live_jobs(conf: &str, name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args([
            "--noheader",
            "--states=pending,running,completing,configuring,suspended",
            "--format=%i %T %j",
        ])
        .env("SLURM_CONF", conf)
        .output()
        .expect("squeue");
    assert!(
        out.status.success(),
        "squeue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("milo.{name}-")))
        .map(str::to_owned)
        .collect()
}

/// A `sleep` argument no other process has.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "301.{:07}{:03}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) + 1
    )
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The action types and payloads of a `--ui json` stream.
fn actions(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn the_site_build_runs_with_every_phase_on_slurm() {
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/site-build/milo.toml"
    ))
    .expect("the example");
    let name = unique("site");
    let toml = toml.replace(
        "name = \"site-build\"",
        &format!("name = \"{name}\"\nexecutor = \"slurm\"\n[slurm]\ntime = \"5m\"\n"),
    );
    let Some(t) = on_cluster(&toml) else { return };
    let run = t.run_args(["run", "--ui", "plain", "--timeline", "t.json"]);
    run.code(0)
        .stdout_has(&format!("✓ {name} completed"))
        .stdout_has("index lists 8 pages")
        .stdout_has("[render] │ rendered build/site/page8.html");
    let index = t.read("build/site/index.html");
    assert!(index.contains("page1.html") && index.contains("page8.html"), "{index}");
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "discover")["result"], 8);
    assert_eq!(phase(&tl, "write")["result"]["pages"], 8);
    let mut ids = Vec::new();
    for p in ["discover", "parse", "render", "assets", "write"] {
        let id = phase(&tl, p)["job_id"].as_str().map(str::to_owned);
        let id = id.unwrap_or_else(|| panic!("phase {p} has no job id:\n{tl:#}"));
        assert!(id.parse::<u64>().is_ok(), "{id}");
        assert!(
            run.stdout.contains(&format!("[{p}] queued as job {id}")),
            "{}",
            run.report()
        );
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 5, "every phase has its own job: {ids:?}");
    // The jobs' files are gone with the run.
    let left: Vec<_> = std::fs::read_dir(t.path(".milo/slurm"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(left, [0], "the run's job directory was not removed");
}

#[test]
fn exit_status_stderr_and_results_pass_between_slurm_and_local_phases() {
    let name = unique("mixed");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "make"
run = "echo to-out; echo to-err >&2; echo '{{\"n\": 41, \"where\": \"'$SLURM_JOB_ID'\"}}' > $MILO_OUTPUT"

[[phase]]
name = "local"
executor = "local"
depends_on = ["make"]
run = "test -z \"$SLURM_JOB_ID\" && python3 -c 'import json,os; d=json.load(open(os.environ[\"MILO_INPUTS\"])); print(d[\"make\"][\"n\"] + 1)' > $MILO_OUTPUT"

[[phase]]
name = "back"
depends_on = ["local"]
env = {{ GREETING = "it's me" }}
run = "echo \"$GREETING got $(cat $MILO_INPUTS)\"; echo \"$MILO_PHASE $MILO_ATTEMPT\" > $MILO_OUTPUT"

[[phase]]
name = "fails"
depends_on = ["back"]
run = "echo 'about to fail' >&2; exit 7"
"#
    )) else {
        return;
    };
    let run = t.run_args(["run", "--ui", "plain", "--timeline", "t.json"]);
    run.code(1)
        .stdout_has("[make] running (job ")
        .stdout_has("[make] │ to-out")
        .stdout_has("[make] ! to-err")
        .stdout_has("[back] │ it's me got {\"local\":42}")
        .stdout_has("[fails] ! about to fail")
        .stdout_has("[fails] failed after")
        .stdout_has("command exited with status 7 (Slurm job ");
    // The job is shown running before its first line.
    let running = run.stdout.find("[make] running (job ").unwrap_or(usize::MAX);
    assert!(
        running < run.stdout.find("[make] │ to-out").unwrap_or(0),
        "{}",
        run.report()
    );
    let tl = t.json("t.json");
    let make = phase(&tl, "make");
    assert_eq!(make["result"]["n"], 41);
    // The job saw its own id: it ran under Slurm.
    assert_eq!(make["result"]["where"], make["job_id"], "{tl:#}");
    assert_eq!(phase(&tl, "local")["result"], 42);
    assert!(phase(&tl, "local")["job_id"].is_null());
    assert_eq!(phase(&tl, "back")["result"], "back 1");
    assert_eq!(phase(&tl, "fails")["status"], "failed");
}

#[test]
fn a_failing_job_is_retried_and_the_history_records_every_job_id() {
    let name = unique("retry");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "flaky"
run = "n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; echo attempt $((n + 1)); [ $n -ge 1 ]"
policy = {{ on_fail = "retry", max_retries = 2, retry_delay = 0.1 }}
"#
    )) else {
        return;
    };
    let run = t.run_args(["run", "--ui", "json"]);
    run.code(0);
    let acts = actions(&run.stdout);
    let queued: Vec<String> = acts
        .iter()
        .filter(|a| a["type"] == "@@PHASE_QUEUED")
        .map(|a| a["payload"]["job_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queued.len(), 2, "two attempts, two jobs\n{}", run.report());
    assert_ne!(queued[0], queued[1]);
    assert!(
        acts.iter().any(|a| a["type"] == "@@PHASE_RETRY"
            && a["payload"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("command exited with status 1 (Slurm job "))),
        "{}",
        run.report()
    );
    assert_eq!(t.read("count").trim(), "2");
    let show = t.run_args(["show"]);
    show.code(0).stdout_has(&format!("job {},{}", queued[0], queued[1]));
}

#[test]
fn queued_then_running_in_the_json_stream_and_the_timeout_counts_from_the_start() {
    let name = unique("queue");
    // The job may not start for 3 s (--begin); the 2 s timeout counts from its start.
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "later"
timeout = 2
slurm = {{ extra = ["--begin=now+3"] }}
run = "sleep 0.5; echo started late"
"#
    )) else {
        return;
    };
    let run = t.run_args(["run", "--ui", "json", "--timeline", "t.json"]);
    run.code(0);
    let acts = actions(&run.stdout);
    let kinds: Vec<&str> = acts
        .iter()
        .filter(|a| a["payload"]["name"] == "later")
        .map(|a| a["type"].as_str().unwrap())
        .filter(|k| *k != "@@PHASE_LOG")
        .collect();
    assert_eq!(
        kinds,
        ["@@PHASE_START", "@@PHASE_QUEUED", "@@PHASE_RUNNING", "@@PHASE_COMPLETE"],
        "{}",
        run.report()
    );
    let at = |kind: &str| {
        acts.iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["payload"]["timestamp"].as_f64())
            .unwrap()
    };
    assert!(
        at("@@PHASE_RUNNING") - at("@@PHASE_QUEUED") >= 2.0,
        "it waited in the queue\n{}",
        run.report()
    );
    let queued = acts.iter().find(|a| a["type"] == "@@PHASE_QUEUED").unwrap();
    let running = acts.iter().find(|a| a["type"] == "@@PHASE_RUNNING").unwrap();
    assert_eq!(queued["payload"]["job_id"], running["payload"]["job_id"]);
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "later")["job_id"], queued["payload"]["job_id"]);
}

#[test]
fn a_timeout_cancels_the_job_and_every_process_of_it() {
    let name = unique("tmo");
    let (child, grandchild) = (marker(), marker());
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "stuck"
timeout = 1
run = "sh -c 'trap \"\" TERM; sleep {grandchild}' & sleep {child}; wait"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default();
    let run = t.run_args(["run", "--ui", "plain"]);
    run.code(1)
        .stdout_has("timed out after 1s")
        .stderr_has("milo: cancelled Slurm jobs ");
    assert!(
        live_jobs(conf, &name).is_empty(),
        "jobs left: {:?}",
        live_jobs(conf, &name)
    );
    for m in [&child, &grandchild] {
        assert!(
            wait_for(Duration::from_secs(5), || processes_with(m).is_empty()),
            "job processes left: {:?}",
            processes_with(m)
        );
    }
}

#[test]
fn ctrl_c_cancels_running_and_queued_jobs_and_leaves_nothing() {
    interrupt_cancels_running_and_queued_jobs(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_cancels_running_and_queued_jobs_and_leaves_nothing() {
    interrupt_cancels_running_and_queued_jobs(nix::sys::signal::Signal::SIGTERM);
}

fn interrupt_cancels_running_and_queued_jobs(signal: nix::sys::signal::Signal) {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    let name = unique("intr");
    let (child, grandchild) = (marker(), marker());
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "running"
parallel = true
run = "sh -c 'trap \"\" TERM; sleep {grandchild}' & sleep {child}; wait"

[[phase]]
name = "waiting"
parallel = true
slurm = {{ extra = ["--begin=now+600"] }}
run = "echo never"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default();
    let out = std::fs::File::create(t.path("stdout.txt")).unwrap();
    let err = std::fs::File::create(t.path("stderr.txt")).unwrap();
    let mut milo = Command::new(env!("CARGO_BIN_EXE_milo"))
        .current_dir(t.dir())
        .args(["run", "--ui", "plain"])
        .env("SLURM_CONF", conf)
        .env("MILO_SLURM_STATS", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn milo");
    let output = || {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            std::fs::read_to_string(t.path("stdout.txt")).unwrap_or_default(),
            std::fs::read_to_string(t.path("stderr.txt")).unwrap_or_default()
        )
    };
    let started = wait_for(Duration::from_secs(30), || {
        !processes_with(&format!("sleep {grandchild}")).is_empty() && output().contains("[waiting] queued as job")
    });
    assert!(started, "the jobs did not start and queue\n{}", output());
    assert_eq!(live_jobs(conf, &name).len(), 2, "{:?}", live_jobs(conf, &name));
    kill(Pid::from_raw(milo.id() as i32), signal).expect("kill");
    let exited = wait_for(Duration::from_secs(60), || matches!(milo.try_wait(), Ok(Some(_))));
    assert!(exited, "milo did not exit\n{}", output());
    let code = milo.wait().expect("wait").code();
    assert_eq!(code, Some(130), "{}", output());
    let text = output();
    assert!(text.contains("[running] cancelled after"), "{text}");
    assert!(text.contains("[waiting] cancelled after"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("milo: cancelled Slurm jobs "))
        .unwrap_or_else(|| panic!("no summary of the cancelled jobs\n{text}"));
    assert_eq!(line.matches(", ").count(), 1, "two jobs cancelled: {line}");
    // Both in one scancel.
    assert!(text.contains(" scancel 1\n"), "{text}");
    assert!(
        live_jobs(conf, &name).is_empty(),
        "jobs left: {:?}",
        live_jobs(conf, &name)
    );
    for m in [&child, &grandchild] {
        assert!(
            wait_for(Duration::from_secs(5), || processes_with(m).is_empty()),
            "job processes left: {:?}",
            processes_with(m)
        );
    }
}

#[test]
fn fail_fast_cancels_the_other_running_job() {
    let name = unique("ff");
    let child = marker();
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"
fail_fast = true

[[phase]]
name = "long"
parallel = true
run = "sleep {child}"

[[phase]]
name = "bad"
parallel = true
run = "while [ ! -e running ]; do sleep 0.1; done; exit 4"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default();
    // `bad` fails once `long`'s job runs (the test sees its process and says so).
    let watcher = {
        let (dir, child) = (t.dir().to_owned(), child.clone());
        std::thread::spawn(move || {
            if wait_for(Duration::from_secs(30), || {
                !processes_with(&format!("sleep {child}")).is_empty()
            }) {
                let _ = std::fs::write(dir.join("running"), "");
            }
        })
    };
    let run = t.run_args(["run", "--ui", "plain"]);
    let _ = watcher.join();
    run.code(1)
        .stdout_has("[bad] failed after")
        .stdout_has("command exited with status 4 (Slurm job ")
        .stdout_has("[long] cancelled after")
        .stderr_has("milo: cancelled Slurm jobs ");
    assert!(
        live_jobs(conf, &name).is_empty(),
        "jobs left: {:?}",
        live_jobs(conf, &name)
    );
    assert!(wait_for(Duration::from_secs(5), || processes_with(&format!(
        "sleep {child}"
    ))
    .is_empty()));
}

#[test]
fn resume_after_sigkill_follows_the_still_running_job_instead_of_submitting_it() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let name = unique("resume");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "long"
run = "echo begin; while [ ! -e go ]; do sleep 0.1; done; echo end; echo $SLURM_JOB_ID > $MILO_OUTPUT"

[[phase]]
name = "after"
depends_on = ["long"]
executor = "local"
run = "cat $MILO_INPUTS"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default();
    let out = std::fs::File::create(t.path("first.txt")).unwrap();
    let mut milo = Command::new(env!("CARGO_BIN_EXE_milo"))
        .current_dir(t.dir())
        .args(["run", "--ui", "plain"])
        .env("SLURM_CONF", conf)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn milo");
    let first = || std::fs::read_to_string(t.path("first.txt")).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(30), || first().contains("[long] │ begin")),
        "the job did not start\n{}",
        first()
    );
    // Long enough for the history to have written the job id (it commits every 50 ms).
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(milo.id() as i32), Signal::SIGKILL).expect("kill");
    let _ = milo.wait();
    let jobs = live_jobs(conf, &name);
    assert_eq!(jobs.len(), 1, "the job outlives milo: {jobs:?}");
    let id = jobs[0].split(' ').next().unwrap().to_owned();
    // Let the job end while no milo watches it: the next run reads its exit file.
    std::fs::write(t.path("go"), "").unwrap();
    let t = t.env("MILO_SLURM_STATS", Some("1"));
    let run = t.run_args(["run", "--ui", "plain", "--resume", "--timeline", "t.json"]);
    run.code(0)
        .stderr_has(&format!("following the interrupted run's Slurm jobs {id}"))
        .stderr_has("slurm stats: sbatch 0 ")
        .stdout_has(&format!("[long] queued as job {id}"))
        .stdout_has("[long] │ begin")
        .stdout_has("[long] │ end")
        .stdout_has(&format!("[after] │ {{\"long\":{id}}}"));
    assert_eq!(phase(&t.json("t.json"), "long")["result"].to_string(), id);
    assert!(live_jobs(conf, &name).is_empty());
    let left: Vec<_> = std::fs::read_dir(t.path(".milo/slurm"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(left, [0], "job directories left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_timeline_shows_queued_then_running_and_cancel_pipeline_scancels() {
    use milo_mcp::testing::{call, ended, ok, wait_timeline};
    use rmcp::ServiceExt;
    use rmcp::transport::TokioChildProcess;
    use serde_json::json;

    const WAIT: Duration = Duration::from_secs(30);
    let name = unique("mcp");
    let child = marker();
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "later"
slurm = {{ extra = ["--begin=now+2"] }}
run = "sleep {child}"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default().to_owned();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_milo"));
    cmd.arg("mcp").current_dir(t.dir()).env("SLURM_CONF", &conf);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn milo mcp");
    let client = ().serve(transport).await.expect("connect");
    ok(call(&client, "run_pipeline", json!({})).await.expect("run_pipeline"));
    let queued = wait_timeline(&client, WAIT, "the phase queued with its job id", |tl| {
        phase(tl, "later")["status"] == "queued" && phase(tl, "later")["job_id"].is_string()
    })
    .await;
    let id = phase(&queued, "later")["job_id"].clone();
    let running = wait_timeline(&client, WAIT, "the job running", |tl| {
        phase(tl, "later")["status"] == "running"
    })
    .await;
    assert_eq!(phase(&running, "later")["job_id"], id);
    assert!(wait_for(WAIT, || !processes_with(&format!("sleep {child}")).is_empty()));
    ok(call(&client, "cancel_pipeline", json!({}))
        .await
        .expect("cancel_pipeline"));
    let after = wait_timeline(&client, WAIT, "the run cancelled", ended("cancelled")).await;
    assert_eq!(phase(&after, "later")["status"], "cancelled");
    assert!(
        wait_for(WAIT, || live_jobs(&conf, &name).is_empty()),
        "jobs left: {:?}",
        live_jobs(&conf, &name)
    );
    assert!(wait_for(Duration::from_secs(5), || processes_with(&format!(
        "sleep {child}"
    ))
    .is_empty()));
    let _ = client.cancel().await;
}

#[test]
fn the_progress_view_shows_the_phase_queued_with_its_job_id() {
    let name = unique("prog");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "later"
slurm = {{ extra = ["--begin=now+2"] }}
run = "echo started"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default();
    let run = pty::Pty::run(
        t.dir(),
        &["run", "--ui", "progress"],
        100,
        24,
        &[("SLURM_CONF", conf), ("NO_COLOR", "1")],
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(run.wrote("◷ later".as_bytes()), "{}", run.dump());
    assert!(run.wrote(b"queued as job "), "{}", run.dump());
    assert!(
        run.rows().iter().any(|r| r.contains(&format!("{name} completed"))),
        "{}",
        run.dump()
    );
}

#[test]
fn the_tui_shows_the_phase_queued_with_its_job_id_then_running() {
    use std::io::Read;

    use portable_pty::{CommandBuilder, PtySize, native_pty_system};

    let name = unique("tui");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "later"
slurm = {{ extra = ["--begin=now+2"] }}
run = "echo started; sleep 1"
"#
    )) else {
        return;
    };
    let conf = cluster().unwrap_or_default();
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_milo"));
    cmd.args(["run", "--ui", "tui"]);
    cmd.cwd(t.dir());
    cmd.env("TERM", "xterm-256color");
    cmd.env("SLURM_CONF", conf);
    let mut child = pair.slave.spawn_command(cmd).expect("spawn milo");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut writer = pair.master.take_writer().expect("writer");
    let parser = std::sync::Arc::new(std::sync::Mutex::new(vt100::Parser::new(24, 100, 0)));
    let feed = {
        let parser = parser.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap_or_else(|p| p.into_inner()).process(&buf[..n]);
            }
        })
    };
    let screen = || parser.lock().unwrap_or_else(|p| p.into_inner()).screen().contents();
    let row = |s: &str| s.lines().find(|l| l.contains("later")).unwrap_or("").to_owned();
    assert!(
        wait_for(Duration::from_secs(20), || row(&screen()).contains("queued as job")),
        "never queued:\n{}",
        screen()
    );
    let queued = row(&screen());
    assert!(queued.contains('◷'), "{queued}");
    assert!(
        wait_for(Duration::from_secs(20), || {
            let r = row(&screen());
            r.contains("job ") && !r.contains("queued") && !r.contains('◷')
        }),
        "never running:\n{}",
        screen()
    );
    assert!(
        wait_for(Duration::from_secs(20), || screen().contains("completed")),
        "never completed:\n{}",
        screen()
    );
    std::io::Write::write_all(&mut writer, b"q").expect("press q");
    assert!(wait_for(Duration::from_secs(10), || matches!(
        child.try_wait(),
        Ok(Some(_))
    )));
    drop(writer);
    drop(pair.master);
    let _ = feed.join();
}

#[test]
fn a_busy_controller_is_retried_and_a_killed_job_says_by_what() {
    let name = unique("busy");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "killed"
run = "echo dying; kill -9 $$"
"#
    )) else {
        return;
    };
    // An `sbatch` that answers as a busy controller does, once, then submits.
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v sbatch"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let t = t.file(
        "bin/sbatch",
        &format!(
            "#!/bin/sh\nif [ ! -e busy.once ]; then : > busy.once; \
             echo 'sbatch: error: Batch job submission failed: Socket timed out on send/recv operation' >&2; exit 1; fi\n\
             exec {real} \"$@\"\n"
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path("bin/sbatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        t.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t = t.env("PATH", Some(&path)).env("MILO_SLURM_STATS", Some("1"));
    let run = t.run_args(["run", "--ui", "plain"]);
    run.code(1)
        .stdout_has("[killed] │ dying")
        .stdout_has("command killed by signal SIGKILL")
        .stderr_has("slurm stats: sbatch 2 ");
    assert!(t.path("busy.once").exists());
}

#[test]
fn a_job_the_controller_forgets_without_an_exit_file_fails_after_the_grace_period() {
    let name = unique("gone");
    let Some(t) = on_cluster(&format!(
        r#"
name = "{name}"
executor = "slurm"

[[phase]]
name = "gone"
run = "echo here; kill -9 $PPID"
"#
    )) else {
        return;
    };
    // The job kills its wrapper (so no exit file is written), and this controller forgets
    // jobs at once: `squeue` lists nothing, `scontrol show job` knows no job.
    let real = |p: &str| {
        String::from_utf8(
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    let t = t.file("bin/squeue", "#!/bin/sh\nexit 0\n").file(
        "bin/scontrol",
        &format!(
            "#!/bin/sh\n[ \"$1\" = ping ] && exec {} \"$@\"\n\
                 echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1\n",
            real("scontrol")
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["bin/squeue", "bin/scontrol"] {
            std::fs::set_permissions(t.path(f), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let path = format!(
        "{}:{}",
        t.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t = t.env("PATH", Some(&path)).env("MILO_SLURM_VANISH_GRACE", Some("2"));
    let run = t.run_args(["run", "--ui", "plain"]);
    run.code(1)
        .stdout_has("[gone] failed after")
        .stdout_has("vanished: the controller no longer knows it and it wrote no exit status");
    assert!(
        run.elapsed >= Duration::from_secs(2),
        "failed before the grace period\n{}",
        run.report()
    );
}

#[test]
fn wrong_slurm_options_are_located_errors_at_check_time() {
    // No cluster needed: the file is wrong before anything is submitted.
    let t = Test::with(
        r#"
name = "bad"
executor = "slurm"

[slurm]
mem = "lots"
cpus = 0

[[phase]]
name = "a"
run = "true"
executor = "slurmm"
slurm = { extra = ["--output=x.log"], partiton = "debug" }
"#,
    );
    let run = t.run_args(["check"]);
    run.code(2)
        .stderr_has("`slurm.mem` is not valid: `lots` is not a Slurm memory size")
        .stderr_has("`slurm.cpus` must be at least 1")
        .stderr_has("`executor` in phase `a` must be \"local\" or \"slurm\", found \"slurmm\"; did you mean \"slurm\"?")
        .stderr_has("`--output` is set by milo itself")
        .stderr_has("unknown key `partiton` in `slurm` in phase `a`; did you mean `partition`?")
        .stderr_has("milo.toml:6:");
}

#[test]
fn check_says_when_the_slurm_commands_are_missing() {
    let t = Test::with(
        r#"
name = "nocluster"

[[phase]]
name = "a"
run = "true"
executor = "slurm"
"#,
    )
    .env("PATH", Some("/nonexistent"));
    t.run_args(["check"])
        .code(2)
        .stderr_has("this pipeline runs phases on Slurm, but `sbatch` was not found on PATH")
        .stderr_has("slurm-client");
    t.run_args(["run"]).code(2).stderr_has("`sbatch` was not found on PATH");
}

#[test]
fn check_says_when_the_controller_does_not_answer() {
    if cluster().is_none() {
        return;
    }
    // The commands are installed, but this configuration names a controller nobody runs.
    let t = Test::with(
        r#"
name = "nocontroller"

[[phase]]
name = "a"
run = "true"
executor = "slurm"
"#,
    )
    .file(
        "slurm.conf",
        "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\nAuthType=auth/none\n",
    );
    let t = {
        let conf = t.path("slurm.conf").display().to_string();
        t.env("SLURM_CONF", Some(&conf))
    };
    t.run_args(["check"])
        .code(2)
        .stderr_has("the Slurm controller does not answer")
        .stderr_has("SLURM_CONF");
}
