//! The `milo.toml` pipeline file: [`load`] reads and checks one into a [`PipelineFile`].
//!
//! ```toml
//! name = "site-build"
//! capture_output = true        # default true
//! fail_fast = false            # default false
//! jobs = 4                     # optional; default: available parallelism
//! secrets = ["DEPLOY_PASSPHRASE"]  # optional; masked as *** (see below)
//! secret_patterns = ["*TOKEN*"]    # optional; default DEFAULT_SECRET_PATTERNS
//!
//! [defaults]                   # optional defaults for every phase
//! parallel = true
//! timeout = "10m"
//!
//! [[phase]]
//! name = "discover"
//! run = "find content -name '*.md' > files.txt"
//!
//! [[phase]]
//! name = "render"
//! run = "./render.sh"
//! depends_on = ["discover"]
//! weight = 3
//! env = { RENDER_MODE = "fast" }
//! policy = { on_fail = "retry", max_retries = 3, retry_delay = 0.5, retry_backoff = "exponential" }
//! ```
//!
//! Phase keys: `name` and `run` (required), `description`, `depends_on`, `parallel`, `weight`,
//! `max_logs`, `timeout`, `cwd`, `env`, `policy` (`on_fail`, `max_retries`, `retry_delay`,
//! `retry_backoff`), and for incremental runs `sources` (globs relative to the phase's `cwd`;
//! `**`, `{a,b}`, a leading `!` excludes), `outputs` (files or directories), `env_inputs`
//! (names of variables of milo's environment) and `cache` (default true); `shell` (words or
//! an array: the shell and its arguments before the command line, default `sh -c`); for
//! `milo watch`, `on_change` (`"queue"`, the default, or `"restart"`); and phase-only
//! `service = true` with `ready = { http | tcp | log | cmd = "…", timeout = "10s" }` (see
//! [`ServiceDef`]). A phase with
//! `sources` or `outputs` runs only when one of them, its definition, an `env_inputs` value or
//! a dependency's result changed; `cache_max_size` (top level, default 5 GiB) bounds the
//! cache of outputs. `[defaults]` takes any phase key but `name`, `run` and `depends_on`; a
//! phase's own value wins, `env` tables merge (the phase's variables win) and a phase's `policy`
//! replaces only the fields it names. Durations (`timeout`, `retry_delay`) are seconds (a
//! number) or strings such as `"1m30s"` (see [`duration`]); `timeout = "none"` removes a default
//! timeout. A relative `cwd` is resolved against the pipeline file's directory.
//!
//! Secrets: the values of the variables `secrets` names, and of those whose names match a
//! `secret_patterns` entry (`*` matches anything, case-insensitively; default
//! [`DEFAULT_SECRET_PATTERNS`]; `[]` turns patterns off), from the phases' `env` and from
//! milo's own environment, are masked as `***` in everything milo shows or records.
//!
//! Parameters (see [`params`]):
//!
//! ```toml
//! [params.target]
//! type = "string"                 # string | int | float | bool | list (default "string")
//! default = "debug"
//! choices = ["debug", "release"]
//! help = "Build profile"
//!
//! [params.version]
//! required = true                 # a parameter needs a `default` or `required = true`
//! ```
//!
//! A parameter's value is `-p NAME=VALUE` (given in [`ParamInputs::cli`]), else
//! `MILO_PARAM_<NAME>` of the environment, else its `default`; a `list` is comma-separated
//! there. An unknown `-p` name, a value of the wrong type or outside `choices`, and (when
//! [`ParamInputs::require_all`]) a required parameter without a value are located
//! [`ErrorKind::Param`] errors. The values are in [`PipelineFile::params`] and
//! [`resolved_params`], and every phase's `env` gets `MILO_PARAM_<NAME>` (upper-cased, a list
//! comma-joined; the phase's own `env` wins), so the cache key follows them.
//!
//! Templates: `run`, `cwd`, `env` values, `sources`, `outputs` and `description` (of phases and
//! `[defaults]`) are minijinja templates rendered at load time with `params` and, in a matrix
//! phase, `matrix`; an undefined variable is an error naming the phase, the key and the
//! variable (strict undefined mode). Only `{{ … }}` and `{% … %}` are template syntax (the
//! comment syntax is moved out of the way of the shell's `${#x}`); a literal `{{` is written
//! `{{ "{{" }}`. A string without `{{` or `{%` is taken as it is.
//!
//! Matrix phases (see [`matrix`]):
//!
//! ```toml
//! [[phase]]
//! name = "test"
//! run = "pytest --python {{ matrix.python }} -m {{ matrix.suite }}"
//! matrix = { python = ["3.11", "3.12"], suite = ["unit", "integration"] }  # or "{{ params.pythons }}"
//! matrix_exclude = [{ python = "3.11", suite = "integration" }]
//! matrix_include = [{ python = "3.14", suite = "unit" }]
//! ```
//!
//! expand into one [`PhaseDef`] per combination, named `test[python=3.12,suite=unit]` (keys in
//! the order written), with [`PhaseDef::matrix`] set and `MILO_MATRIX_<KEY>` in its `env`.
//! `depends_on = ["test"]` means every instance, `"test[python=3.12,*]"` the matching ones (a
//! selector matching none is an error); [`PipelineFile::select`] resolves `--only` the same
//! way. `[defaults]` cannot use `matrix`.
//!
//! `run` may be a list of commands: one script that runs them in order and stops at the first
//! failure (each but the last as `{ COMMAND\n} || exit $?`).
//!
//! Env files: `env_file = ".env"` (or `{ path = ".env", required = false }`) at the top level,
//! in `[defaults]` or in a phase, read with dotenvy relative to [`PipelineFile::dir`] when the
//! file is loaded; a top-level `env` table too. A phase's [`PhaseDef::env`] holds, lowest
//! first: the pipeline's `env_file`, the pipeline's `env`, the phase's `env_file` (else
//! `[defaults]`'), `[defaults]`' `env`, the phase's `env` — then `MILO_PARAM_*` and
//! `MILO_MATRIX_*` where not set.
//!
//! Includes (see `load`'s `include` module): `include = ["ci/common.toml", { path =
//! "web/milo.toml", cwd = "web", required = false }]` reads other files' `[[phase]]`s and
//! `[defaults]` (a default set in two files, and a phase defined twice, are errors naming both
//! places); included phases run in [`PipelineFile::dir`] unless the entry gives a `cwd`.
//! [`PipelineFile::files`] lists every file read. Spans of the loader carry the index of their
//! file (0: this one).
//!
//! Without `-f`, the `milo` command reads the nearest `milo.toml` of the current directory
//! and its parents (`crate::cli::discover`), named relatively (`../milo.toml`).
//!
//! The loader reports every mistake it can see cheaply (types, unknown keys, missing keys,
//! duplicate phase names, dependencies on names that are not phases, control characters in
//! names and descriptions, NUL characters in commands, paths and environment values) as a
//! [`ConfigError`] that points into the file — all of them at once, as a compiler does
//! ([`ConfigError::errors`]). Settings that are valid but have no effect are
//! [`PipelineFile::warnings`]. Cycles are found by the core's `Pipeline::new`; point its
//! [`PipelineError`] at the file with [`PipelineFile::locate`] or [`PipelineFile::report`].

pub mod duration;
mod error;
mod load;
pub mod matrix;
pub mod params;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use milo::pipeline::{PhasePolicy, PipelineError};

pub use error::{ConfigError, ErrorKind, Location};
pub(crate) use load::parse_size;
pub use params::{Param, ParamInputs, ParamSource, ParamType, ParamValue};

use error::SourceFile;

/// The variable names whose values are secret unless `secret_patterns` says otherwise.
pub const DEFAULT_SECRET_PATTERNS: &[&str] = &["*TOKEN*", "*SECRET*", "*PASSWORD*", "*_KEY"];

/// The pipeline file the `milo` command looks for when none is named.
pub const DEFAULT_FILE: &str = "milo.toml";

/// A checked pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineFile {
    /// The file, as it was named.
    pub path: PathBuf,
    /// The directory holding the file, made absolute: relative `cwd`s are resolved against it,
    /// and it is the natural working directory of phases with no `cwd`.
    pub dir: PathBuf,
    /// The pipeline's name.
    pub name: String,
    /// Whether command output is captured into the phase's logs (default true).
    pub capture_output: bool,
    /// Whether the first failure cancels running phases (default false).
    pub fail_fast: bool,
    /// How many phases may run at once; `None`: the available parallelism.
    pub jobs: Option<usize>,
    /// The largest result a phase may write to `MILO_OUTPUT`, in bytes (`None`: 16 MiB).
    pub max_result_size: Option<u64>,
    /// The most the output cache may hold, in bytes (`None`: 5 GiB).
    pub cache_max_size: Option<u64>,
    /// `secrets`: variables whose values are masked, whatever their names.
    pub secrets: Vec<String>,
    /// `secret_patterns` ([`DEFAULT_SECRET_PATTERNS`] when absent): names whose values are
    /// masked.
    pub secret_patterns: Vec<String>,
    /// The parameters (`[params.NAME]`), in declaration order, with their values.
    pub params: Vec<Param>,
    /// The phases, in declaration order (a matrix phase's instances in its place).
    pub phases: Vec<PhaseDef>,
    source: String,
    /// The files `include`d (and those they include), as named, with their text.
    included: Vec<(PathBuf, String)>,
    places: Vec<PhasePlaces>,
    warnings: Vec<ConfigError>,
}

/// One `[[phase]]`, with `[defaults]` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseDef {
    /// Unique, non-empty.
    pub name: String,
    /// The shell command.
    pub run: String,
    /// Default empty.
    pub description: String,
    /// Names of phases this one waits for, as written (each is a phase of the file).
    pub depends_on: Vec<String>,
    /// Whether the phase may run alongside others (default false).
    pub parallel: bool,
    /// Share of the progress bar (default 1; finite, ≥ 0).
    pub weight: f64,
    /// Log lines kept (default 200).
    pub max_logs: usize,
    /// Time limit (default none).
    pub timeout: Option<Duration>,
    /// Working directory, already resolved against [`PipelineFile::dir`] (default none).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (`[defaults]`' merged with the phase's).
    pub env: BTreeMap<String, String>,
    /// What happens on failure.
    pub policy: PhasePolicy,
    /// Globs of the files its result depends on, relative to its `cwd` (`!` excludes).
    pub sources: Vec<String>,
    /// The files and directories it produces, relative to its `cwd`.
    pub outputs: Vec<String>,
    /// Environment variables of milo's own environment its result depends on.
    pub env_inputs: Vec<String>,
    /// Whether its outputs are stored in and restored from the cache (default true).
    pub cache: bool,
    /// The shell and its arguments before the command line (`None`: `sh -c`).
    pub shell: Option<Vec<String>>,
    /// For an instance of a matrix phase: the phase and the instance's values.
    pub matrix: Option<MatrixCell>,
    /// Where its command runs (default local).
    pub executor: ExecutorKind,
    /// Its Slurm options: the top-level `[slurm]`, under `[defaults]`' `slurm`, under its own.
    pub slurm: SlurmOptions,
    /// `service = true` (with its `ready` check): a long-running phase.
    pub service: Option<ServiceDef>,
    /// What `milo watch` does when this phase's inputs change while it runs.
    pub on_change: OnChange,
}

/// A service phase's readiness check (`ready = { tcp = "127.0.0.1:5432", timeout = "10s" }`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDef {
    /// What makes it ready.
    pub ready: ReadyDef,
    /// How long it may take (default 30 s).
    pub timeout: Duration,
}

/// When a service is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyDef {
    /// No `ready`: as soon as it started.
    Started,
    /// `http = "http://127.0.0.1:8080/health"`: a GET answered with a 2xx or 3xx status.
    Http(String),
    /// `tcp = "127.0.0.1:5432"`: a TCP connection is accepted.
    Tcp(String),
    /// `log = "listening on"`: a line of its output contains the text.
    Log(String),
    /// `cmd = "pg_isready"`: the command exits with status 0.
    Cmd(String),
}

/// `on_change`: what a change to a running phase's inputs does under `milo watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// `"queue"` (default): the phase finishes; the change starts the next cycle.
    #[default]
    Queue,
    /// `"restart"`: the phase is interrupted and runs again in the next cycle.
    Restart,
}

/// Where a phase's command runs: `executor = "local"` (the default) or `"slurm"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    /// A process on this machine.
    #[default]
    Local,
    /// A Slurm batch job (`sbatch`).
    Slurm,
}

pub use milo_slurm::SlurmOptions;

/// What makes a phase an instance of a matrix phase.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCell {
    /// The matrix phase's name as written (`test`); the instance is `test[python=3.12]`.
    pub phase: String,
    /// The instance's values, in key order.
    pub values: matrix::Combo,
    /// `matrix_max_parallel`: at most this many instances run at once.
    pub max_parallel: Option<usize>,
    /// `matrix_fail_fast = true`: an instance's failure cancels the running instances.
    pub fail_fast: bool,
}

impl PhaseDef {
    /// The defaults: `parallel` false, `weight` 1, `max_logs` 200, no timeout, no `cwd`, no
    /// extra environment, [`PhasePolicy::default()`].
    pub fn new(name: impl Into<String>, run: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            run: run.into(),
            description: String::new(),
            depends_on: Vec::new(),
            parallel: false,
            weight: 1.0,
            max_logs: 200,
            timeout: None,
            cwd: None,
            env: BTreeMap::new(),
            policy: PhasePolicy::default(),
            sources: Vec::new(),
            outputs: Vec::new(),
            env_inputs: Vec::new(),
            cache: true,
            shell: None,
            executor: ExecutorKind::Local,
            slurm: SlurmOptions::default(),
            matrix: None,
            service: None,
            on_change: OnChange::Queue,
        }
    }
}

/// Where a phase's parts are in the text (byte spans).
#[derive(Debug, Clone, PartialEq)]
struct PhasePlaces {
    /// The file it is in: 0 for the pipeline file, `i + 1` for included file `i`.
    file: usize,
    /// The `[[phase]]` header (or inline table).
    header: Range<usize>,
    /// The `name` value.
    name: Range<usize>,
    /// Each `depends_on` entry, parallel to [`PhaseDef::depends_on`].
    depends_on: Vec<Range<usize>>,
    /// The `weight` value that applies (the phase's or `[defaults]`', maybe of another file).
    weight: Option<load::Place>,
    /// The retry settings that apply.
    policy: load::PolicySpans,
}

/// Reads and checks the pipeline file at `path`.
///
/// A missing file is an [`ErrorKind::NotFound`] error suggesting `milo init` or `-f FILE`.
///
/// Parameters take their values from `MILO_PARAM_*` in the environment, else their defaults;
/// a required one without a value is accepted (see [`load_with`]).
pub fn load(path: impl AsRef<Path>) -> Result<PipelineFile, ConfigError> {
    load_with(path, &ParamInputs::new(Vec::new(), false))
}

/// [`load`] with the parameter values of `inputs` (`-p`, the environment).
pub fn load_with(path: impl AsRef<Path>, inputs: &ParamInputs) -> Result<PipelineFile, ConfigError> {
    use milo::bounded_read::{BoundedReadError, Links, read_regular};
    let path = path.as_ref();
    // Only a regular file, read without blocking and up to a limit: `-f` naming a FIFO or a
    // link to /dev/zero is an error, not a hang or a memory blow-up.
    match read_regular(path, PIPELINE_FILE_LIMIT, Links::Follow) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => PipelineFile::parse_with(path, text, inputs),
            Err(e) => Err(ConfigError::new(
                ErrorKind::Io,
                format!(
                    "cannot read `{}`: it is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )),
        },
        Err(BoundedReadError::NotFound { .. }) => Err(ConfigError::new(
            ErrorKind::NotFound,
            format!("no pipeline file at `{}`", path.display()),
        )
        .help_line("run `milo init` to create one, or name another file with `-f FILE`")),
        Err(e) => Err(
            ConfigError::new(ErrorKind::Io, format!("cannot read the pipeline file: {e}"))
                .help_line("`-f` must name a regular file, or a link to one"),
        ),
    }
}

/// The largest pipeline file read: far above any real one (100,000 phases take about 6 MB).
const PIPELINE_FILE_LIMIT: u64 = 64 * 1024 * 1024;

impl PipelineFile {
    /// Checks `text` as the pipeline file `path` (used for messages and [`dir`](Self::dir); the
    /// file itself is not read).
    pub fn parse(path: impl Into<PathBuf>, text: impl Into<String>) -> Result<Self, ConfigError> {
        Self::parse_with(path, text, &ParamInputs::default())
    }

    /// [`parse`](Self::parse) with the parameter values of `inputs`.
    pub fn parse_with(
        path: impl Into<PathBuf>,
        text: impl Into<String>,
        inputs: &ParamInputs,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        let source = text.into();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let dir = std::path::absolute(&parent).unwrap_or(parent);
        let src = SourceFile {
            path: &path,
            text: &source,
        };
        let loaded = load::parse(src, &dir, inputs)?;
        Ok(Self {
            name: loaded.name,
            capture_output: loaded.capture_output,
            fail_fast: loaded.fail_fast,
            jobs: loaded.jobs,
            max_result_size: loaded.max_result_size,
            cache_max_size: loaded.cache_max_size,
            secrets: loaded.secrets,
            secret_patterns: loaded
                .secret_patterns
                .unwrap_or_else(|| DEFAULT_SECRET_PATTERNS.iter().map(|p| (*p).to_owned()).collect()),
            params: loaded.params,
            phases: loaded.phases,
            places: loaded.places,
            included: loaded.included,
            warnings: loaded.warnings,
            path,
            dir,
            source,
        })
    }

    /// Settings that are valid but cannot do what they seem to ask for (a `max_retries`
    /// without `on_fail = "retry"`…), as located warnings (`warning: …` when displayed).
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The phases `selector` names: the phase of that name; every instance of the matrix phase
    /// of that name; or, for `test[python=3.12,*]`, the matching instances. Empty if none.
    pub fn select(&self, selector: &str) -> Vec<&str> {
        if let Some(p) = self.phase(selector) {
            return vec![p.name.as_str()];
        }
        let pattern = matrix::Selector::parse(selector);
        self.phases
            .iter()
            .filter(|p| {
                p.matrix.as_ref().is_some_and(|c| match &pattern {
                    Some(s) => s.matches(&c.phase, &c.values),
                    None => c.phase == selector,
                })
            })
            .map(|p| p.name.as_str())
            .collect()
    }

    /// The required parameters that have no value (accepted by [`load`], not by a run).
    pub fn missing_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.value.is_none())
    }

    /// The phase called `name`.
    pub fn phase(&self, name: &str) -> Option<&PhaseDef> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Where phase `name` is defined (its `name = "..."` value); the last definition if the name
    /// is repeated.
    pub fn phase_location(&self, name: &str) -> Option<Location> {
        self.places_of(name).map(|p| self.file(p.file).location(p.name.clone()))
    }

    /// The files the pipeline was read from: this one, then those it includes.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.path.as_path()).chain(self.included.iter().map(|(p, _)| p.as_path()))
    }

    /// Where phase `phase` lists `dependency` in its `depends_on`.
    pub fn dependency_location(&self, phase: &str, dependency: &str) -> Option<Location> {
        self.dependency_span(phase, dependency)
            .map(|(f, s)| self.file(f).location(s))
    }

    /// Where the core's error `err` should point: the `depends_on` entry for an unknown
    /// dependency, a self-dependency or a cycle (the first phase's entry naming the second),
    /// the `weight` for an invalid weight, otherwise the phase's name.
    pub fn locate(&self, err: &PipelineError) -> Option<Location> {
        self.span_of(err).map(|(f, s)| self.file(f).location(s))
    }

    /// The core's error `err` as a [`ConfigError`] pointing into the file (for a cycle, at every
    /// dependency in it).
    pub fn report(&self, err: &PipelineError) -> ConfigError {
        let mut report = ConfigError::new(ErrorKind::Pipeline, err.to_string());
        if let Some((f, span)) = self.span_of(err) {
            report = report.at(self.file(f).snippet(span));
        }
        if let PipelineError::Cycle { path } = err {
            // The steps the message shows (all of a short cycle, both ends of a long one).
            for k in milo::pipeline::shown_cycle_steps(path).skip(1) {
                let pair = &path[k..k + 2];
                if let Some((f, span)) = self.dependency_span(&pair[0], &pair[1]) {
                    report = report.also(
                        self.file(f)
                            .snippet(span)
                            .label(format!("`{}` depends on `{}`", pair[0], pair[1])),
                    );
                }
            }
        }
        report
    }

    /// File `index`: 0 is this one, `i + 1` the `i`-th included.
    fn file(&self, index: usize) -> SourceFile<'_> {
        match index.checked_sub(1).and_then(|i| self.included.get(i)) {
            Some((path, text)) => SourceFile { path, text },
            None => SourceFile {
                path: &self.path,
                text: &self.source,
            },
        }
    }

    fn places_of(&self, name: &str) -> Option<&PhasePlaces> {
        self.phases
            .iter()
            .zip(&self.places)
            .rev()
            .find(|(p, _)| p.name == name)
            .map(|(_, places)| places)
    }

    fn dependency_span(&self, phase: &str, dependency: &str) -> Option<load::Place> {
        let (def, places) = self.phases.iter().zip(&self.places).find(|(p, _)| p.name == phase)?;
        let index = def.depends_on.iter().position(|d| d == dependency)?;
        places.depends_on.get(index).map(|s| (places.file, s.clone()))
    }

    fn span_of(&self, err: &PipelineError) -> Option<load::Place> {
        let name_span = |name: &str| self.places_of(name).map(|p| (p.file, p.name.clone()));
        match err {
            PipelineError::UnknownDependency { phase, dependency, .. } => {
                self.dependency_span(phase, dependency).or_else(|| name_span(phase))
            }
            PipelineError::SelfDependency { phase } => self.dependency_span(phase, phase).or_else(|| name_span(phase)),
            PipelineError::Cycle { path } => match path.as_slice() {
                [first, second, ..] => self.dependency_span(first, second).or_else(|| name_span(first)),
                _ => err.phase().and_then(name_span),
            },
            PipelineError::InvalidWeight { phase, .. } => self
                .places_of(phase)
                .and_then(|p| p.weight.clone())
                .or_else(|| name_span(phase)),
            PipelineError::EmptyName => name_span(""),
            _ => err.phase().and_then(name_span),
        }
    }
}

#[cfg(test)]
mod tests;

/// The run's parameter values, in declaration order, as `MILO_PARAM_*` exports them (a list
/// comma-joined); a required parameter without a value is left out. For the run history.
pub fn resolved_params(file: &PipelineFile) -> Vec<(String, String)> {
    file.params
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.value.as_ref()?.to_string())))
        .collect()
}
