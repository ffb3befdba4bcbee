//! Services in `milo run`: a phase with `service = true` is ready for its dependents when its
//! `ready` probe succeeds (tcp, http, log, cmd), fails them with a clear error when it is not
//! ready in time, and is stopped, with its children, once the other phases are done.
//!
//! The tcp and http servers are this test process: it opens the port only once the service
//! has started and a moment has passed, so a dependent that ran before the probe succeeded
//! would be seen.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::common::processes_with;
use crate::signals::{marker, wait_for};
use crate::util::Test;

const WAIT: Duration = Duration::from_secs(60);

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The pipeline: service `srv` (which writes `started`, then sleeps with `sleep`'s marker in
/// the background and the foreground) and `after`, which depends on it and writes `after`.
fn with_service(ready: &str, sleep: &str) -> Test {
    Test::with(&format!(
        r#"
name = "svc"

[[phase]]
name = "srv"
run = "touch started; sleep {sleep} & sleep {sleep}"
service = true
ready = {ready}

[[phase]]
name = "after"
run = "touch after; echo dependent ran"
depends_on = ["srv"]
"#
    ))
}

/// Waits for `started`, checks that `after` has not run for a while, then serves `port` on
/// a thread: each connection gets `answer(n)` (n counts from 0) written back.
fn serve_after_start(t: &Test, port: u16, answer: fn(usize) -> &'static str) -> std::thread::JoinHandle<()> {
    assert!(
        wait_for(WAIT, || t.path("started").exists()),
        "the service did not start"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !t.path("after").exists(),
        "the dependent ran before the service was ready"
    );
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the probed port");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer(n).as_bytes());
            if n > 50 {
                return;
            }
        }
    })
}

fn run_in_background(t: &Test) -> crate::signals::Running {
    crate::signals::Running::start(t, &["--no-history"])
}

#[test]
fn a_tcp_probe_gates_the_dependents_and_the_service_is_stopped_with_its_children() {
    let port = free_port();
    let sleep = marker();
    let t = with_service(&format!(r#"{{ tcp = "127.0.0.1:{port}", timeout = "60s" }}"#), &sleep);
    let mut milo = run_in_background(&t);
    let _server = serve_after_start(&t, port, |_| "");
    let code = milo.wait(WAIT);
    let out = milo.output();
    assert_eq!(code, Some(0), "{out}");
    assert!(t.path("after").exists(), "{out}");
    let ready = out
        .find("[srv] ready after")
        .unwrap_or_else(|| panic!("no ready line\n{out}"));
    let after = out
        .find("[after] started")
        .unwrap_or_else(|| panic!("no start of after\n{out}"));
    let stopped = out
        .find("[srv] stopped after")
        .unwrap_or_else(|| panic!("no stop line\n{out}"));
    assert!(ready < after && after < stopped, "{out}");
    assert!(out.contains("services: srv stopped"), "{out}");
    assert!(
        processes_with(&sleep).is_empty(),
        "the service's processes outlived the run\n{out}"
    );
}

#[test]
fn an_http_probe_waits_for_a_success_status() {
    let port = free_port();
    let sleep = marker();
    let t = with_service(
        &format!(r#"{{ http = "http://127.0.0.1:{port}/health", timeout = "60s" }}"#),
        &sleep,
    );
    let mut milo = run_in_background(&t);
    // Two "not yet" answers first: the probe must keep trying.
    let _server = serve_after_start(&t, port, |n| {
        if n < 2 {
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        }
    });
    let code = milo.wait(WAIT);
    let out = milo.output();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("[srv] ready after"), "{out}");
    assert!(out.contains("[after] │ dependent ran"), "{out}");
    assert!(processes_with(&sleep).is_empty(), "{out}");
}

#[test]
fn a_log_probe_is_ready_at_the_line() {
    let sleep = marker();
    let t = Test::with(&format!(
        r#"
name = "svc"

[[phase]]
name = "srv"
run = "echo booting; sleep 0.5; test ! -e after && echo 'now listening on 8080'; sleep {sleep}"
service = true
ready = {{ log = "listening on", timeout = "60s" }}

[[phase]]
name = "after"
run = "touch after"
depends_on = ["srv"]
"#
    ));
    let r = t.run_args(["run", "--ui", "plain", "--no-history"]);
    r.code(0)
        .stdout_has("[srv] │ now listening on 8080")
        .stdout_has("[srv] ready after")
        .stdout_has("[after] completed");
    let out = &r.stdout;
    assert!(
        out.find("[srv] │ now listening").unwrap() < out.find("[after] started").unwrap(),
        "{out}"
    );
    assert!(processes_with(&sleep).is_empty(), "{out}");
}

#[test]
fn a_cmd_probe_is_ready_when_the_command_succeeds() {
    let sleep = marker();
    let t = Test::with(&format!(
        r#"
name = "svc"

[[phase]]
name = "srv"
run = "sleep 0.5; touch ready.flag; sleep {sleep}"
service = true
ready = {{ cmd = "test -f ready.flag", timeout = "60s" }}

[[phase]]
name = "after"
run = "test -f ready.flag && echo saw the flag"
depends_on = ["srv"]
"#
    ));
    t.run_args(["run", "--ui", "plain", "--no-history"])
        .code(0)
        .stdout_has("[srv] ready after")
        .stdout_has("[after] │ saw the flag")
        .stdout_has("[srv] stopped after");
    assert!(processes_with(&sleep).is_empty());
}

#[test]
fn a_service_never_ready_fails_its_dependents_after_its_timeout() {
    let port = free_port();
    let sleep = marker();
    let t = with_service(&format!(r#"{{ tcp = "127.0.0.1:{port}", timeout = "1s" }}"#), &sleep);
    let r = t.run_args(["run", "--ui", "plain", "--no-history"]);
    r.code(1)
        .stdout_has(&format!(
            "service `srv` was not ready after 1s: no answer from tcp 127.0.0.1:{port}"
        ))
        .stdout_has("; `after` needs it")
        .stdout_has("[after] failed after 0ms: it needs service `srv`, which was not ready after 1s")
        .stdout_has("2 failed");
    assert!(!t.path("after").exists(), "{}", r.stdout);
    assert!(processes_with(&sleep).is_empty(), "{}", r.stdout);
}

#[test]
fn a_service_that_exits_before_it_is_ready_fails() {
    let t = Test::with(
        r#"
name = "svc"

[[phase]]
name = "srv"
run = "echo oops; exit 3"
service = true
ready = { log = "never printed", timeout = "60s" }

[[phase]]
name = "after"
run = "touch after"
depends_on = ["srv"]
"#,
    );
    t.run_args(["run", "--ui", "plain", "--no-history"])
        .code(1)
        .stdout_has("service `srv` exited before it was ready: ")
        .stdout_has("exited with status 3");
    assert!(!t.path("after").exists());
}

#[test]
fn ready_needs_a_service_and_one_known_check() {
    Test::with("name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\nready = { tcp = \"127.0.0.1:1\" }\n")
        .run_args(["check"])
        .code(2)
        .stderr_has("`ready` in phase `a` only applies to a service");
    Test::with(
        "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\nservice = true\nready = { tcp = \"localhost\" }\n",
    )
    .run_args(["check"])
    .code(2)
    .stderr_has("`ready.tcp` in phase `a` must be HOST:PORT");
    Test::with(
        "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\nservice = true\nready = { htp = \"http://x/\" }\n",
    )
    .run_args(["check"])
    .code(2)
    .stderr_has("unknown key `htp` in `ready` in phase `a`; did you mean `http`?");
}

#[test]
fn the_json_stream_has_the_service_states() {
    let sleep = marker();
    let t = Test::with(&format!(
        r#"
name = "svc"

[[phase]]
name = "srv"
run = "echo up; sleep {sleep}"
service = true
ready = {{ log = "up" }}

[[phase]]
name = "after"
run = "true"
depends_on = ["srv"]
"#
    ));
    let r = t.run_args(["run", "--ui", "json", "--no-history"]);
    r.code(0);
    let states: Vec<(String, String)> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| match v["type"].as_str() {
            Some("@@SERVICE") => Some(("service".to_owned(), v["payload"]["state"].as_str()?.to_owned())),
            Some("@@PHASE_START") => Some(("start".to_owned(), v["payload"]["name"].as_str()?.to_owned())),
            _ => None,
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("start", "srv"),
        ("service", "ready"),
        ("start", "after"),
        ("service", "stopped"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(states, expected, "{}", r.stdout);
    assert!(processes_with(&sleep).is_empty());
}
