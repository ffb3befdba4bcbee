//! Tests of the pipeline-file loader: valid files, defaults, and the text of every error.

use std::path::Path;

use milo::pipeline::{OnFail, RetryBackoff};

use super::*;

fn parse(text: &str) -> PipelineFile {
    match PipelineFile::parse("/srv/site/milo.toml", text) {
        Ok(file) => file,
        Err(e) => panic!("{e}"),
    }
}

fn error(text: &str) -> ConfigError {
    PipelineFile::parse("milo.toml", text).expect_err("the file should be rejected")
}

/// Checks the kind and snapshots the full message.
macro_rules! assert_error {
    ($name:literal, $kind:expr, $text:expr) => {{
        let err = error($text);
        assert_eq!(err.kind(), $kind, "{err}");
        insta::assert_snapshot!($name, err.to_string());
    }};
}

const MINIMAL: &str = "name = \"p\"\n[[phase]]\nname = \"a\"\nrun = \"true\"\n";

// ---- valid files ----

#[test]
fn the_documented_example_loads() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/site-build.toml");
    let file = load(&fixture).expect("the example is valid");
    let dir = fixture.parent().expect("has a directory").to_owned();
    assert_eq!(file.path, fixture);
    assert_eq!(file.dir, dir);
    assert_eq!(file.name, "site-build");
    assert!(file.capture_output);
    assert!(!file.fail_fast);
    assert_eq!(file.jobs, Some(4));

    let mut discover = PhaseDef::new("discover", "find content -name '*.md' > files.txt");
    discover.description = "Scan the content directory".into();
    discover.parallel = true;
    discover.timeout = Some(Duration::from_secs(600));

    let mut render = PhaseDef::new("render", "./render.sh");
    render.depends_on = vec!["discover".into()];
    render.parallel = true;
    render.weight = 3.0;
    render.max_logs = 500;
    render.timeout = Some(Duration::from_secs(90));
    render.cwd = Some(dir.join("site"));
    render.env = BTreeMap::from([("RENDER_MODE".into(), "fast".into())]);
    render.policy = PhasePolicy::retry(3)
        .retry_delay(Duration::from_millis(500))
        .retry_backoff(RetryBackoff::Exponential);

    assert_eq!(file.phases, [discover, render]);
}

#[test]
fn absent_keys_take_the_documented_defaults() {
    let file = parse(MINIMAL);
    assert!(file.capture_output);
    assert!(!file.fail_fast);
    assert_eq!(file.jobs, None);
    assert_eq!(file.dir, Path::new("/srv/site"));
    let a = &file.phases[0];
    assert_eq!(a, &PhaseDef::new("a", "true"));
    assert_eq!((a.parallel, a.weight, a.max_logs, a.timeout), (false, 1.0, 200, None));
    assert_eq!(a.policy, PhasePolicy::default());
}

#[test]
fn pipeline_settings_are_read() {
    let file = parse(&format!(
        "capture_output = false\nfail_fast = true\njobs = 1\n{MINIMAL}"
    ));
    assert!(!file.capture_output);
    assert!(file.fail_fast);
    assert_eq!(file.jobs, Some(1));
}

#[test]
fn phases_keep_declaration_order() {
    let mut text = String::from("name = \"p\"\n");
    for name in ["zeta", "alpha", "mu", "beta"] {
        text.push_str(&format!("[[phase]]\nrun = \"x\"\nname = \"{name}\"\n"));
    }
    let names: Vec<_> = parse(&text).phases.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["zeta", "alpha", "mu", "beta"]);
}

#[test]
fn defaults_apply_and_phase_values_win() {
    let file = parse(
        r#"
name = "p"

[defaults]
parallel = true
weight = 2
max_logs = 50
timeout = "10m"
cwd = "build"
description = "a phase"
env = { MODE = "fast", SHARED = "default" }
policy = { on_fail = "retry", max_retries = 2, retry_delay = "2s" }

[[phase]]
name = "inherits"
run = "a"

[[phase]]
name = "overrides"
run = "b"
parallel = false
weight = 0.5
max_logs = 0
timeout = "none"
cwd = "/abs"
description = "own"
env = { SHARED = "phase", EXTRA = "1" }
policy = { max_retries = 5, retry_backoff = "exponential" }
"#,
    );
    let [inherits, overrides] = &file.phases[..] else {
        panic!("two phases")
    };
    assert!(inherits.parallel);
    assert_eq!(inherits.weight, 2.0);
    assert_eq!(inherits.max_logs, 50);
    assert_eq!(inherits.timeout, Some(Duration::from_secs(600)));
    assert_eq!(inherits.cwd.as_deref(), Some(Path::new("/srv/site/build")));
    assert_eq!(inherits.description, "a phase");
    assert_eq!(
        inherits.env,
        BTreeMap::from([("MODE".into(), "fast".into()), ("SHARED".into(), "default".into())])
    );
    assert_eq!(
        inherits.policy,
        PhasePolicy::retry(2).retry_delay(Duration::from_secs(2))
    );

    assert!(!overrides.parallel);
    assert_eq!(overrides.weight, 0.5);
    assert_eq!(overrides.max_logs, 0);
    assert_eq!(overrides.timeout, None);
    assert_eq!(overrides.cwd.as_deref(), Some(Path::new("/abs")));
    assert_eq!(overrides.description, "own");
    assert_eq!(
        overrides.env,
        BTreeMap::from([
            ("EXTRA".into(), "1".into()),
            ("MODE".into(), "fast".into()),
            ("SHARED".into(), "phase".into())
        ])
    );
    // Fields the phase's policy names replace the default's; the others are kept.
    assert_eq!(
        overrides.policy,
        PhasePolicy {
            on_fail: OnFail::Retry,
            max_retries: 5,
            retry_delay: Duration::from_secs(2),
            retry_backoff: RetryBackoff::Exponential
        }
    );
}

#[test]
fn policy_may_be_a_sub_table_and_phases_inline_tables() {
    let file = parse("name = \"p\"\nphase = [{ name = \"x\", run = \"y\" }]\n");
    assert_eq!(file.phases, [PhaseDef::new("x", "y")]);
    let file = parse(&format!("{MINIMAL}[phase.policy]\non_fail = \"skip\"\n"));
    assert_eq!(file.phases[0].policy, PhasePolicy::skip());
}

#[test]
fn durations_accept_numbers_and_strings() {
    let timeout = |value: &str| {
        let file = parse(&format!("{MINIMAL}timeout = {value}\npolicy.retry_delay = {value}\n"));
        let phase = &file.phases[0];
        assert_eq!(phase.timeout, Some(phase.policy.retry_delay));
        phase.policy.retry_delay
    };
    assert_eq!(timeout("90"), Duration::from_secs(90));
    assert_eq!(timeout("1.5"), Duration::from_millis(1500));
    assert_eq!(timeout("\"1m30s\""), Duration::from_secs(90));
    assert_eq!(timeout("\"250ms\""), Duration::from_millis(250));
    assert_eq!(timeout("\"2h\""), Duration::from_secs(7200));
    let file = parse(&format!("{MINIMAL}policy = {{ retry_delay = 0 }}\n"));
    assert_eq!(file.phases[0].policy.retry_delay, Duration::ZERO);
}

// ---- locating the core's errors ----

const CYCLE: &str = r#"name = "p"

[[phase]]
name = "a"
run = "x"
depends_on = ["c", "b"]

[[phase]]
name = "b"
run = "x"
depends_on = ["a"]

[[phase]]
name = "c"
run = "x"
depends_on = ["c"]
"#;

fn at(location: Option<Location>) -> Option<(usize, usize)> {
    location.map(|l| (l.line, l.column))
}

#[test]
fn locate_points_at_names_and_dependency_entries() {
    let file = parse(CYCLE);
    assert_eq!(at(file.phase_location("b")), Some((9, 8)));
    assert_eq!(at(file.dependency_location("a", "b")), Some((6, 20)));
    assert_eq!(at(file.dependency_location("a", "zzz")), None);
    assert_eq!(
        file.phase_location("a").map(|l| l.path),
        Some(PathBuf::from("/srv/site/milo.toml"))
    );

    let cycle = PipelineError::Cycle {
        path: vec!["a".into(), "b".into(), "a".into()],
    };
    assert_eq!(at(file.locate(&cycle)), Some((6, 20)));
    let self_dep = PipelineError::SelfDependency { phase: "c".into() };
    assert_eq!(at(file.locate(&self_dep)), Some((16, 15)));
    let unknown = PipelineError::UnknownDependency {
        phase: "b".into(),
        dependency: "a".into(),
        available: vec![],
    };
    assert_eq!(at(file.locate(&unknown)), Some((11, 15)));
    let duplicate = PipelineError::DuplicatePhase { name: "c".into() };
    assert_eq!(at(file.locate(&duplicate)), Some((14, 8)));
    let weight = PipelineError::InvalidWeight {
        phase: "a".into(),
        weight: -1.0,
    };
    assert_eq!(at(file.locate(&weight)), Some((4, 8)));
    assert_eq!(file.locate(&PipelineError::EmptyName), None);
    assert_eq!(
        file.locate(&PipelineError::DuplicatePhase { name: "nope".into() }),
        None
    );
}

#[test]
fn locate_points_an_invalid_weight_at_the_weight_that_applies() {
    let file = parse(&format!("{MINIMAL}weight = 2\n"));
    let err = PipelineError::InvalidWeight {
        phase: "a".into(),
        weight: 2.0,
    };
    assert_eq!(at(file.locate(&err)), Some((5, 10)));
    let file = parse("name = \"p\"\n[defaults]\nweight = 4\n[[phase]]\nname = \"a\"\nrun = \"x\"\n");
    assert_eq!(at(file.locate(&err)), Some((3, 10)));
}

#[test]
fn report_shows_every_dependency_of_a_cycle() {
    let file = parse(CYCLE);
    let cycle = PipelineError::Cycle {
        path: vec!["a".into(), "b".into(), "a".into()],
    };
    let report = file.report(&cycle);
    assert_eq!(report.kind(), ErrorKind::Pipeline);
    assert_eq!(report.exit_code(), 2);
    insta::assert_snapshot!("report_cycle", report.to_string());
}

// ---- errors ----

#[test]
fn missing_file_names_the_path_and_suggests_init() {
    let err = load("no/such/dir/milo.toml").expect_err("there is no such file");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.location(), None);
    insta::assert_snapshot!("missing_file", err.to_string());
}

#[test]
fn toml_syntax_errors() {
    assert_error!("syntax_unquoted", ErrorKind::Syntax, "name = site\n");
    assert_error!(
        "syntax_duplicate_key",
        ErrorKind::Syntax,
        "name = \"a\"\n\n[[phase]]\nname = \"x\"\nname = \"y\"\n"
    );
}

#[test]
fn unknown_keys_are_named_with_a_suggestion_and_the_valid_keys() {
    let phase = "name = \"p\"\n\n[[phase]]\nname = \"render\"\nrun = \"x\"\ndependson = [\"a\"]\n";
    assert_error!("unknown_key_phase", ErrorKind::UnknownKey, phase);
    assert_error!(
        "unknown_key_top",
        ErrorKind::UnknownKey,
        "name = \"p\"\n[[phases]]\nname = \"a\"\n"
    );
    assert_error!(
        "unknown_key_no_suggestion",
        ErrorKind::UnknownKey,
        &format!("{MINIMAL}command = \"x\"\n")
    );
    assert_error!(
        "unknown_key_phase_key_at_top",
        ErrorKind::UnknownKey,
        "name = \"p\"\nrun = \"make\"\n"
    );
    assert_error!(
        "unknown_key_pipeline_key_in_phase",
        ErrorKind::UnknownKey,
        &format!("{MINIMAL}jobs = 2\n")
    );
    assert_error!(
        "unknown_key_defaults",
        ErrorKind::UnknownKey,
        "name = \"p\"\n[defaults]\nparalel = true\n"
    );
    assert_error!(
        "unknown_key_policy",
        ErrorKind::UnknownKey,
        &format!("{MINIMAL}policy = {{ retries = 3 }}\n")
    );
}

#[test]
fn phase_only_keys_are_refused_in_defaults() {
    assert_error!(
        "defaults_run",
        ErrorKind::UnknownKey,
        &format!("[defaults]\nrun = \"make\"\n{MINIMAL}")
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    assert_error!(
        "type_weight_string",
        ErrorKind::WrongType,
        &format!("{MINIMAL}weight = \"3\"\n")
    );
    assert_error!(
        "type_weight_bool",
        ErrorKind::WrongType,
        &format!("{MINIMAL}weight = true\n")
    );
    assert_error!(
        "type_parallel",
        ErrorKind::WrongType,
        &format!("{MINIMAL}parallel = \"true\"\n")
    );
    assert_error!("type_name", ErrorKind::WrongType, "name = 5\n");
    assert_error!(
        "type_phase_name",
        ErrorKind::WrongType,
        "name = \"p\"\n[[phase]]\nname = [\"a\"]\n"
    );
    assert_error!(
        "type_depends_on",
        ErrorKind::WrongType,
        &format!("{MINIMAL}depends_on = \"b\"\n")
    );
    assert_error!(
        "type_depends_on_entry",
        ErrorKind::WrongType,
        &format!("{MINIMAL}depends_on = [1]\n")
    );
    assert_error!(
        "type_env_value",
        ErrorKind::WrongType,
        &format!("{MINIMAL}env = {{ PORT = 8080 }}\n")
    );
    assert_error!(
        "type_policy",
        ErrorKind::WrongType,
        &format!("{MINIMAL}policy = \"retry\"\n")
    );
    assert_error!(
        "type_max_logs",
        ErrorKind::WrongType,
        &format!("{MINIMAL}max_logs = 2.5\n")
    );
    assert_error!(
        "type_single_phase_table",
        ErrorKind::WrongType,
        "name = \"p\"\n[phase]\nname = \"a\"\nrun = \"x\"\n"
    );
}

#[test]
fn invalid_policy_values_list_the_valid_ones() {
    assert_error!(
        "policy_on_fail",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}policy = {{ on_fail = \"retyr\" }}\n")
    );
    assert_error!(
        "policy_backoff",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}policy = {{ retry_backoff = \"linear\" }}\n")
    );
    assert_error!(
        "policy_max_retries",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}policy = {{ max_retries = -1 }}\n")
    );
    assert_error!(
        "policy_max_retries_huge",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}policy = {{ max_retries = 5000000000 }}\n")
    );
}

#[test]
fn invalid_numbers() {
    assert_error!(
        "weight_negative",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}weight = -1\n")
    );
    assert_error!(
        "weight_infinite",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}weight = inf\n")
    );
    assert_error!(
        "weight_nan",
        ErrorKind::InvalidValue,
        "name = \"p\"\n[defaults]\nweight = nan\n"
    );
    assert_error!("jobs_zero", ErrorKind::InvalidValue, &format!("jobs = 0\n{MINIMAL}"));
}

#[test]
fn invalid_durations() {
    assert_error!(
        "duration_unit",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}timeout = \"3sec\"\n")
    );
    assert_error!(
        "duration_no_unit",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}timeout = \"30\"\n")
    );
    assert_error!(
        "duration_negative",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}policy.retry_delay = -0.5\n")
    );
    assert_error!(
        "duration_zero_timeout",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}timeout = 0\n")
    );
    assert_error!(
        "duration_type",
        ErrorKind::WrongType,
        &format!("{MINIMAL}timeout = true\n")
    );
    assert_error!(
        "duration_none_delay",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}policy.retry_delay = \"none\"\n")
    );
}

#[test]
fn empty_strings_are_refused() {
    assert_error!(
        "empty_run",
        ErrorKind::InvalidValue,
        "name = \"p\"\n[[phase]]\nname = \"a\"\nrun = \"  \"\n"
    );
    assert_error!(
        "empty_phase_name",
        ErrorKind::InvalidValue,
        "name = \"p\"\n[[phase]]\nname = \"\"\nrun = \"x\"\n"
    );
    assert_error!(
        "env_name_with_equals",
        ErrorKind::InvalidValue,
        &format!("{MINIMAL}env = {{ \"A=B\" = \"x\" }}\n")
    );
}

#[test]
fn missing_keys_point_at_the_phase() {
    assert_error!(
        "missing_pipeline_name",
        ErrorKind::MissingKey,
        "# my pipeline\n[[phase]]\nname = \"a\"\nrun = \"x\"\n"
    );
    assert_error!(
        "missing_phase_name",
        ErrorKind::MissingKey,
        &format!("{MINIMAL}\n[[phase]]\nrun = \"x\"\n")
    );
    assert_error!(
        "missing_run",
        ErrorKind::MissingKey,
        &format!("{MINIMAL}\n[[phase]]\nname = \"b\"\n")
    );
}

#[test]
fn a_pipeline_needs_phases() {
    assert_error!("no_phases", ErrorKind::NoPhases, "name = \"p\"\n");
    assert_error!("empty_phase_list", ErrorKind::NoPhases, "name = \"p\"\nphase = []\n");
}

#[test]
fn duplicate_phase_names_show_both_places() {
    assert_error!(
        "duplicate_phase",
        ErrorKind::DuplicatePhase,
        &format!("{MINIMAL}\n[[phase]]\nname = \"b\"\nrun = \"x\"\n\n[[phase]]\nname = \"a\"\nrun = \"y\"\n")
    );
}

#[test]
fn unknown_dependencies_suggest_the_closest_phase() {
    let text = "name = \"p\"\n\n[[phase]]\nname = \"discover\"\nrun = \"x\"\n\n[[phase]]\nname = \"render\"\nrun = \"y\"\ndepends_on = [\"discover\", \"discovr\"]\n";
    assert_error!("unknown_dependency", ErrorKind::UnknownDependency, text);
    assert_error!(
        "unknown_dependency_no_suggestion",
        ErrorKind::UnknownDependency,
        &format!("{MINIMAL}depends_on = [\"zzz\"]\n")
    );
}

#[test]
fn the_first_mistake_in_the_file_is_reported() {
    // Keys are checked in the order they are written, not alphabetically.
    let err = error(&format!("{MINIMAL}weight = \"x\"\nbogus = 1\n"));
    assert_eq!(err.kind(), ErrorKind::WrongType);
    assert_eq!(err.location().map(|l| l.line), Some(5));
    let err = error(&format!("{MINIMAL}zzz = 1\nweight = \"x\"\n"));
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
}

// ---- several mistakes, warnings ----

#[test]
fn every_mistake_is_kept_in_the_order_found() {
    let err = error(
        "name = \"p\"\nfail_fast = \"yes\"\n[[phase]]\nname = \"a\"\nrun = \"x\"\nweight = -1\n[[phase]]\nname = \"b\"\ndepends_on = [\"z\"]\n",
    );
    let kinds: Vec<ErrorKind> = err.errors().map(ConfigError::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::WrongType,
            ErrorKind::InvalidValue,
            ErrorKind::MissingKey,
            ErrorKind::UnknownDependency
        ],
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::WrongType);
    assert_eq!(err.location().map(|l| l.line), Some(2));
    assert!(
        err.to_string().ends_with("error: could not load `milo.toml`: 4 errors"),
        "{err}"
    );
    // One mistake: no count line.
    let one = error(&format!("{MINIMAL}weight = -1\n"));
    assert_eq!(one.errors().count(), 1);
    assert!(!one.to_string().contains("could not load"), "{one}");
}

#[test]
fn retry_settings_without_retry_are_warnings_not_errors() {
    let file = parse(&format!(
        "{MINIMAL}policy = {{ on_fail = \"skip\", max_retries = 2 }}\n"
    ));
    let warnings = file.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].is_warning());
    assert_eq!(warnings[0].location().map(|l| (l.line, l.column)), Some((5, 44)));
    assert!(
        warnings[0]
            .to_string()
            .starts_with("warning: `policy.max_retries` has no effect")
    );
    // `max_retries = 0` asks for nothing.
    let file = parse(&format!("{MINIMAL}policy = {{ max_retries = 0 }}\n"));
    assert!(file.warnings().is_empty());
}

#[test]
fn a_name_refused_for_its_characters_is_one_mistake_not_two() {
    let err = error(
        "name = \"p\"\n[[phase]]\nname = \"a\\u0007\"\nrun = \"x\"\n[[phase]]\nname = \"b\"\nrun = \"x\"\ndepends_on = [\"a\\u0007\"]\n",
    );
    assert_eq!(err.errors().count(), 1, "{err}");
    assert!(err.message().contains("U+0007 (BEL)"), "{err}");
    // Other messages about that phase show the name escaped, never the raw character.
    let err = error(
        "name = \"p\"\n[[phase]]\nname = \"a\\u0007\"\nweight = \"x\"\n[[phase]]\nname = \"a\\u0007\"\nrun = \"x\"\n",
    );
    let text = err.to_string();
    assert!(text.contains("in phase `a\\u{7}`"), "{text}");
    assert!(text.contains("duplicate phase name `a\\u{7}`"), "{text}");
    assert!(!text.contains('\u{7}'), "{text:?}");
}
