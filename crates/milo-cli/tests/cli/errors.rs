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
