//! The `Test` builder: a pipeline file in a fresh temporary directory, the `milo` binary run
//! there with some arguments, and assertions on its status, stdout and stderr that print
//! everything the command said when they fail.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long any single `milo` invocation may take before the test fails instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(120);

/// A scratch directory with (usually) a `milo.toml`, and the command line to run in it.
pub struct Test {
    dir: TempDir,
    args: Vec<String>,
    /// Environment changes for `milo`: set (`Some`) or removed (`None`).
    env: Vec<(String, Option<String>)>,
}

impl Test {
    /// An empty directory.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("milo-cli-test")
                .tempdir()
                .expect("tempdir"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A directory holding `milo.toml` with `toml`.
    pub fn with(toml: &str) -> Self {
        Self::empty().file("milo.toml", toml)
    }

    /// Also writes `name` (relative to the directory; parents are created).
    pub fn file(self, name: &str, contents: &str) -> Self {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        self
    }

    /// Appends arguments to the command line.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets (`Some`) or removes (`None`) an environment variable for `milo`.
    pub fn env(mut self, key: &str, value: Option<&str>) -> Self {
        self.env.push((key.to_owned(), value.map(str::to_owned)));
        self
    }

    /// Replaces the command line, to run another command in the same directory.
    pub fn then<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.clear();
        self.args(args)
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Reads a file of the temporary directory.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Parses a JSON file of the temporary directory.
    pub fn json(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
    }

    /// Runs `milo` with the arguments, in the directory.
    pub fn run(&self) -> Run {
        self.run_args(self.args.iter().map(String::as_str))
    }

    /// Runs `milo` with `args` instead of the test's arguments (same directory and
    /// environment), leaving the test as it is.
    pub fn run_args<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Run {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let mut cmd = assert_cmd::Command::cargo_bin("milo").expect("the milo binary");
        cmd.current_dir(self.dir.path())
            .args(&args)
            .env("COLUMNS", "80")
            .env_remove("RUST_LOG")
            .timeout(LIMIT);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let start = Instant::now();
        let out = cmd.output().expect("run milo");
        Run {
            command: format!("milo {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
            dir: self.dir.path().to_owned(),
        }
    }
}

/// What a `milo` invocation did.
pub struct Run {
    command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    dir: PathBuf,
}

impl Run {
    /// Everything about the run, for failure messages.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "`{}` exited with {:?} after {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.code, self.elapsed, self.stdout, self.stderr
        );
        s
    }

    /// Asserts the exit status.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "wrong exit status\n{}", self.report());
        self
    }

    /// Asserts that stdout contains `s`.
    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Self {
        assert!(self.stdout.contains(s), "stdout lacks {s:?}\n{}", self.report());
        self
    }

    /// Asserts that stdout does not contain `s`.
    #[track_caller]
    pub fn stdout_lacks(&self, s: &str) -> &Self {
        assert!(!self.stdout.contains(s), "stdout has {s:?}\n{}", self.report());
        self
    }

    /// Asserts that stderr contains `s`.
    #[track_caller]
    pub fn stderr_has(&self, s: &str) -> &Self {
        assert!(self.stderr.contains(s), "stderr lacks {s:?}\n{}", self.report());
        self
    }

    /// Asserts that stdout has a line that is exactly `line`.
    #[track_caller]
    pub fn stdout_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout.lines().any(|l| l == line),
            "stdout has no line {line:?}\n{}",
            self.report()
        );
        self
    }

    /// Stderr with the temporary directory replaced by `[TMP]`, for snapshots.
    pub fn stderr_redacted(&self) -> String {
        redact(&self.stderr, &self.dir)
    }
}

/// `text` with `dir` (and its canonical form) replaced by `[TMP]`.
pub fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.to_owned();
    let mut dirs = vec![dir.to_owned()];
    if let Ok(c) = dir.canonicalize() {
        dirs.insert(0, c);
    }
    for d in dirs {
        text = text.replace(&*d.to_string_lossy(), "[TMP]");
    }
    text
}

/// The timeline's phase `name`.
#[track_caller]
pub fn phase<'a>(timeline: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    timeline["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no phase {name} in the timeline:\n{timeline:#}"))
}
