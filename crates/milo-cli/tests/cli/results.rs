//! Results passed between phases: MILO_OUTPUT (a file whose content is the phase's result:
//! JSON if it parses, text otherwise, `null` when empty), MILO_INPUTS (a file with the JSON
//! object of the dependencies' results; a skipped dependency is `null`), and MILO_PIPELINE,
//! MILO_PHASE, MILO_ATTEMPT.

use crate::util::{Test, phase};

const RESULTS: &str = r#"
name = "results"

[[phase]]
name = "json"
run = '''echo '{"pages": 8, "ok": true}' > "$MILO_OUTPUT"'''

[[phase]]
name = "text"
run = '''printf 'hello world\n' > "$MILO_OUTPUT"'''

[[phase]]
name = "empty"
run = "echo this goes to the log, not the result"

[[phase]]
name = "skipped"
run = '''echo '"never"' > "$MILO_OUTPUT"; exit 1'''
policy = { on_fail = "skip" }

[[phase]]
name = "number"
run = '''echo 42 > "$MILO_OUTPUT"'''

[[phase]]
name = "use"
depends_on = ["json", "text", "empty", "skipped", "number"]
run = '''cp "$MILO_INPUTS" inputs.json'''
"#;

#[test]
fn inputs_hold_each_dependencys_result() {
    let t = Test::with(RESULTS).args(["run", "--ui", "plain", "--timeline", "t.json"]);
    t.run().code(0);
    assert_eq!(
        t.json("inputs.json"),
        serde_json::json!({
            "json": {"pages": 8, "ok": true},
            "text": "hello world",
            "empty": null,
            "skipped": null,
            "number": 42,
        })
    );
    let tl = t.json("t.json");
    assert_eq!(phase(&tl, "json")["result"]["pages"], 8);
    assert_eq!(phase(&tl, "text")["result"], "hello world");
    assert!(phase(&tl, "empty")["result"].is_null());
    assert!(phase(&tl, "skipped")["result"].is_null());
}

#[test]
fn results_appear_in_the_json_stream() {
    let run = Test::with(RESULTS).args(["run", "--ui", "json"]).run();
    run.code(0);
    let complete = |name: &str| {
        run.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["type"] == "@@PHASE_COMPLETE" && v["payload"]["name"] == name)
            .unwrap_or_else(|| panic!("no @@PHASE_COMPLETE for {name}\n{}", run.report()))
    };
    assert_eq!(complete("json")["payload"]["result"]["ok"], true);
    assert_eq!(complete("text")["payload"]["result"], "hello world");
    assert!(complete("empty")["payload"]["result"].is_null());
}

#[test]
fn a_phase_without_dependencies_gets_an_empty_object() {
    let toml = "name = \"r\"\n[[phase]]\nname = \"a\"\nrun = 'cp \"$MILO_INPUTS\" in.json'\n";
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    t.run().code(0);
    assert_eq!(t.json("in.json"), serde_json::json!({}));
}

#[test]
fn only_direct_dependencies_are_inputs() {
    let toml = r#"
name = "r"

[[phase]]
name = "a"
run = 'echo 1 > "$MILO_OUTPUT"'

[[phase]]
name = "b"
depends_on = ["a"]
run = 'echo 2 > "$MILO_OUTPUT"'

[[phase]]
name = "c"
depends_on = ["b"]
run = 'cp "$MILO_INPUTS" in.json'
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    t.run().code(0);
    assert_eq!(t.json("in.json"), serde_json::json!({"b": 2}));
}

#[test]
fn commands_see_the_pipeline_phase_and_attempt() {
    let toml = r#"
name = "envy"

[[phase]]
name = "show"
run = 'echo "$MILO_PIPELINE/$MILO_PHASE/$MILO_ATTEMPT"; [ "$MILO_ATTEMPT" -ge 2 ]'
policy = { on_fail = "retry", max_retries = 1, retry_delay = "10ms" }
"#;
    Test::with(toml)
        .args(["run", "--ui", "plain"])
        .run()
        .code(0)
        .stdout_line("[show] │ envy/show/1")
        .stdout_line("[show] │ envy/show/2");
}

#[test]
fn env_and_cwd_from_the_file_reach_the_command() {
    let toml = r#"
name = "envy"

[defaults]
env = { SHARED = "from-defaults", OVERRIDDEN = "defaults" }

[[phase]]
name = "show"
cwd = "work"
env = { OVERRIDDEN = "phase" }
run = 'echo "$SHARED $OVERRIDDEN $(basename "$PWD")"'
"#;
    let t = Test::with(toml).args(["run", "--ui", "plain"]);
    std::fs::create_dir(t.path("work")).unwrap();
    t.run().code(0).stdout_line("[show] │ from-defaults phase work");
}

/// A phase that says whether `MILO_OUTPUT` exists when it starts, and writes the directory it
/// is in to `where.txt`.
const WHERE: &str = r#"
name = "r"

[[phase]]
name = "a"
run = 'if [ -e "$MILO_OUTPUT" ]; then echo exists; else echo absent; fi; dirname "$(dirname "$MILO_OUTPUT")" > where.txt'
"#;

#[test]
fn milo_output_does_not_exist_until_the_command_writes_it() {
    let t = Test::with(WHERE).args(["run", "--ui", "plain"]);
    t.run().code(0).stdout_has("[a] │ absent");
}

#[test]
fn result_files_go_in_tmpdir_when_set_else_on_a_ram_filesystem() {
    let t = Test::with(WHERE)
        .file("tmp/.keep", "")
        .file("xdg/.keep", "")
        .args(["run", "--ui", "plain"]);
    let tmp = t.path("tmp");
    let xdg = t.path("xdg");
    let where_ = |t: &Test| std::path::PathBuf::from(t.read("where.txt").trim_end());

    // An explicit TMPDIR wins over XDG_RUNTIME_DIR.
    let t = t.env("TMPDIR", tmp.to_str()).env("XDG_RUNTIME_DIR", xdg.to_str());
    t.run().code(0);
    assert_eq!(where_(&t), tmp);

    // Without TMPDIR: XDG_RUNTIME_DIR.
    let t = t.env("TMPDIR", None);
    t.run().code(0);
    assert_eq!(where_(&t), xdg);

    // Without either: /dev/shm, where there is one.
    let t = t.env("XDG_RUNTIME_DIR", None);
    t.run().code(0);
    if std::path::Path::new("/dev/shm").is_dir() {
        assert_eq!(where_(&t), std::path::Path::new("/dev/shm"));
    }
}
