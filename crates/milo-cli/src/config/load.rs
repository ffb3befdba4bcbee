//! Turns a pipeline file's text into checked values, walking the spanned TOML tree so that every
//! mistake can be pointed at.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use milo::pipeline::{InvalidPolicyValue, OnFail, PhasePolicy, RetryBackoff};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{self, DurationError};
use super::error::{ConfigError, ErrorKind, SourceFile};
use super::matrix::Combo;
use super::params::{Param, ParamInputs};
use super::{ExecutorKind, MatrixCell, PhaseDef, PhasePlaces, SlurmOptions};

/// Parameters, templates and matrices: more `impl Cx`.
#[path = "templates.rs"]
mod templates;

/// `include = [...]`: reading the other files of a pipeline.
#[path = "include.rs"]
mod include;

type Key<'i> = Spanned<Cow<'i, str>>;
type Value<'i> = Spanned<DeValue<'i>>;
type Span = Range<usize>;

const TOP_KEYS: &[&str] = &[
    "name",
    "capture_output",
    "fail_fast",
    "jobs",
    "secrets",
    "secret_patterns",
    "max_result_size",
    "cache_max_size",
    "defaults",
    "params",
    "env",
    "env_file",
    "executor",
    "slurm",
    "phase",
    "include",
];
const PIPELINE_KEYS: &[&str] = &[
    "capture_output",
    "fail_fast",
    "jobs",
    "secrets",
    "secret_patterns",
    "max_result_size",
    "cache_max_size",
];
const PHASE_KEYS: &[&str] = &[
    "name",
    "run",
    "description",
    "depends_on",
    "parallel",
    "weight",
    "max_logs",
    "timeout",
    "cwd",
    "env",
    "env_file",
    "policy",
    "sources",
    "outputs",
    "env_inputs",
    "cache",
    "shell",
    "executor",
    "slurm",
    "matrix",
    "matrix_include",
    "matrix_exclude",
    "matrix_max_parallel",
    "matrix_fail_fast",
    "service",
    "ready",
    "on_change",
];
const PHASE_ONLY_KEYS: &[&str] = &[
    "name",
    "run",
    "depends_on",
    "matrix",
    "matrix_include",
    "matrix_exclude",
    "matrix_max_parallel",
    "matrix_fail_fast",
    "service",
    "ready",
];
const DEFAULTS_KEYS: &[&str] = &[
    "description",
    "parallel",
    "weight",
    "max_logs",
    "timeout",
    "cwd",
    "env",
    "env_file",
    "policy",
    "sources",
    "outputs",
    "env_inputs",
    "cache",
    "shell",
    "on_change",
    "executor",
    "slurm",
];
const POLICY_KEYS: &[&str] = &["on_fail", "max_retries", "retry_delay", "retry_backoff"];
const SLURM_KEYS: &[&str] = &["partition", "time", "cpus", "mem", "account", "extra"];

/// What [`parse`] found, before it is wrapped into a [`PipelineFile`](super::PipelineFile).
pub(super) struct Loaded {
    pub(super) name: String,
    pub(super) capture_output: bool,
    pub(super) fail_fast: bool,
    pub(super) jobs: Option<usize>,
    pub(super) secrets: Vec<String>,
    pub(super) secret_patterns: Option<Vec<String>>,
    pub(super) max_result_size: Option<u64>,
    pub(super) cache_max_size: Option<u64>,
    pub(super) params: Vec<Param>,
    pub(super) phases: Vec<PhaseDef>,
    pub(super) places: Vec<PhasePlaces>,
    /// The included files, as named, with their text (index `i` is file `i + 1`).
    pub(super) included: Vec<(PathBuf, String)>,
    /// Settings that are valid but cannot do what they seem to ask for.
    pub(super) warnings: Vec<ConfigError>,
}

/// Checks the pipeline file `src`; relative `cwd`s are joined to `dir`.
///
/// Every mistake found is reported, not only the first: each key, phase and dependency is
/// checked on its own, and the errors come back together, in the order they were found: keys
/// in the order of the file, then what is missing, then the dependencies (see
/// [`ConfigError::many`]).
pub(super) fn parse(src: SourceFile<'_>, dir: &Path, inputs: &ParamInputs) -> Result<Loaded, ConfigError> {
    let root = DeTable::parse(src.text).map_err(|e| syntax_error(src, &e))?;
    let (included, include_errors) = include::gather(src, dir, root.get_ref());
    let roots: Vec<_> = included.iter().map(|f| DeTable::parse(&f.text).ok()).collect();
    let mut files = vec![FileCx {
        src,
        dir: dir.to_owned(),
        default_cwd: None,
    }];
    files.extend(included.iter().map(|f| FileCx {
        src: SourceFile {
            path: &f.path,
            text: &f.text,
        },
        dir: f.dir.clone(),
        default_cwd: f.default_cwd.clone(),
    }));
    let cx = Cx {
        files,
        current: std::cell::Cell::new(0),
        errors: RefCell::new(include_errors),
        warnings: RefCell::new(Vec::new()),
        inputs,
        jinja: templates::environment(),
        vars: RefCell::new(templates::Vars::default()),
        broken: RefCell::new(Vec::new()),
        pipeline_env: RefCell::new(BTreeMap::new()),
    };
    let roots: Vec<Option<&DeTable<'_>>> = roots.iter().map(|r| r.as_ref().map(|r| r.get_ref())).collect();
    let loaded = cx.pipeline(root.get_ref(), &roots);
    let mut errors = cx.errors.into_inner();
    // A matrix phase's instances share their text: a mistake in it is reported once.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));
    match loaded {
        Some(mut loaded) if errors.is_empty() => {
            loaded.warnings = cx.warnings.into_inner();
            loaded.included = included.into_iter().map(|f| (f.path, f.text)).collect();
            Ok(loaded)
        }
        _ => Err(ConfigError::many(src.path, errors)),
    }
}

fn syntax_error(src: SourceFile<'_>, err: &toml::de::Error) -> ConfigError {
    let span = err.span().unwrap_or(0..0);
    let mut message = format!("invalid TOML: {}", err.message());
    if err.message() == "duplicate key"
        && let Some(key) = src.text.get(span.clone()).filter(|k| !k.is_empty())
    {
        message = format!("invalid TOML: duplicate key `{key}`");
    }
    src.error(ErrorKind::Syntax, span, message)
}

/// Where a key is, for messages: `` in phase `render` `` and the like.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    Top,
    Defaults,
    /// A phase's name if known, and its 1-based position.
    Phase(Option<&'a str>, usize),
}

impl Scope<'_> {
    /// `""`, `" in [defaults]"`, `` " in phase `render`" ``.
    fn suffix(&self) -> String {
        match self {
            Scope::Top => String::new(),
            Scope::Defaults => " in [defaults]".to_owned(),
            Scope::Phase(Some(name), _) => format!(" in phase `{}`", shown(name)),
            Scope::Phase(None, n) => format!(" in phase #{n}"),
        }
    }

    /// `"phase `render`"`, `"phase #2"`.
    fn phase_label(&self) -> String {
        match self {
            Scope::Phase(Some(name), _) => format!("phase `{}`", shown(name)),
            Scope::Phase(None, n) => format!("phase #{n}"),
            Scope::Top | Scope::Defaults => "the pipeline".to_owned(),
        }
    }
}

/// Settings a phase and `[defaults]` share; `None` where not given.
#[derive(Default, Clone)]
struct Settings {
    description: Option<String>,
    parallel: Option<bool>,
    weight: Option<(f64, Place)>,
    max_logs: Option<usize>,
    /// `Some(None)`: `timeout = "none"`.
    timeout: Option<Option<Duration>>,
    cwd: Option<PathBuf>,
    env: BTreeMap<String, String>,
    /// The variables of `env_file`.
    env_file: Option<BTreeMap<String, String>>,
    on_fail: Option<OnFail>,
    max_retries: Option<u32>,
    retry_delay: Option<Duration>,
    retry_backoff: Option<RetryBackoff>,
    policy_spans: PolicySpans,
    sources: Option<Vec<String>>,
    outputs: Option<Vec<String>>,
    env_inputs: Option<Vec<String>>,
    cache: Option<bool>,
    shell: Option<Vec<String>>,
    on_change: Option<super::OnChange>,
    executor: Option<ExecutorKind>,
    /// The `slurm` options given at this level (merged over the levels above it).
    slurm: Option<SlurmOptions>,
}

struct Cx<'a> {
    /// The pipeline file (0) and the files it includes, in the order they are read.
    files: Vec<FileCx<'a>>,
    /// The file being read: an index into `files`.
    current: std::cell::Cell<usize>,
    /// Every error found so far.
    errors: RefCell<Vec<ConfigError>>,
    warnings: RefCell<Vec<ConfigError>>,
    /// Where parameter values come from.
    inputs: &'a ParamInputs,
    /// Renders `{{ params.x }}` and `{{ matrix.x }}`.
    jinja: minijinja::Environment<'static>,
    /// What the templates of the phase being read see.
    vars: RefCell<templates::Vars>,
    /// Matrix phases whose matrix is wrong: their dependents are not reported as well.
    broken: RefCell<Vec<String>>,
    /// The pipeline's `env_file` and `env`, under every phase's own.
    pipeline_env: RefCell<BTreeMap<String, String>>,
}

/// One file of the pipeline, as the loader sees it.
struct FileCx<'a> {
    src: SourceFile<'a>,
    /// What relative `cwd`s and `env_file`s of the file are joined to.
    dir: PathBuf,
    /// The `cwd` of its phases that set none (an included file with `cwd = "..."`).
    default_cwd: Option<PathBuf>,
}

impl<'a> Cx<'a> {
    /// The file being read.
    fn src(&self) -> SourceFile<'a> {
        self.file_src(self.current.get())
    }

    /// File `index` (0: the pipeline file).
    fn file_src(&self, index: usize) -> SourceFile<'a> {
        self.files[index.min(self.files.len() - 1)].src
    }

    /// `span` of the file being read.
    fn place(&self, span: Span) -> Place {
        (self.current.get(), span)
    }

    /// What the relative paths of the file being read are joined to.
    fn dir(&self) -> &Path {
        &self.files[self.current.get().min(self.files.len() - 1)].dir
    }

    /// Keeps `result`'s error for the report; its value if there was none.
    fn keep<T>(&self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.borrow_mut().push(e);
                None
            }
        }
    }

    /// The pipeline, or `None` when it is too broken to say more (the errors are kept).
    fn pipeline(&self, root: &DeTable<'_>, included: &[Option<&DeTable<'_>>]) -> Option<Loaded> {
        let mut name = None;
        let mut capture_output = true;
        let mut fail_fast = false;
        let mut jobs = None;
        let mut max_result_size = None;
        let mut cache_max_size = None;
        let mut secrets = Vec::new();
        let mut secret_patterns = None;
        let mut defaults_value = None;
        let mut top_env = Settings::default();
        let mut params_value = None;
        let mut phase_value = None;
        let mut misspelled = Vec::new();
        for (key, value) in in_file_order(root) {
            let k = key.get_ref().as_ref();
            let entry = (|| -> Result<(), ConfigError> {
                match k {
                    "name" => name = Some(self.printable("name", Scope::Top, value)?),
                    "capture_output" => capture_output = self.boolean("capture_output", Scope::Top, value)?,
                    "fail_fast" => fail_fast = self.boolean("fail_fast", Scope::Top, value)?,
                    "jobs" => {
                        let n = self.unsigned("jobs", Scope::Top, value)?;
                        if n == 0 {
                            return Err(self
                                .invalid(value, "`jobs` must be at least 1, found 0")
                                .help_line("remove `jobs` to run as many phases at once as there are CPUs"));
                        }
                        jobs = Some(usize::try_from(n).map_err(|_| self.too_large("jobs", Scope::Top, value))?);
                    }
                    "max_result_size" => max_result_size = Some(self.size("max_result_size", value)?),
                    "cache_max_size" => cache_max_size = Some(self.size("cache_max_size", value)?),
                    "secrets" => secrets = self.names("secrets", value, "`secrets = [\"API_TOKEN\"]`")?,
                    "secret_patterns" => {
                        secret_patterns =
                            Some(self.names("secret_patterns", value, "`secret_patterns = [\"*TOKEN*\"]`")?)
                    }
                    // Read after the parameters, which their templates use.
                    "defaults" => defaults_value = Some(value),
                    "params" => params_value = Some((key, value)),
                    "env" | "env_file" | "executor" | "slurm" => {
                        self.setting(key, value, Scope::Top, &mut top_env)?;
                    }
                    "phase" => phase_value = Some(value),
                    // Read (and checked) before this file: see `include::gather`.
                    "include" => {}
                    _ => {
                        // `[[phases]]` means `[[phase]]`: one mistake, not also "no phases".
                        misspelled.extend(closest(k, TOP_KEYS.iter().copied()));
                        return Err(self.unknown_key(key, Scope::Top));
                    }
                }
                Ok(())
            })();
            self.keep(entry);
        }
        let params = self.params(params_value);
        self.vars.borrow_mut().params = params.clone();
        {
            let mut env = top_env.env_file.take().unwrap_or_default();
            env.extend(std::mem::take(&mut top_env.env));
            *self.pipeline_env.borrow_mut() = env;
        }
        // Every file's `[defaults]` and `[[phase]]`s, the pipeline file's first.
        let mut defaults_values = Vec::new();
        let mut phase_values = Vec::new();
        defaults_values.extend(defaults_value.map(|v| (0, v)));
        phase_values.extend(phase_value.map(|v| (0, v)));
        for (i, root) in included.iter().enumerate() {
            let Some(root) = root else { continue };
            self.current.set(i + 1);
            let (d, p) = self.included_keys(root);
            defaults_values.extend(d.map(|v| (i + 1, v)));
            phase_values.extend(p.map(|v| (i + 1, v)));
        }
        self.current.set(0);
        let mut defaults = self.defaults(&defaults_values);
        // The top-level `executor` and `[slurm]` sit under `[defaults]`' own.
        defaults.executor = defaults.executor.or(top_env.executor);
        defaults.slurm = match (top_env.slurm.take(), defaults.slurm.take()) {
            (Some(top), Some(d)) => Some(top.overridden_by(&d)),
            (top, d) => d.or(top),
        };
        let has_name = root.iter().any(|(k, _)| k.get_ref() == "name") || misspelled.contains(&"name");
        if name.is_none() && !has_name {
            self.errors.borrow_mut().push(
                self.src()
                    .error(ErrorKind::MissingKey, 0..0, "the pipeline has no `name`")
                    .help_line("add `name = \"my-pipeline\"` at the top of the file"),
            );
        }
        if phase_value.is_none() && misspelled.contains(&"phase") {
            return None;
        }
        let (mut phases, mut places) = if included.is_empty() {
            self.phases(phase_value, &defaults)?
        } else {
            // With includes, the phases may all be in other files.
            let mut all = (Vec::new(), Vec::new());
            for (file, value) in phase_values {
                self.current.set(file);
                if let Some((phases, places)) = self.phases(Some(value), &defaults) {
                    all.0.extend(phases);
                    all.1.extend(places);
                }
            }
            self.current.set(0);
            if all.0.is_empty() && self.errors.borrow().is_empty() {
                return self.keep(Err(self
                    .src()
                    .error(
                        ErrorKind::NoPhases,
                        0..0,
                        "the pipeline has no phases, in this file or those it includes",
                    )
                    .help_line(
                        "add one: a `[[phase]]` table with `name = \"build\"` and `run = \"make\"`",
                    )));
            }
            all
        };
        self.expand_dependencies(&mut phases, &mut places);
        self.check_names(&phases, &places);
        self.check_policies(&phases, &places);
        Some(Loaded {
            name: name.unwrap_or_default(),
            capture_output,
            fail_fast,
            jobs,
            secrets,
            secret_patterns,
            max_result_size,
            cache_max_size,
            params,
            phases,
            places,
            included: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// The `[defaults]` and `[[phase]]` values of an included file (the file being read); its
    /// other keys are errors.
    fn included_keys<'t, 'i>(&self, root: &'t DeTable<'i>) -> (Option<&'t Value<'i>>, Option<&'t Value<'i>>) {
        let mut defaults = None;
        let mut phases = None;
        for (key, value) in in_file_order(root) {
            match key.get_ref().as_ref() {
                "include" => {}
                "defaults" => defaults = Some(value),
                "phase" => phases = Some(value),
                k if TOP_KEYS.contains(&k) => {
                    let main = self.file_src(0).path.display().to_string();
                    self.keep::<()>(Err(self
                        .src()
                        .error(
                            ErrorKind::UnknownKey,
                            key.span(),
                            format!("`{k}` can only be set in the pipeline file `{main}`, not in an included file"),
                        )
                        .help_line(format!(
                            "an included file brings `[[phase]]`s, `[defaults]` and `include`s: move `{k}` to `{main}`"
                        ))));
                }
                _ => {
                    self.keep::<()>(Err(self.unknown_key(key, Scope::Top)));
                }
            }
        }
        (defaults, phases)
    }

    /// The `[defaults]` of every file (`(file, value)`), merged; a key (or an `env` variable)
    /// set in two files is an error naming both.
    fn defaults(&self, values: &[(usize, &Value<'_>)]) -> Settings {
        let mut merged = Settings::default();
        let mut seen: HashMap<String, Place> = HashMap::new();
        for &(file, value) in values {
            self.current.set(file);
            let table = match self.table("defaults", Scope::Top, value, "a table: `[defaults]`") {
                Ok(table) => table,
                Err(e) => {
                    self.keep::<()>(Err(e));
                    continue;
                }
            };
            if values.len() > 1 {
                for (key, value) in in_file_order(table) {
                    let k = key.get_ref().as_ref();
                    let mut names = vec![(k.to_owned(), key.span())];
                    if k == "env"
                        && let DeValue::Table(vars) = value.get_ref()
                    {
                        names = vars
                            .iter()
                            .map(|(var, _)| (format!("env.{}", var.get_ref()), var.span()))
                            .collect();
                    }
                    for (name, span) in names {
                        if let Some((earlier_file, earlier)) = seen.get(&name) {
                            let (ef, es) = (*earlier_file, earlier.clone());
                            if ef != file {
                                self.keep::<()>(Err(self
                                    .src()
                                    .error(
                                        ErrorKind::InvalidValue,
                                        span,
                                        format!(
                                            "`{name}` in [defaults] is set in both `{}` and `{}`",
                                            self.file_src(ef).path.display(),
                                            self.src().path.display()
                                        ),
                                    )
                                    .also(self.file_src(ef).snippet(es).label("first set here"))
                                    .help_line("set each default in one file only: remove one of them")));
                            }
                            continue;
                        }
                        seen.insert(name, (file, span));
                    }
                }
            }
            let own = self.settings_table(table, Scope::Defaults);
            merged = overlay(own, merged);
        }
        self.current.set(0);
        merged
    }

    fn phases(&self, value: Option<&Value<'_>>, defaults: &Settings) -> Option<(Vec<PhaseDef>, Vec<PhasePlaces>)> {
        let no_phases = |span: Span| {
            self.src()
                .error(ErrorKind::NoPhases, span, "the pipeline has no phases")
                .help_line("add one: a `[[phase]]` table with `name = \"build\"` and `run = \"make\"`")
        };
        let Some(value) = value else {
            return self.keep(Err(no_phases(0..0)));
        };
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                return self.keep(Err(self
                    .wrong_type("phase", Scope::Top, value, "an array of tables")
                    .help_line("write `[[phase]]` (double brackets) above each phase")));
            }
            _ => {
                return self.keep(Err(self.wrong_type(
                    "phase",
                    Scope::Top,
                    value,
                    "an array of tables: `[[phase]]`",
                )));
            }
        };
        if items.is_empty() {
            return self.keep(Err(no_phases(value.span())));
        }
        let mut phases = Vec::with_capacity(items.len());
        let mut places = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(table) = item.get_ref() else {
                self.keep::<()>(Err(self.wrong_type("phase", Scope::Top, item, "a table").help_line(
                    "write each phase as a `[[phase]]` table, or as `{ name = \"...\", run = \"...\" }`",
                )));
                continue;
            };
            for (phase, place) in self.phase(table, item.span(), i + 1, defaults) {
                phases.push(phase);
                places.push(place);
            }
        }
        Some((phases, places))
    }

    /// One phase, or the instances of a matrix phase; none if it has no usable name (the
    /// errors are kept).
    fn phase(
        &self,
        table: &DeTable<'_>,
        header: Span,
        number: usize,
        defaults: &Settings,
    ) -> Vec<(PhaseDef, PhasePlaces)> {
        let is_matrix = table
            .iter()
            .any(|(k, _)| matches!(k.get_ref().as_ref(), "matrix" | "matrix_include" | "matrix_exclude"));
        if !is_matrix {
            for (key, _) in table.iter() {
                let k = key.get_ref().as_ref();
                if matches!(k, "matrix_max_parallel" | "matrix_fail_fast") {
                    self.keep::<()>(Err(self
                        .src()
                        .error(
                            ErrorKind::InvalidValue,
                            key.span(),
                            format!("`{k}` has no effect without `matrix`{}", Scope::Phase(None, number).suffix()),
                        )
                        .help_line("it limits or cancels the instances of a matrix phase: add `matrix = { KEY = [...] }`, or remove it")));
                }
            }
            return self
                .phase_instance(table, header, number, defaults, None)
                .into_iter()
                .collect();
        }
        let base = table
            .iter()
            .find(|(k, _)| k.get_ref() == "name")
            .and_then(|(_, v)| match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => None,
            });
        let scope = Scope::Phase(base.as_deref(), number);
        let Some(combos) = self.matrix(table, scope) else {
            if let Some(base) = base {
                self.broken.borrow_mut().push(base);
            }
            // Still read once, for its other mistakes.
            let _ = self.phase_instance(table, header, number, defaults, Some(&Vec::new()));
            return Vec::new();
        };
        let mut max_parallel = None;
        let mut fail_fast = false;
        for (key, value) in table.iter() {
            let entry = match key.get_ref().as_ref() {
                "matrix_max_parallel" => self.unsigned("matrix_max_parallel", scope, value).and_then(|n| {
                    if n == 0 {
                        return Err(self.invalid(
                            value,
                            format!("`matrix_max_parallel`{} must be at least 1", scope.suffix()),
                        ));
                    }
                    max_parallel =
                        Some(usize::try_from(n).map_err(|_| self.too_large("matrix_max_parallel", scope, value))?);
                    Ok(())
                }),
                "matrix_fail_fast" => self.boolean("matrix_fail_fast", scope, value).map(|b| fail_fast = b),
                _ => Ok(()),
            };
            self.keep(entry);
        }
        let mut out = Vec::with_capacity(combos.len());
        for combo in combos {
            self.vars.borrow_mut().matrix = Some(combo.clone());
            out.extend(self.phase_instance(table, header.clone(), number, defaults, Some(&combo)));
        }
        self.vars.borrow_mut().matrix = None;
        for (def, _) in &mut out {
            if let Some(cell) = &mut def.matrix {
                cell.max_parallel = max_parallel;
                cell.fail_fast = fail_fast;
            }
        }
        out
    }

    /// One phase (with `combo`: one instance of a matrix phase); `None` if it has no usable
    /// name (the errors are kept). A phase with other mistakes is still returned, so that the
    /// phases depending on it are checked too.
    fn phase_instance(
        &self,
        table: &DeTable<'_>,
        header: Span,
        number: usize,
        defaults: &Settings,
        combo: Option<&Combo>,
    ) -> Option<(PhaseDef, PhasePlaces)> {
        // The name first, so that other messages can say which phase they are about.
        let name_entry = table.iter().find(|(k, _)| k.get_ref() == "name");
        let name = match name_entry {
            Some((_, v)) => self
                .keep(self.printable("name", Scope::Phase(None, number), v))
                // A name refused for its characters still names the phase for the checks
                // that follow, so that its dependents are not reported as well.
                .or_else(|| match v.get_ref() {
                    DeValue::String(s) if !s.trim().is_empty() => Some(s.to_string()),
                    _ => None,
                })
                .map(|n| (n, v.span())),
            None => None,
        };
        let scope = Scope::Phase(name.as_ref().map(|(n, _)| n.as_str()), number);
        let mut run = None;
        let mut service = None;
        let mut ready = None;
        let mut depends_on = Vec::new();
        let mut dependency_spans = Vec::new();
        let mut own = Settings::default();
        for (key, value) in in_file_order(table) {
            let entry = (|| -> Result<(), ConfigError> {
                match key.get_ref().as_ref() {
                    "name"
                    | "matrix"
                    | "matrix_include"
                    | "matrix_exclude"
                    | "matrix_max_parallel"
                    | "matrix_fail_fast" => {}
                    "service" => service = Some((self.boolean("service", scope, value)?, value.span())),
                    "ready" => ready = Some((self.ready(scope, value)?, value.span())),
                    "run" => {
                        let command = match value.get_ref() {
                            DeValue::Array(items) if !items.is_empty() => {
                                let mut commands = Vec::with_capacity(items.len());
                                for item in items.iter() {
                                    let c = self.non_empty_string("run", scope, item)?;
                                    commands.push(self.render("run", scope, item, c)?);
                                }
                                join_commands(&commands)
                            }
                            DeValue::Array(_) => {
                                return Err(self.invalid(value, format!("`run`{} must not be empty", scope.suffix())));
                            }
                            _ => {
                                let command = self.non_empty_string("run", scope, value)?;
                                self.render("run", scope, value, command)?
                            }
                        };
                        if command.trim().is_empty() {
                            return Err(self.invalid(value, format!("`run`{} is empty once rendered", scope.suffix())));
                        }
                        run = Some(self.no_nul("run", scope, value, command)?);
                    }
                    "depends_on" => {
                        let DeValue::Array(entries) = value.get_ref() else {
                            return Err(self
                                .wrong_type("depends_on", scope, value, "an array of phase names")
                                .help_line(match value.get_ref() {
                                    DeValue::String(s) => format!("write `depends_on = [\"{s}\"]`"),
                                    _ => "write `depends_on = [\"other-phase\"]`".to_owned(),
                                }));
                        };
                        for entry in entries.iter() {
                            let DeValue::String(dep) = entry.get_ref() else {
                                self.keep::<()>(Err(self.wrong_type(
                                    "depends_on",
                                    scope,
                                    entry,
                                    "a phase name (a string)",
                                )));
                                continue;
                            };
                            depends_on.push(dep.to_string());
                            dependency_spans.push(entry.span());
                        }
                    }
                    _ => {
                        if !self.setting(key, value, scope, &mut own)? {
                            return Err(self.unknown_key(key, scope));
                        }
                    }
                }
                Ok(())
            })();
            self.keep(entry);
        }
        let suffix = scope.suffix();
        let Some((name, name_span)) = name else {
            if name_entry.is_none() {
                self.keep::<()>(Err(self
                    .src()
                    .error(ErrorKind::MissingKey, header, format!("phase #{number} has no `name`"))
                    .help_line("add `name = \"...\"` to this phase; phase names must be unique")));
            }
            return None;
        };
        let has_run = table.iter().any(|(k, _)| k.get_ref() == "run");
        if !has_run {
            self.keep::<()>(Err(self
                .src()
                .error(
                    ErrorKind::MissingKey,
                    header.clone(),
                    format!("phase `{}` has no `run`", shown(&name)),
                )
                .help_line("add the command to run: `run = \"...\"`")));
        }
        let base_name = name.clone();
        let name = match combo {
            Some(combo) => super::matrix::instance_name(&name, combo),
            None => name,
        };
        let mut phase = PhaseDef::new(name, run.unwrap_or_default());
        phase.depends_on = depends_on;
        match (service, ready) {
            (Some((true, _)), ready) => {
                let (ready, timeout) = ready.map_or((super::ReadyDef::Started, None), |(r, _)| r);
                phase.service = Some(super::ServiceDef {
                    ready,
                    timeout: timeout.unwrap_or(milo::pipeline::DEFAULT_READY_TIMEOUT),
                });
            }
            (_, Some((_, span))) => {
                self.keep::<()>(Err(self
                    .src()
                    .error(
                        ErrorKind::InvalidValue,
                        span,
                        format!("`ready`{suffix} only applies to a service"),
                    )
                    .help_line("add `service = true` to the phase, or remove `ready`")));
            }
            _ => {}
        }
        let (weight_span, policy_spans) = merge(&mut phase, defaults, own);
        if let Some(combo) = combo {
            phase.matrix = Some(MatrixCell {
                phase: base_name,
                values: combo.clone(),
                max_parallel: None,
                fail_fast: false,
            });
        }
        let mut env = self.pipeline_env.borrow().clone();
        env.extend(std::mem::take(&mut phase.env));
        phase.env = env;
        self.export(&mut phase);
        if phase.cwd.is_none() {
            phase.cwd = self.files[self.current.get()].default_cwd.clone();
        }
        let places = PhasePlaces {
            file: self.current.get(),
            header,
            name: name_span,
            depends_on: dependency_spans,
            weight: weight_span,
            policy: policy_spans,
        };
        Some((phase, places))
    }

    /// Duplicate names, and dependencies on names that are not phases: every one of them.
    fn check_names(&self, phases: &[PhaseDef], places: &[PhasePlaces]) {
        let mut first: HashMap<&str, &PhasePlaces> = HashMap::new();
        for (phase, place) in phases.iter().zip(places) {
            if let Some(&earlier) = first.get(phase.name.as_str()) {
                let mut err = self
                    .file_src(place.file)
                    .error(
                        ErrorKind::DuplicatePhase,
                        place.name.clone(),
                        format!("duplicate phase name `{}`", shown(&phase.name)),
                    )
                    .also(
                        self.file_src(earlier.file)
                            .snippet(earlier.name.clone())
                            .label("first defined here"),
                    )
                    .help_line("phase names must be unique: rename one of them");
                if place.file != earlier.file {
                    err = err.help_line(format!(
                        "it is defined in both `{}` and `{}`",
                        self.file_src(earlier.file).path.display(),
                        self.file_src(place.file).path.display()
                    ));
                }
                self.keep::<()>(Err(err));
                continue;
            }
            first.insert(&phase.name, place);
        }
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        for (phase, place) in phases.iter().zip(places) {
            for (dep, span) in phase.depends_on.iter().zip(&place.depends_on) {
                if first.contains_key(dep.as_str()) || self.is_broken_dependency(dep) {
                    continue;
                }
                let mut message = format!(
                    "phase `{}` depends on `{}`, which is not a phase",
                    shown(&phase.name),
                    shown(dep)
                );
                if let Some(close) = closest(dep, names.iter().copied().filter(|n| *n != phase.name)) {
                    message.push_str(&format!("; did you mean `{}`?", shown(close)));
                }
                self.keep::<()>(Err(self
                    .file_src(place.file)
                    .error(ErrorKind::UnknownDependency, span.clone(), message)
                    .help_line(format!("the phases are {}", list(&names)))));
            }
        }
    }

    /// Retry settings that cannot take effect because the phase does not retry: one warning
    /// per place in the file (a `[defaults]` policy is reported once).
    fn check_policies(&self, phases: &[PhaseDef], places: &[PhasePlaces]) {
        let mut seen = BTreeSet::new();
        for (phase, place) in phases.iter().zip(places) {
            if phase.policy.on_fail == OnFail::Retry {
                continue;
            }
            for (key, span) in [
                ("max_retries", &place.policy.max_retries),
                ("retry_delay", &place.policy.retry_delay),
                ("retry_backoff", &place.policy.retry_backoff),
            ] {
                let Some((file, span)) = span else { continue };
                if !seen.insert((*file, span.start, span.end)) {
                    continue;
                }
                let src = self.file_src(*file);
                let text = src.text.get(span.clone()).unwrap_or_default();
                let on_fail = phase.policy.on_fail;
                let example = if key == "max_retries" {
                    format!("policy = {{ on_fail = \"retry\", max_retries = {text} }}")
                } else {
                    format!("policy = {{ on_fail = \"retry\", max_retries = 3, {key} = {text} }}")
                };
                self.warnings.borrow_mut().push(
                    src.error(
                            ErrorKind::InvalidValue,
                            span.clone(),
                            format!(
                                "`policy.{key}` has no effect{}: its `on_fail` is \"{on_fail}\", and only \"retry\" retries",
                                Scope::Phase(Some(&phase.name), 0).suffix()
                            ),
                        )
                        .warning()
                        .help_line(format!("add `on_fail = \"retry\"` to the policy: `{example}`")),
                );
            }
        }
    }

    fn settings_table(&self, table: &DeTable<'_>, scope: Scope<'_>) -> Settings {
        let mut settings = Settings::default();
        for (key, value) in in_file_order(table) {
            let entry = self.setting(key, value, scope, &mut settings).and_then(|known| {
                if known {
                    return Ok(());
                }
                let k = key.get_ref().as_ref();
                if PHASE_ONLY_KEYS.contains(&k) {
                    return Err(self
                        .src()
                        .error(
                            ErrorKind::UnknownKey,
                            key.span(),
                            format!("`{k}` cannot be set in [defaults]"),
                        )
                        .help_line(format!("set `{k}` in each `[[phase]]`")));
                }
                Err(self.unknown_key(key, scope))
            });
            self.keep(entry);
        }
        settings
    }

    /// Reads a key shared by phases and `[defaults]` into `s`; `false` if `key` is not one.
    fn setting(
        &self,
        key: &Key<'_>,
        value: &Value<'_>,
        scope: Scope<'_>,
        s: &mut Settings,
    ) -> Result<bool, ConfigError> {
        match key.get_ref().as_ref() {
            "description" => {
                let text = self.string("description", scope, value)?;
                let text = self.render("description", scope, value, text)?;
                s.description = Some(self.no_controls("description", scope, value, text)?);
            }
            "parallel" => s.parallel = Some(self.boolean("parallel", scope, value)?),
            "weight" => {
                let weight = self.number("weight", scope, value)?;
                if !weight.is_finite() || weight < 0.0 {
                    return Err(self.invalid(
                        value,
                        format!("`weight`{} must be a finite number ≥ 0, found {weight}", scope.suffix()),
                    ));
                }
                s.weight = Some((weight, self.place(value.span())));
            }
            "max_logs" => {
                let n = self.unsigned("max_logs", scope, value)?;
                s.max_logs = Some(usize::try_from(n).map_err(|_| self.too_large("max_logs", scope, value))?);
            }
            "timeout" => {
                let timeout = self.duration("timeout", scope, value, true)?;
                if timeout == Some(Duration::ZERO) {
                    return Err(self
                        .invalid(value, format!("`timeout`{} must be greater than 0", scope.suffix()))
                        .help_line("leave `timeout` out, or write `timeout = \"none\"` to lift a [defaults] timeout"));
                }
                s.timeout = Some(timeout);
            }
            "cwd" => {
                let cwd = self.non_empty_string("cwd", scope, value)?;
                let cwd = self.render("cwd", scope, value, cwd)?;
                if cwd.trim().is_empty() {
                    return Err(self.invalid(value, format!("`cwd`{} is empty once rendered", scope.suffix())));
                }
                s.cwd = Some(self.dir().join(self.no_nul("cwd", scope, value, cwd)?));
            }
            "env" => {
                let table = self.table("env", scope, value, "a table of strings: `env = { NAME = \"value\" }`")?;
                for (name, v) in in_file_order(table) {
                    let name = name.get_ref().as_ref();
                    let key = format!("env.{name}");
                    if name.is_empty() || name.contains(['=', '\0']) {
                        self.keep::<()>(Err(self.invalid(
                            value,
                            format!(
                                "`{key}`{}: an environment variable name must be non-empty, without `=` or NUL",
                                scope.suffix()
                            ),
                        )));
                        continue;
                    }
                    let text = self
                        .string(&key, scope, v)
                        .and_then(|t| self.render(&key, scope, v, t))
                        .and_then(|t| self.no_nul(&key, scope, v, t));
                    if let Some(text) = self.keep(text) {
                        s.env.insert(name.to_owned(), text);
                    }
                }
            }
            "env_file" => s.env_file = Some(self.env_file(scope, value)?),
            "sources" => s.sources = Some(self.paths("sources", scope, value, true)?),
            "outputs" => s.outputs = Some(self.paths("outputs", scope, value, false)?),
            "env_inputs" => {
                let names = self.string_list("env_inputs", scope, value, "`env_inputs = [\"CC\", \"CFLAGS\"]`")?;
                for (name, entry) in &names {
                    if name.is_empty() || name.contains(['=', '\0']) {
                        return Err(self.invalid(
                            entry,
                            format!(
                                "`env_inputs`{} entries must be environment variable names: non-empty, without `=` or NUL",
                                scope.suffix()
                            ),
                        ));
                    }
                }
                s.env_inputs = Some(names.into_iter().map(|(n, _)| n).collect());
            }
            "cache" => s.cache = Some(self.boolean("cache", scope, value)?),
            "shell" => s.shell = Some(self.shell(scope, value)?),
            "on_change" => {
                let text = self.string("on_change", scope, value)?;
                s.on_change = Some(match text.as_str() {
                    "queue" => super::OnChange::Queue,
                    "restart" => super::OnChange::Restart,
                    other => {
                        return Err(self
                            .invalid(
                                value,
                                format!("`on_change`{} must be \"queue\" or \"restart\", found {other:?}", scope.suffix()),
                            )
                            .help_line("\"queue\" lets the phase finish and runs the next cycle after it; \"restart\" interrupts it"));
                    }
                });
            }
            "executor" => {
                let name = self.string("executor", scope, value)?;
                s.executor = Some(match name.as_str() {
                    "local" => ExecutorKind::Local,
                    "slurm" => ExecutorKind::Slurm,
                    other => {
                        let mut message = format!(
                            "`executor`{} must be \"local\" or \"slurm\", found {other:?}",
                            scope.suffix()
                        );
                        if let Some(close) = closest(other, ["local", "slurm"]) {
                            message.push_str(&format!("; did you mean \"{close}\"?"));
                        }
                        return Err(self.invalid(value, message).help_line(
                            "\"local\" runs the command on this machine, \"slurm\" submits it with sbatch",
                        ));
                    }
                });
            }
            "slurm" => {
                let table = self.table("slurm", scope, value, "a table such as `{ cpus = 8, mem = \"16G\" }`")?;
                let own = self.slurm(table, scope);
                s.slurm = Some(match s.slurm.take() {
                    Some(before) => before.overridden_by(&own),
                    None => own,
                });
            }
            "policy" => {
                let table = self.table(
                    "policy",
                    scope,
                    value,
                    "a table such as `{ on_fail = \"retry\", max_retries = 3 }`",
                )?;
                self.policy(table, scope, s)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads a `policy` table into `s`, keeping the error of each key that has one.
    /// A `slurm` table: each wrong option is its own located error.
    fn slurm(&self, table: &DeTable<'_>, scope: Scope<'_>) -> SlurmOptions {
        let mut o = SlurmOptions::default();
        for (key, value) in in_file_order(table) {
            let k = key.get_ref().as_ref();
            let path = format!("slurm.{k}");
            let entry = (|| -> Result<(), ConfigError> {
                let checked = |r: Result<(), String>| {
                    r.map_err(|why| self.invalid(value, format!("`{path}`{} {why}", scope.suffix())))
                };
                match k {
                    "partition" | "account" => {
                        let name = self.string(&path, scope, value)?;
                        checked(milo_slurm::options::check_name(&name).map_err(|e| format!("is not valid: it {e}")))?;
                        if k == "partition" {
                            o.partition = Some(name);
                        } else {
                            o.account = Some(name);
                        }
                    }
                    "time" => {
                        let Some(d) = self.duration(&path, scope, value, false)? else {
                            return Ok(());
                        };
                        let minutes = milo_slurm::options::time_minutes(d);
                        checked(minutes.as_ref().map(|_| ()).map_err(Clone::clone))?;
                        o.time_minutes = minutes.ok();
                    }
                    "cpus" => {
                        let n = self.unsigned(&path, scope, value)?;
                        if n == 0 {
                            return Err(self.invalid(value, format!("`{path}`{} must be at least 1", scope.suffix())));
                        }
                        o.cpus = Some(u32::try_from(n).map_err(|_| self.too_large(&path, scope, value))?);
                    }
                    "mem" => {
                        let mem = match value.get_ref() {
                            DeValue::Integer(_) => self.unsigned(&path, scope, value)?.to_string(),
                            _ => self.string(&path, scope, value)?,
                        };
                        checked(milo_slurm::options::check_mem(&mem).map_err(|e| format!("is not valid: {e}")))?;
                        o.mem = Some(mem.to_ascii_uppercase());
                    }
                    "extra" => {
                        for (flag, entry) in self.string_list(&path, scope, value, "`extra = [\"--qos=normal\"]`")? {
                            let ok = milo_slurm::options::check_extra(&flag)
                                .map_err(|why| self.invalid(entry, format!("`{path}`{}: {why}", scope.suffix())));
                            if self.keep(ok).is_some() {
                                o.extra.push(flag);
                            }
                        }
                    }
                    _ => {
                        let mut message = format!("unknown key `{k}` in `slurm`{}", scope.suffix());
                        if let Some(close) = closest(k, SLURM_KEYS.iter().copied()) {
                            message.push_str(&format!("; did you mean `{close}`?"));
                        }
                        return Err(self
                            .src()
                            .error(ErrorKind::UnknownKey, key.span(), message)
                            .help_line(format!("the Slurm options are {}", SLURM_KEYS.join(", "))));
                    }
                }
                Ok(())
            })();
            self.keep(entry);
        }
        o
    }

    fn policy(&self, table: &DeTable<'_>, scope: Scope<'_>, s: &mut Settings) -> Result<(), ConfigError> {
        for (key, value) in in_file_order(table) {
            let entry = self.policy_entry(key, value, scope, s);
            self.keep(entry);
        }
        Ok(())
    }

    fn policy_entry(
        &self,
        key: &Key<'_>,
        value: &Value<'_>,
        scope: Scope<'_>,
        s: &mut Settings,
    ) -> Result<(), ConfigError> {
        {
            let k = key.get_ref().as_ref();
            let path = format!("policy.{k}");
            match k {
                "on_fail" => s.on_fail = Some(self.policy_value(&path, scope, value)?),
                "retry_backoff" => {
                    s.retry_backoff = Some(self.policy_value(&path, scope, value)?);
                    s.policy_spans.retry_backoff = Some(self.place(value.span()));
                }
                "max_retries" => {
                    let n = self.unsigned(&path, scope, value)?;
                    s.max_retries = Some(u32::try_from(n).map_err(|_| self.too_large(&path, scope, value))?);
                    if n > 0 {
                        s.policy_spans.max_retries = Some(self.place(value.span()));
                    }
                }
                "retry_delay" => {
                    s.retry_delay = self.duration(&path, scope, value, false)?;
                    s.policy_spans.retry_delay = Some(self.place(value.span()));
                }
                _ => {
                    let mut message = format!("unknown key `{k}` in `policy`{}", scope.suffix());
                    if let Some(close) = closest(k, POLICY_KEYS.iter().copied()) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    return Err(self
                        .src()
                        .error(ErrorKind::UnknownKey, key.span(), message)
                        .help_line(format!("the policy keys are {}", list(POLICY_KEYS))));
                }
            }
        }
        Ok(())
    }

    fn policy_value<T>(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<T, ConfigError>
    where
        T: std::str::FromStr<Err = InvalidPolicyValue>,
    {
        let text = self.string(key, scope, value)?;
        text.parse().map_err(|e: InvalidPolicyValue| {
            let mut message = format!(
                "`{key}`{} must be one of {}, found \"{text}\"",
                scope.suffix(),
                e.expected
            );
            let valid: Vec<&str> = e.expected.split(", ").map(|v| v.trim_matches('"')).collect();
            if let Some(close) = closest(&text, valid.iter().copied()) {
                message.push_str(&format!("; did you mean \"{close}\"?"));
            }
            self.invalid(value, message)
        })
    }

    /// `ready = { http = "…" | tcp = "…" | log = "…" | cmd = "…", timeout = "10s" }`.
    fn ready(&self, scope: Scope<'_>, value: &Value<'_>) -> Result<(super::ReadyDef, Option<Duration>), ConfigError> {
        use super::ReadyDef;
        let example = "`ready = { tcp = \"127.0.0.1:5432\", timeout = \"10s\" }`";
        let table = self.table("ready", scope, value, &format!("a table such as {example}"))?;
        let mut check = None;
        let mut timeout = None;
        for (key, v) in in_file_order(table) {
            let k = key.get_ref().as_ref();
            let label = format!("ready.{k}");
            let kind = match k {
                "timeout" => {
                    let t = self.duration(&label, scope, v, false)?;
                    if t == Some(Duration::ZERO) {
                        return Err(
                            self.invalid(v, format!("`ready.timeout`{} must be greater than 0", scope.suffix()))
                        );
                    }
                    timeout = t;
                    continue;
                }
                "http" | "tcp" | "log" | "cmd" => k,
                _ => {
                    let mut message = format!("unknown key `{k}` in `ready`{}", scope.suffix());
                    if let Some(close) = closest(k, ["http", "tcp", "log", "cmd", "timeout"]) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    return Err(self
                        .src()
                        .error(ErrorKind::UnknownKey, key.span(), message)
                        .help_line("`ready` takes one of `http`, `tcp`, `log` or `cmd`, and `timeout`"));
                }
            };
            if check.is_some() {
                return Err(self
                    .invalid(v, format!("`ready`{} has more than one check", scope.suffix()))
                    .help_line("keep one of `http`, `tcp`, `log` or `cmd`"));
            }
            let text = self.non_empty_string(&label, scope, v)?;
            let text = self.no_nul(&label, scope, v, text)?;
            check = Some(match kind {
                "http" => {
                    let rest = text.strip_prefix("http://").ok_or_else(|| {
                        self.invalid(
                            v,
                            format!(
                                "`ready.http`{} must be an http:// address, found {text:?}",
                                scope.suffix()
                            ),
                        )
                        .help_line("https is not probed; use `cmd = \"curl -fsS https://…\"` for it")
                    })?;
                    if rest.split(['/', '?']).next().is_none_or(str::is_empty) {
                        return Err(self.invalid(v, format!("`ready.http`{} names no host", scope.suffix())));
                    }
                    ReadyDef::Http(text)
                }
                "tcp" => {
                    let port = text.rsplit_once(':').and_then(|(h, p)| (!h.is_empty()).then_some(p));
                    if port.is_none_or(|p| p.parse::<u16>().is_err()) {
                        return Err(self
                            .invalid(
                                v,
                                format!("`ready.tcp`{} must be HOST:PORT, found {text:?}", scope.suffix()),
                            )
                            .help_line("for example `tcp = \"127.0.0.1:5432\"`"));
                    }
                    ReadyDef::Tcp(text)
                }
                "log" => ReadyDef::Log(text),
                _ => ReadyDef::Cmd(text),
            });
        }
        match check {
            Some(check) => Ok((check, timeout)),
            None => Err(self
                .invalid(value, format!("`ready`{} has no check", scope.suffix()))
                .help_line(format!("name one of `http`, `tcp`, `log` or `cmd`: {example}"))),
        }
    }

    // ---- values ----

    fn string(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<String, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {
                let raw = self.src().text.get(value.span()).unwrap_or_default();
                Err(self
                    .wrong_type(key, scope, value, "a string")
                    .help_line(format!("put it in quotes: `\"{}\"`", raw.escape_default())))
            }
            _ => Err(self.wrong_type(key, scope, value, "a string")),
        }
    }

    /// A string shown on terminals (a name): not empty, and no control characters.
    fn printable(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<String, ConfigError> {
        let s = self.non_empty_string(key, scope, value)?;
        self.no_controls(key, scope, value, s)
    }

    /// `s` if it has no control character (C0, DEL or C1): a name or description with one could
    /// move the cursor, ring the bell or rewrite the screen of whoever looks at the run.
    fn no_controls(&self, key: &str, scope: Scope<'_>, value: &Value<'_>, s: String) -> Result<String, ConfigError> {
        let Some((at, c)) = s.chars().enumerate().find(|(_, c)| c.is_control()) else {
            return Ok(s);
        };
        Err(self
            .invalid(
                value,
                format!(
                    "`{key}`{} contains the control character {} at character {}",
                    scope.suffix(),
                    control_name(c),
                    at + 1
                ),
            )
            .help_line(format!(
                "`{key}` may hold any printable character, spaces included, but no control characters (U+0000–U+001F, U+007F–U+009F: tabs, line breaks, escapes…): remove it"
            )))
    }

    /// `s` if it has no NUL character, which no command line, environment or path can hold.
    fn no_nul(&self, key: &str, scope: Scope<'_>, value: &Value<'_>, s: String) -> Result<String, ConfigError> {
        let Some(at) = s.chars().position(|c| c == '\0') else {
            return Ok(s);
        };
        Err(self
            .invalid(
                value,
                format!(
                    "`{key}`{} contains a NUL character (U+0000) at character {}",
                    scope.suffix(),
                    at + 1
                ),
            )
            .help_line(format!(
                "the operating system cannot pass a NUL in a command, an environment variable or a path: remove it from `{key}`"
            )))
    }

    /// `shell`: the program and its arguments before the command line, as words separated by
    /// spaces (`"bash -euo pipefail -c"`) or an array (`["bash", "-c"]`).
    fn shell(&self, scope: Scope<'_>, value: &Value<'_>) -> Result<Vec<String>, ConfigError> {
        let example = "`shell = \"bash -euo pipefail -c\"` or `shell = [\"bash\", \"-c\"]`";
        let words: Vec<String> = match value.get_ref() {
            DeValue::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            DeValue::Array(_) => self
                .string_list("shell", scope, value, example)?
                .into_iter()
                .map(|(w, _)| w)
                .collect(),
            _ => {
                return Err(self
                    .wrong_type("shell", scope, value, "a string or an array of strings")
                    .help_line(format!("write {example}")));
            }
        };
        if words.is_empty() || words[0].is_empty() {
            return Err(self
                .invalid(value, format!("`shell`{} names no program", scope.suffix()))
                .help_line(format!("write {example}; the command line is passed after these words")));
        }
        if words.iter().any(|w| w.contains('\0')) {
            return Err(self.invalid(value, format!("`shell`{} holds a NUL character", scope.suffix())));
        }
        Ok(words)
    }

    /// An array of strings, each with its value (for located errors about one entry).
    fn string_list<'v, 'i>(
        &self,
        key: &str,
        scope: Scope<'_>,
        value: &'v Value<'i>,
        example: &str,
    ) -> Result<Vec<(String, &'v Value<'i>)>, ConfigError> {
        let DeValue::Array(entries) = value.get_ref() else {
            return Err(self
                .wrong_type(key, scope, value, "an array of strings")
                .help_line(format!("write {example}")));
        };
        entries
            .iter()
            .map(|entry| Ok((self.string(key, scope, entry)?, entry)))
            .collect()
    }

    /// `sources` (globs, a leading `!` excludes) or `outputs` (plain paths): relative to the
    /// phase's `cwd`, non-empty, without NUL; a glob must parse, an output must not be one.
    fn paths(&self, key: &str, scope: Scope<'_>, value: &Value<'_>, globs: bool) -> Result<Vec<String>, ConfigError> {
        let example = if globs {
            "`sources = [\"src/**/*.c\", \"Makefile\"]`"
        } else {
            "`outputs = [\"build/app\"]`"
        };
        let entries = self.string_list(key, scope, value, example)?;
        let mut out = Vec::with_capacity(entries.len());
        for (path, entry) in entries {
            // Every entry's mistake is reported, not only the first.
            let checked = (|| -> Result<String, ConfigError> {
                let path = self.render(key, scope, entry, path)?;
                let path = self.no_nul(key, scope, entry, path)?;
                let bare = path.strip_prefix('!').unwrap_or(&path);
                if bare.trim().is_empty() {
                    return Err(self.invalid(entry, format!("`{key}`{} entries must not be empty", scope.suffix())));
                }
                if globs {
                    if let Err(why) = globset::GlobBuilder::new(bare).literal_separator(true).build() {
                        return Err(self
                            .invalid(
                                entry,
                                format!(
                                    "`{key}`{}: {bare:?} is not a valid glob: {}",
                                    scope.suffix(),
                                    why.kind()
                                ),
                            )
                            .help_line(
                                "globs use `*`, `?`, `**` for any depth, `{a,b}` and `[abc]`; a leading `!` excludes",
                            ));
                    }
                } else if path.contains(['*', '?', '[', '{']) || path.starts_with('!') {
                    return Err(self
                        .invalid(
                            entry,
                            format!(
                                "`{key}`{}: {path:?} looks like a glob; outputs are paths",
                                scope.suffix()
                            ),
                        )
                        .help_line(
                            "name each file or directory the phase writes: `outputs = [\"build/app\", \"dist\"]`",
                        ));
                } else if let Some(problem) = output_problem(&path) {
                    return Err(self
                        .invalid(entry, format!("`{key}`{}: {path:?} {problem}", scope.suffix()))
                        .help_line("outputs are files or directories inside the phase's `cwd`, such as `build/app`"));
                }
                Ok(path)
            })();
            out.extend(self.keep(checked));
        }
        Ok(out)
    }

    /// An array of environment variable names (or `*` patterns of them): non-empty, no `=`.
    fn names(&self, key: &str, value: &Value<'_>, example: &str) -> Result<Vec<String>, ConfigError> {
        let DeValue::Array(entries) = value.get_ref() else {
            return Err(self
                .wrong_type(key, Scope::Top, value, "an array of variable names")
                .help_line(format!("write {example}")));
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries.iter() {
            let name = self.string(key, Scope::Top, entry)?;
            if name.is_empty() || name.contains('=') {
                return Err(self.invalid(
                    entry,
                    format!("`{key}` entries must be environment variable names: non-empty, without `=`"),
                ));
            }
            out.push(name);
        }
        Ok(out)
    }

    fn non_empty_string(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<String, ConfigError> {
        let s = self.string(key, scope, value)?;
        if s.trim().is_empty() {
            return Err(self.invalid(value, format!("`{key}`{} must not be empty", scope.suffix())));
        }
        Ok(s)
    }

    fn boolean(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<bool, ConfigError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            DeValue::String(s) if matches!(s.as_ref(), "true" | "false") => Err(self
                .wrong_type(key, scope, value, "a boolean")
                .help_line(format!("remove the quotes: `{key} = {s}`"))),
            _ => Err(self.wrong_type(key, scope, value, "a boolean (`true` or `false`)")),
        }
    }

    /// An integer ≥ 0.
    /// A size in bytes: an integer, or a string with a unit (`"64 MiB"`, `"512KiB"`, `"1GB"`).
    fn size(&self, key: &str, value: &Value<'_>) -> Result<u64, ConfigError> {
        let bytes = match value.get_ref() {
            DeValue::String(s) => parse_size(s).map_err(|why| {
                self.invalid(value, format!("`{key}` {why}")).help_line(format!(
                    "write bytes or a size with a unit: `{key} = \"64MiB\"` (B, KB, MB, GB, KiB, MiB, GiB)"
                ))
            })?,
            _ => self.unsigned(key, Scope::Top, value)?,
        };
        if bytes == 0 {
            return Err(self
                .invalid(value, format!("`{key}` must be more than 0 bytes"))
                .help_line(format!("remove `{key}` for the default of 16 MiB")));
        }
        Ok(bytes)
    }

    fn unsigned(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<u64, ConfigError> {
        match value.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if n < 0 => Err(self.invalid(
                    value,
                    format!("`{key}`{} must be a non-negative integer, found {n}", scope.suffix()),
                )),
                Ok(n) => u64::try_from(n).map_err(|_| self.too_large(key, scope, value)),
                Err(_) => Err(self.too_large(key, scope, value)),
            },
            DeValue::String(s) if s.trim().parse::<u64>().is_ok() => Err(self
                .wrong_type(key, scope, value, "a non-negative integer")
                .help_line(format!("remove the quotes: `{} = {}`", last_part(key), s.trim()))),
            _ => Err(self.wrong_type(key, scope, value, "a non-negative integer")),
        }
    }

    fn number(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<f64, ConfigError> {
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok().map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::String(s) if s.trim().parse::<f64>().is_ok() => {
                return Err(self.wrong_type(key, scope, value, "a number").help_line(format!(
                    "remove the quotes: `{} = {}`",
                    last_part(key),
                    s.trim()
                )));
            }
            _ => return Err(self.wrong_type(key, scope, value, "a number")),
        };
        parsed.ok_or_else(|| self.too_large(key, scope, value))
    }

    /// A number of seconds or a duration string; `Ok(None)` for `"none"` if `none_allowed`.
    fn duration(
        &self,
        key: &str,
        scope: Scope<'_>,
        value: &Value<'_>,
        none_allowed: bool,
    ) -> Result<Option<Duration>, ConfigError> {
        let forms = format!(
            "write seconds as a number (`{} = 90`) or a string such as {}",
            last_part(key),
            duration::EXAMPLES
        );
        let secs = match value.get_ref() {
            DeValue::String(s) if none_allowed && s.as_ref() == "none" => return Ok(None),
            DeValue::String(s) => {
                return duration::parse_duration(s).map(Some).map_err(|e| {
                    let err = self.invalid(value, format!("`{key}`{} is not a valid duration: {e}", scope.suffix()));
                    match e {
                        DurationError::MissingUnit { number } if number == s.trim() => err.help_line(format!(
                            "for seconds, write \"{number}s\" or the number {number} without quotes"
                        )),
                        _ => err.help_line(forms),
                    }
                });
            }
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).map_or(f64::INFINITY, |n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().unwrap_or(f64::NAN),
            _ => {
                return Err(self
                    .wrong_type(key, scope, value, "a duration (seconds, or a string such as \"90s\")")
                    .help_line(forms));
            }
        };
        duration::seconds_to_duration(secs)
            .map(Some)
            .map_err(|why| self.invalid(value, format!("`{key}`{} {why}", scope.suffix())))
    }

    fn table<'v, 'i>(
        &self,
        key: &str,
        scope: Scope<'_>,
        value: &'v Value<'i>,
        expected: &str,
    ) -> Result<&'v DeTable<'i>, ConfigError> {
        match value.get_ref() {
            DeValue::Table(t) => Ok(t),
            _ => Err(self.wrong_type(key, scope, value, expected)),
        }
    }

    // ---- errors ----

    fn wrong_type(&self, key: &str, scope: Scope<'_>, value: &Value<'_>, expected: &str) -> ConfigError {
        self.src().error(
            ErrorKind::WrongType,
            value.span(),
            format!(
                "`{key}`{} must be {expected}, found {}",
                scope.suffix(),
                type_name(value.get_ref())
            ),
        )
    }

    fn invalid(&self, value: &Value<'_>, message: impl Into<String>) -> ConfigError {
        self.src().error(ErrorKind::InvalidValue, value.span(), message)
    }

    fn too_large(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> ConfigError {
        self.invalid(value, format!("`{key}`{} is too large", scope.suffix()))
    }

    fn unknown_key(&self, key: &Key<'_>, scope: Scope<'_>) -> ConfigError {
        let k = key.get_ref().as_ref();
        let (valid, place): (&[&str], String) = match scope {
            Scope::Top => (TOP_KEYS, "at the top level".to_owned()),
            Scope::Defaults => (DEFAULTS_KEYS, "in [defaults]".to_owned()),
            Scope::Phase(..) => (PHASE_KEYS, format!("in {}", scope.phase_label())),
        };
        let mut message = format!("unknown key `{k}` {place}");
        if let Some(close) = closest(k, valid.iter().copied()) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        let mut err = self.src().error(ErrorKind::UnknownKey, key.span(), message);
        if matches!(scope, Scope::Top) && PHASE_KEYS.contains(&k) {
            err = err.help_line(format!(
                "`{k}` is a phase setting: put it under a `[[phase]]` (or under `[defaults]` for every phase)"
            ));
        } else if matches!(scope, Scope::Phase(..) | Scope::Defaults) && PIPELINE_KEYS.contains(&k) {
            err = err.help_line(format!(
                "`{k}` is a pipeline setting: put it at the top of the file, before any table"
            ));
        }
        let what = match scope {
            Scope::Top => "the top-level keys",
            Scope::Defaults => "the keys of [defaults]",
            Scope::Phase(..) => "the keys of a phase",
        };
        err.help_line(format!("{what} are {}", list(valid)))
    }
}

/// Where the retry settings that apply to a phase are written (its own or `[defaults]`').
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct PolicySpans {
    /// A `max_retries` above 0.
    pub(super) max_retries: Option<Place>,
    pub(super) retry_delay: Option<Place>,
    pub(super) retry_backoff: Option<Place>,
}

/// A span in one of the pipeline's files: the file's index (0: the pipeline file, then the
/// included ones in the order read) and the span in its text.
pub(super) type Place = (usize, Span);

/// `U+001B (ESC)` and the like.
fn control_name(c: char) -> String {
    let name = match c {
        '\0' => "NUL",
        '\u{7}' => "BEL",
        '\u{8}' => "BS",
        '\t' => "TAB",
        '\n' => "LF, a line break",
        '\r' => "CR",
        '\u{1b}' => "ESC",
        '\u{7f}' => "DEL",
        '\u{9b}' => "CSI",
        c if u32::from(c) >= 0x80 => "a C1 control",
        _ => "a C0 control",
    };
    format!("U+{:04X} ({name})", u32::from(c))
}

/// `own`'s settings over `under`'s (`env` variables merge, `own`'s win).
fn overlay(own: Settings, under: Settings) -> Settings {
    let mut env = under.env;
    env.extend(own.env);
    Settings {
        description: own.description.or(under.description),
        parallel: own.parallel.or(under.parallel),
        weight: own.weight.or(under.weight),
        max_logs: own.max_logs.or(under.max_logs),
        timeout: own.timeout.or(under.timeout),
        cwd: own.cwd.or(under.cwd),
        env,
        env_file: own.env_file.or(under.env_file),
        on_fail: own.on_fail.or(under.on_fail),
        max_retries: own.max_retries.or(under.max_retries),
        retry_delay: own.retry_delay.or(under.retry_delay),
        retry_backoff: own.retry_backoff.or(under.retry_backoff),
        policy_spans: PolicySpans {
            max_retries: own.policy_spans.max_retries.or(under.policy_spans.max_retries),
            retry_delay: own.policy_spans.retry_delay.or(under.policy_spans.retry_delay),
            retry_backoff: own.policy_spans.retry_backoff.or(under.policy_spans.retry_backoff),
        },
        sources: own.sources.or(under.sources),
        outputs: own.outputs.or(under.outputs),
        env_inputs: own.env_inputs.or(under.env_inputs),
        cache: own.cache.or(under.cache),
        shell: own.shell.or(under.shell),
        on_change: own.on_change.or(under.on_change),
        executor: own.executor.or(under.executor),
        slurm: match (under.slurm, own.slurm) {
            (Some(under), Some(own)) => Some(under.overridden_by(&own)),
            (under, own) => own.or(under),
        },
    }
}

/// Fills `phase` from its own settings over the defaults; returns the span of the weight used
/// and of the retry settings.
fn merge(phase: &mut PhaseDef, defaults: &Settings, own: Settings) -> (Option<Place>, PolicySpans) {
    let d = defaults;
    if let Some(description) = own.description.or_else(|| d.description.clone()) {
        phase.description = description;
    }
    phase.parallel = own.parallel.or(d.parallel).unwrap_or(phase.parallel);
    let weight = own.weight.or_else(|| d.weight.clone());
    if let Some((w, _)) = &weight {
        phase.weight = *w;
    }
    phase.max_logs = own.max_logs.or(d.max_logs).unwrap_or(phase.max_logs);
    phase.timeout = own.timeout.or(d.timeout).unwrap_or(phase.timeout);
    phase.cwd = own.cwd.or_else(|| d.cwd.clone());
    // Lowest first: the `env_file` (the phase's, else `[defaults]`'), then `env`.
    phase.env = own.env_file.or_else(|| d.env_file.clone()).unwrap_or_default();
    phase.env.extend(d.env.clone());
    phase.env.extend(own.env);
    phase.sources = own.sources.or_else(|| d.sources.clone()).unwrap_or_default();
    phase.outputs = own.outputs.or_else(|| d.outputs.clone()).unwrap_or_default();
    phase.env_inputs = own.env_inputs.or_else(|| d.env_inputs.clone()).unwrap_or_default();
    phase.cache = own.cache.or(d.cache).unwrap_or(true);
    phase.shell = own.shell.or_else(|| d.shell.clone());
    phase.on_change = own.on_change.or(d.on_change).unwrap_or_default();
    phase.executor = own.executor.or(d.executor).unwrap_or_default();
    phase.slurm = match (&d.slurm, &own.slurm) {
        (Some(d), Some(own)) => d.overridden_by(own),
        (d, own) => own.clone().or_else(|| d.clone()).unwrap_or_default(),
    };
    let base = PhasePolicy::default();
    let spans = PolicySpans {
        max_retries: match own.max_retries {
            Some(_) => own.policy_spans.max_retries.clone(),
            None => d.policy_spans.max_retries.clone(),
        },
        retry_delay: own
            .policy_spans
            .retry_delay
            .clone()
            .or_else(|| d.policy_spans.retry_delay.clone()),
        retry_backoff: own
            .policy_spans
            .retry_backoff
            .clone()
            .or_else(|| d.policy_spans.retry_backoff.clone()),
    };
    phase.policy = PhasePolicy {
        on_fail: own.on_fail.or(d.on_fail).unwrap_or(base.on_fail),
        max_retries: own.max_retries.or(d.max_retries).unwrap_or(base.max_retries),
        retry_delay: own.retry_delay.or(d.retry_delay).unwrap_or(base.retry_delay),
        retry_backoff: own.retry_backoff.or(d.retry_backoff).unwrap_or(base.retry_backoff),
    };
    (weight.map(|(_, span)| span), spans)
}

/// A `run` list as one script that runs the commands in order and stops at the first that
/// fails, with its exit status: each command in a `{ …\n}` group (so that a trailing comment or
/// a `;` list stays inside it) followed by `|| exit $?`, the last one as it is.
pub(crate) fn join_commands(commands: &[String]) -> String {
    match commands {
        [one] => one.clone(),
        _ => {
            let mut script = String::new();
            for (i, c) in commands.iter().enumerate() {
                if i + 1 == commands.len() {
                    script.push_str(c);
                } else {
                    script.push_str(&format!("{{ {}\n}} || exit $?\n", c.trim_end_matches('\n')));
                }
            }
            script
        }
    }
}

/// Why `path` cannot be an output (the cache stores and restores outputs inside the phase's
/// `cwd`, and `.milo/` is milo's own), or `None`.
fn output_problem(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if path.starts_with('/') {
        Some("is absolute: write it relative to the phase's `cwd`")
    } else if parts.is_empty() {
        Some("is the phase's `cwd` itself: name the files or directories the phase writes")
    } else if parts.contains(&"..") {
        Some("leaves the phase's `cwd` (`..`): set the phase's `cwd` to a directory that holds it")
    } else if parts.contains(&".milo") {
        Some("is inside `.milo/`, which belongs to milo")
    } else {
        None
    }
}

/// The table's entries in the order they are written.
fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `name` as it may be printed: control characters escaped (`\u{7}`), so that an error
/// about a name cannot ring the bell or rewrite the screen itself.
fn shown(name: &str) -> Cow<'_, str> {
    if name.chars().any(char::is_control) {
        Cow::Owned(
            name.chars()
                .flat_map(|c| {
                    let escaped: Vec<char> = if c.is_control() {
                        c.escape_unicode().collect()
                    } else {
                        vec![c]
                    };
                    escaped
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(name)
    }
}

/// `"policy.max_retries"` → `"max_retries"`.
fn last_part(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// `` `a`, `b`, `c` ``.
fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", shown(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate most like `word`, if any is close enough to be a likely typo.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let contains = word.len() >= 3 && (c.contains(word.as_str()) || word.contains(c));
            let score = if contains { 0.9 } else { strsim::jaro_winkler(&word, c) };
            (score, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_nothing_for_unrelated_words() {
        let keys = PHASE_KEYS.iter().copied();
        assert_eq!(closest("dependson", keys.clone()), Some("depends_on"));
        assert_eq!(closest("timout", keys.clone()), Some("timeout"));
        assert_eq!(closest("Weight", keys.clone()), Some("weight"));
        assert_eq!(closest("command", keys.clone()), None);
        assert_eq!(closest("retries", POLICY_KEYS.iter().copied()), Some("max_retries"));
        assert_eq!(closest("phases", TOP_KEYS.iter().copied()), Some("phase"));
    }
}

/// `"64MiB"`, `"512 KiB"`, `"1GB"`, `"100"` as bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("is {text:?}: expected a whole number of bytes, optionally with a unit"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("has the unknown unit {other:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("is {text:?}, which is too large"))
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert!(parse_size("5 lots").unwrap_err().contains("unknown unit"));
        assert!(parse_size("huge").is_err());
        assert!(parse_size("99999999999999 GiB").unwrap_err().contains("too large"));
    }
}
