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

/// A phase cannot make milo read something other than a regular file: a FIFO (which would
/// block forever) or a link to /dev/zero (which would stream until memory runs out) fails the
/// phase with a clear error, at once.
#[test]
fn a_result_that_is_not_a_regular_file_fails_the_phase() {
    for (run, says) in [
        ("mkfifo $MILO_OUTPUT", "is a FIFO, not a regular file"),
        ("ln -s /dev/zero $MILO_OUTPUT", "is a symbolic link"),
        ("mkdir $MILO_OUTPUT", "is a directory"),
    ] {
        let t = Test::with(&format!("name = \"x\"\n[[phase]]\nname = \"sly\"\nrun = \"{run}\"\n"))
            .args(["run", "--ui", "plain"]);
        let r = t.run();
        r.code(1)
            .stdout_has("its result (MILO_OUTPUT) was not read")
            .stdout_has(says);
        assert!(r.elapsed < std::time::Duration::from_secs(30), "{}", r.report());
    }
}

#[test]
fn a_result_over_the_limit_fails_the_phase() {
    let t =
        Test::with("name = \"x\"\n[[phase]]\nname = \"big\"\nrun = \"head -c 17000000 /dev/zero > $MILO_OUTPUT\"\n")
            .args(["run", "--ui", "plain"]);
    t.run()
        .code(1)
        .stdout_has("is larger than the limit of 16 MiB")
        .stdout_has("max_result_size");
}

/// Each phase reads its own inputs file: one that writes to its `MILO_INPUTS` changes nothing
/// another phase reads. The files are the owner's only.
#[test]
fn phases_cannot_change_each_others_inputs() {
    let t = Test::with(
        r#"
name = "x"
[[phase]]
name = "vandal"
run = "chmod u+w $MILO_INPUTS; echo '{\"forged\": 1}' > $MILO_INPUTS; stat -c %a $(dirname $MILO_OUTPUT) > dir-mode"
[[phase]]
name = "victim"
run = "cat $MILO_INPUTS > seen.json; stat -c %a $MILO_INPUTS > inputs-mode"
"#,
    )
    .args(["run", "--ui", "plain"]);
    t.run().code(0);
    assert_eq!(t.json("seen.json"), serde_json::json!({}));
    assert_eq!(t.read("inputs-mode").trim(), "400");
    assert_eq!(t.read("dir-mode").trim(), "700");
}

/// `-f` must name a regular file (a link to one is fine): a FIFO or a device is refused at
/// once rather than hanging or filling memory.
#[test]
fn the_pipeline_file_must_be_a_regular_file() {
    let t = Test::empty().file("real.toml", "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n");
    nix::unistd::mkfifo(&t.path("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("/dev/zero", t.path("zero")).unwrap();
    std::os::unix::fs::symlink("real.toml", t.path("link.toml")).unwrap();
    let t = t.args(["check", "-f", "fifo"]);
    let r = t.run();
    r.code(2).stderr_has("is a FIFO, not a regular file");
    assert!(r.elapsed < std::time::Duration::from_secs(30));
    let t = t.then(["check", "-f", "zero"]);
    t.run().code(2).stderr_has("is a character device");
    t.then(["check", "-f", "link.toml"]).run().code(0);
}

#[test]
fn max_result_size_sets_the_limit() {
    let t = Test::with(
        "name = \"x\"\nmax_result_size = \"1KiB\"\n[[phase]]\nname = \"big\"\nrun = \"head -c 2000 /dev/zero > $MILO_OUTPUT\"\n",
    )
    .args(["run", "--ui", "plain"]);
    t.run().code(1).stdout_has("is larger than the limit of 1 KiB");
    let t = Test::with("name = \"x\"\nmax_result_size = \"5 lots\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n")
        .args(["check"]);
    t.run().code(2).stderr_has("milo.toml:2:19").stderr_has("unknown unit");
}
