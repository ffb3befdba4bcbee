//! Every definition error, as the user sees it: exit status 2, `error:` and the message,
//! `file:line:col`, the line with the spot underlined, and a suggestion where there is one.

use crate::util::Test;

/// Runs `milo check` on `toml`, asserts exit 2 and nothing on stdout, and checks that `milo
/// run` says the same thing; returns stderr.
#[track_caller]
fn error(toml: &str) -> String {
    let t = Test::with(toml);
    let check = Test::with(toml).args(["check"]).run();
    check.code(2);
    assert!(check.stdout.is_empty(), "{}", check.report());
    let t = t.args(["run", "--ui", "plain"]);
    let run = t.run();
    run.code(2);
    assert!(run.stdout.is_empty(), "{}", run.report());
    assert_eq!(run.stderr, check.stderr, "run and check disagree");
    check.stderr_redacted()
}

#[test]
fn toml_syntax() {
    let err = error("name = \"x\"\n\n[[phase]\nname = \"a\"\nrun = \"true\"\n");
    assert!(err.contains("milo.toml:3:"), "{err}");
    insta::assert_snapshot!("toml_syntax", err);
}

#[test]
fn unknown_key_with_suggestion() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\ndependson = [\"b\"]\n");
    assert!(
        err.contains("milo.toml:6:1") && err.contains("did you mean `depends_on`?"),
        "{err}"
    );
    insta::assert_snapshot!("unknown_key", err);
}

#[test]
fn unknown_top_level_key_with_suggestion() {
    let err = error("name = \"x\"\nfailfast = true\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n");
    assert!(
        err.contains("milo.toml:2:1") && err.contains("did you mean `fail_fast`?"),
        "{err}"
    );
    insta::assert_snapshot!("unknown_top_level_key", err);
}

#[test]
fn wrong_type() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\nweight = \"heavy\"\n");
    assert!(err.contains("milo.toml:6:10"), "{err}");
    insta::assert_snapshot!("wrong_type", err);
}

#[test]
fn invalid_policy_value() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\npolicy = { on_fail = \"retyr\" }\n");
    assert!(
        err.contains("milo.toml:6:22") && err.contains("did you mean \"retry\"?"),
        "{err}"
    );
    insta::assert_snapshot!("invalid_policy_value", err);
}

#[test]
fn invalid_duration() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\ntimeout = \"3sec\"\n");
    assert!(err.contains("milo.toml:6:11"), "{err}");
    insta::assert_snapshot!("invalid_duration", err);
}

#[test]
fn missing_run() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\n");
    assert!(err.contains("milo.toml:3:"), "{err}");
    insta::assert_snapshot!("missing_run", err);
}

#[test]
fn missing_file() {
    let run = Test::empty().args(["check"]).run();
    run.code(2);
    insta::assert_snapshot!("missing_file", run.stderr_redacted());
    let run = Test::empty().args(["run", "-f", "nope.toml"]).run();
    run.code(2)
        .stderr_has("no pipeline file at `nope.toml`")
        .stderr_has("milo init");
}

#[test]
fn duplicate_phase() {
    let err =
        error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n\n[[phase]]\nname = \"a\"\nrun = \"false\"\n");
    assert!(err.contains("milo.toml:8:8") && err.contains("milo.toml:4:8"), "{err}");
    insta::assert_snapshot!("duplicate_phase", err);
}

#[test]
fn unknown_dependency() {
    let err = error(
        "name = \"x\"\n\n[[phase]]\nname = \"build\"\nrun = \"true\"\n\n[[phase]]\nname = \"test\"\nrun = \"true\"\ndepends_on = [\"biuld\"]\n",
    );
    assert!(err.contains("milo.toml:10:15"), "{err}");
    insta::assert_snapshot!("unknown_dependency", err);
}

#[test]
fn cycle() {
    let err = error(
        "name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\ndepends_on = [\"c\"]\n\n[[phase]]\nname = \"b\"\nrun = \"true\"\ndepends_on = [\"a\"]\n\n[[phase]]\nname = \"c\"\nrun = \"true\"\ndepends_on = [\"b\"]\n",
    );
    assert!(err.contains("dependency cycle"), "{err}");
    for place in ["milo.toml:6:15", "milo.toml:11:15", "milo.toml:16:15"] {
        assert!(err.contains(place), "{place} missing:\n{err}");
    }
    insta::assert_snapshot!("cycle", err);
}

#[test]
fn self_dependency() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\ndepends_on = [\"a\"]\n");
    assert!(err.contains("milo.toml:6:15"), "{err}");
    insta::assert_snapshot!("self_dependency", err);
}

#[test]
fn errors_name_the_file_as_given() {
    let toml = "name = \"x\"\n[[phase]]\nname = \"a\"\nrun = 1\n";
    Test::empty()
        .file("ci/pipeline.toml", toml)
        .args(["check", "-f", "ci/pipeline.toml"])
        .run()
        .code(2)
        .stderr_has("--> ci/pipeline.toml:4:7");
}

/// A ring of 50,000 phases: the cycle is found in linear time and reported in a few lines
/// (its first and last steps), not one line per phase (this took minutes and megabytes).
#[test]
fn a_huge_cycle_is_found_quickly_and_shown_bounded() {
    let n = 50_000;
    let mut toml = String::from("name = \"ring\"\n");
    for i in 0..n {
        toml.push_str(&format!(
            "[[phase]]\nname = \"p{i}\"\nrun = \"true\"\ndepends_on = [\"p{}\"]\n",
            (i + 1) % n
        ));
    }
    let run = Test::with(&toml).args(["check"]).run();
    run.code(2)
        .stderr_has("p0 → p1 → p2")
        .stderr_has("(49986 more phases, 50000 in the cycle)")
        .stderr_has("p49999 → p0");
    assert!(run.elapsed < std::time::Duration::from_secs(30), "{:?}", run.elapsed);
    assert!(run.stderr.len() < 8_000, "{} bytes of error", run.stderr.len());
}

#[test]
fn every_error_of_the_file_at_once() {
    let err = error(
        "name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\ndependson = [\"b\"]\n\n[[phase]]\nname = \"b\"\nrun = \"true\"\nweight = \"heavy\"\n\n[[phase]]\nname = \"c\"\nrun = \"true\"\ndepends_on = [\"bb\"]\ntimeout = \"5 min\"\n",
    );
    for place in ["milo.toml:6:1", "milo.toml:11:10", "milo.toml:16:15", "milo.toml:17:11"] {
        assert!(err.contains(place), "{place} missing:\n{err}");
    }
    assert_eq!(err.matches("\nerror: ").count() + 1, 5, "{err}");
    assert!(
        err.trim_end().ends_with("error: could not load `milo.toml`: 4 errors"),
        "{err}"
    );
    insta::assert_snapshot!("every_error_at_once", err);
}

#[test]
fn a_duration_in_minutes_suggests_m() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\ntimeout = \"5 min\"\n");
    assert!(
        err.contains("milo.toml:6:11") && err.contains("`min` is not a unit") && err.contains("did you mean `m`?"),
        "{err}"
    );
}

#[test]
fn control_characters_in_names_and_descriptions() {
    let err = error("name = \"x\"\n\n[[phase]]\nname = \"a\\u001b[2Jb\"\nrun = \"true\"\n");
    assert!(
        err.contains("milo.toml:4:8") && err.contains("U+001B (ESC) at character 2"),
        "{err}"
    );
    assert!(err.contains("no control characters"), "{err}");
    insta::assert_snapshot!("control_character_in_name", err);
    for (text, what) in [
        ("description = \"ding\\u0007\"", "U+0007 (BEL)"),
        ("description = \"over\\rwrite\"", "U+000D (CR)"),
        ("description = \"c1\\u009b2J\"", "U+009B (CSI)"),
        ("description = \"\"\"two\nlines\"\"\"", "U+000A (LF, a line break)"),
    ] {
        let err = error(&format!(
            "name = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n{text}\n"
        ));
        assert!(err.contains("milo.toml:6:15") && err.contains(what), "{text}:\n{err}");
    }
    let err = error("name = \"x\\u0007\"\n\n[[phase]]\nname = \"a\"\nrun = \"true\"\n");
    assert!(err.contains("milo.toml:1:8") && err.contains("U+0007 (BEL)"), "{err}");
}

#[test]
fn a_nul_in_a_command_path_or_environment_is_refused_at_load_time() {
    for (line, place) in [
        ("run = \"echo a\\u0000b\"", "milo.toml:5:7"),
        ("run = \"true\"\ncwd = \"dir\\u0000\"", "milo.toml:6:7"),
        ("run = \"true\"\nenv = { A = \"x\\u0000\" }", "milo.toml:6:13"),
    ] {
        let err = error(&format!("name = \"x\"\n\n[[phase]]\nname = \"a\"\n{line}\n"));
        assert!(
            err.contains(place) && err.contains("NUL character (U+0000)"),
            "{line}:\n{err}"
        );
    }
}
