//! The loader's parameters (`[params.NAME]` and their values), templates (`{{ params.x }}`,
//! `{{ matrix.x }}`, rendered by minijinja in strict undefined mode) and matrices.

use std::collections::{BTreeMap, HashMap};

use minijinja::{Environment, UndefinedBehavior, Value as JValue};
use toml::de::{DeTable, DeValue};

use super::super::matrix::{self, Combo, Selector};
use super::super::params::{self, Param, ParamSource, ParamType, ParamValue};
use super::{Cx, ErrorKind, Key, Scope, Span, Value, closest, in_file_order, list, shown};
use crate::config::{ConfigError, PhaseDef, PhasePlaces};

const PARAM_KEYS: &[&str] = &["type", "default", "choices", "required", "help"];

/// The prefix of the variables a matrix instance's values are exported in.
pub(crate) const MATRIX_ENV_PREFIX: &str = "MILO_MATRIX_";

/// The template engine: `{{ … }}` and `{% … %}` only. Comments get delimiters no shell
/// command writes (minijinja's `{# … #}` would swallow `${#array[@]}`), a trailing newline is
/// kept, and an undefined variable is an error.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .comment_delimiters("{#milo-comment#", "#milo-comment#}")
        .build()
    {
        env.set_syntax(syntax);
    }
    env
}

/// What templates see: `params`, and `matrix` in a matrix phase.
#[derive(Debug, Default)]
pub(super) struct Vars {
    pub(super) params: Vec<Param>,
    pub(super) matrix: Option<Combo>,
}

impl Vars {
    fn context(&self) -> JValue {
        let params: BTreeMap<String, JValue> = self
            .params
            .iter()
            .map(|p| (p.name.clone(), template_value(p)))
            .collect();
        let mut cx: BTreeMap<&str, JValue> = BTreeMap::new();
        cx.insert("params", JValue::from_serialize(&params));
        if let Some(combo) = &self.matrix {
            let m: BTreeMap<&str, &str> = combo.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            cx.insert("matrix", JValue::from_serialize(&m));
        }
        JValue::from_serialize(&cx)
    }
}

/// A parameter's value for templates; the placeholder `<NAME>` for a missing one.
fn template_value(p: &Param) -> JValue {
    match (&p.value, p.ty) {
        (Some(v), _) => v.to_template(),
        (None, ParamType::List) => JValue::from(vec![format!("<{}>", p.name)]),
        (None, _) => JValue::from(format!("<{}>", p.name)),
    }
}

/// Where a parameter is written, for the messages about its value.
struct ParamSpans {
    name: Span,
    ty: Option<Span>,
    choices: Option<Span>,
}

/// The builtin functions a template may call without them being variables of ours.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "lipsum", "cycler", "joiner"];

impl Cx<'_> {
    /// `text` (the value of `key`) rendered, if it holds template syntax (`{{` or `{%`).
    pub(super) fn render(
        &self,
        key: &str,
        scope: Scope<'_>,
        value: &Value<'_>,
        text: String,
    ) -> Result<String, ConfigError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text);
        }
        let vars = self.vars.borrow();
        self.jinja
            .render_named_str(key, &text, vars.context())
            .map_err(|e| self.template_error(key, scope, value, &text, &e, &vars))
    }

    fn template_error(
        &self,
        key: &str,
        scope: Scope<'_>,
        value: &Value<'_>,
        text: &str,
        err: &minijinja::Error,
        vars: &Vars,
    ) -> ConfigError {
        let at = format!("`{key}`{}", scope.suffix());
        let literal = "a literal `{{` is written `{{ \"{{\" }}` (and `{%` as `{{ \"{%\" }}`)";
        if err.kind() == minijinja::ErrorKind::UndefinedError
            && let Some(e) = self.undefined(&at, value, text, vars)
        {
            return e;
        }
        let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
        let mut e = self.invalid(value, format!("{at}: template error: {}{detail}", err.kind()));
        if err.kind() == minijinja::ErrorKind::SyntaxError {
            e = e.help_line(literal);
        }
        e.help_line("templates are written `{{ params.NAME }}` and `{{ matrix.KEY }}`")
    }

    /// The message for an undefined variable of `text`, naming it.
    fn undefined(&self, at: &str, value: &Value<'_>, text: &str, vars: &Vars) -> Option<ConfigError> {
        let env = environment();
        let template = env.template_from_str(text).ok()?;
        let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        used.sort();
        let names: Vec<&str> = vars.params.iter().map(|p| p.name.as_str()).collect();
        let keys: Vec<&str> = vars.matrix.iter().flatten().map(|(k, _)| k.as_str()).collect();
        for var in used {
            let mut parts = var.splitn(3, '.');
            let (root, field) = (parts.next().unwrap_or(""), parts.next());
            let e = match (root, field) {
                ("params", None) => continue,
                ("params", Some(p)) if names.contains(&p) => continue,
                ("params", Some(p)) => {
                    let mut message = format!("{at}: `params.{p}` is not a parameter");
                    if let Some(close) = closest(p, names.iter().copied()) {
                        message.push_str(&format!("; did you mean `params.{close}`?"));
                    }
                    let help = if names.is_empty() {
                        format!("the pipeline declares no parameters: declare one with `[params.{p}]`")
                    } else {
                        format!("the parameters are {}", list(&names))
                    };
                    self.invalid(value, message).help_line(help)
                }
                ("matrix", _) if vars.matrix.is_none() => self
                    .invalid(value, format!("{at}: `{var}` is used, but there is no matrix here"))
                    .help_line(
                        "`matrix` is defined in a phase with a `matrix = { KEY = [...] }` table (not in [defaults])",
                    ),
                ("matrix", None) => continue,
                ("matrix", Some(k)) if keys.contains(&k) => continue,
                ("matrix", Some(k)) => {
                    let mut message = format!("{at}: `matrix.{k}` is not a key of this phase's matrix");
                    if let Some(close) = closest(k, keys.iter().copied()) {
                        message.push_str(&format!("; did you mean `matrix.{close}`?"));
                    }
                    self.invalid(value, message)
                        .help_line(format!("the matrix keys are {}", list(&keys)))
                }
                (g, _) if GLOBALS.contains(&g) => continue,
                (other, _) => {
                    let mut message = format!("{at}: `{other}` is not defined");
                    if names.contains(&other) {
                        message.push_str(&format!("; did you mean `params.{other}`?"));
                    } else if keys.contains(&other) {
                        message.push_str(&format!("; did you mean `matrix.{other}`?"));
                    }
                    self.invalid(value, message)
                        .help_line("parameters are written `{{ params.NAME }}` and matrix values `{{ matrix.KEY }}`")
                }
            };
            return Some(e);
        }
        None
    }

    // ---- parameters ----

    /// The `[params]` table, each parameter with its value (from `-p`, the environment or the
    /// default); every mistake is kept, in the file or in the values given.
    pub(super) fn params(&self, value: Option<(&Key<'_>, &Value<'_>)>) -> Vec<Param> {
        let mut defs: Vec<(Param, ParamSpans)> = Vec::new();
        let header = value.map(|(k, _)| k.span());
        if let Some((_, value)) = value {
            match self.table("params", Scope::Top, value, "a table of parameters: `[params.NAME]`") {
                Ok(table) => {
                    for (key, v) in in_file_order(table) {
                        if let Some(def) = self.param(key, v) {
                            defs.push(def);
                        }
                    }
                }
                Err(e) => self.keep::<()>(Err(e)).unwrap_or_default(),
            }
        }
        let mut exported: HashMap<String, &Span> = HashMap::new();
        for (p, spans) in &defs {
            if let Some(earlier) = exported.insert(p.env_name(), &spans.name) {
                self.keep::<()>(Err(self
                    .src()
                    .error(
                        ErrorKind::InvalidValue,
                        spans.name.clone(),
                        format!(
                            "parameter `{}` would be exported as `{}` like an earlier one",
                            p.name,
                            p.env_name()
                        ),
                    )
                    .also(self.src().snippet(earlier.clone()).label("the earlier one"))
                    .help_line("parameter names must differ in more than upper and lower case")));
            }
        }
        self.resolve(&mut defs, header);
        defs.into_iter().map(|(p, _)| p).collect()
    }

    fn param(&self, key: &Key<'_>, value: &Value<'_>) -> Option<(Param, ParamSpans)> {
        let name = key.get_ref().as_ref();
        if !params::is_identifier(name) {
            self.keep::<()>(Err(self
                .src()
                .error(
                    ErrorKind::InvalidValue,
                    key.span(),
                    format!("`{}` is not a valid parameter name", shown(name)),
                )
                .help_line("a parameter name is letters, digits and `_`, not starting with a digit (it is written `{{ params.NAME }}`)")));
            return None;
        }
        let what = format!("params.{name}");
        let table = self.keep(self.table(
            &what,
            Scope::Top,
            value,
            "a table such as `{ type = \"string\", default = \"debug\" }`",
        ))?;
        let entry = |k: &str| table.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v);
        let mut ty = ParamType::String;
        if let Some(v) = entry("type") {
            let text = self.keep(self.string(&format!("{what}.type"), Scope::Top, v))?;
            match ParamType::from_name(&text) {
                Some(t) => ty = t,
                None => {
                    let mut message = format!(
                        "`{what}.type` must be one of {}, found \"{text}\"",
                        list(ParamType::NAMES)
                    );
                    if let Some(close) = closest(&text, ParamType::NAMES.iter().copied()) {
                        message.push_str(&format!("; did you mean \"{close}\"?"));
                    }
                    self.keep::<()>(Err(self.invalid(v, message)));
                    return None;
                }
            }
        }
        let mut param = Param {
            name: name.to_owned(),
            ty,
            default: None,
            choices: Vec::new(),
            required: false,
            help: String::new(),
            value: None,
            source: ParamSource::Missing,
        };
        let spans = ParamSpans {
            name: key.span(),
            ty: entry("type").map(|v| v.span()),
            choices: entry("choices").map(|v| v.span()),
        };
        for (k, v) in in_file_order(table) {
            let key_name = k.get_ref().as_ref();
            let path = format!("{what}.{key_name}");
            let result = (|| -> Result<(), ConfigError> {
                match key_name {
                    "type" => {}
                    "default" => param.default = Some(self.param_value(&path, ty, v)?),
                    "choices" => {
                        let DeValue::Array(items) = v.get_ref() else {
                            return Err(self.wrong_type(&path, Scope::Top, v, "an array of the allowed values"));
                        };
                        let item_type = if ty == ParamType::List { ParamType::String } else { ty };
                        for item in items.iter() {
                            param.choices.push(self.param_value(&path, item_type, item)?);
                        }
                    }
                    "required" => param.required = self.boolean(&path, Scope::Top, v)?,
                    "help" => {
                        let text = self.string(&path, Scope::Top, v)?;
                        param.help = self.no_controls(&path, Scope::Top, v, text)?;
                    }
                    _ => {
                        let mut message = format!("unknown key `{key_name}` in parameter `{name}`");
                        if let Some(close) = closest(key_name, PARAM_KEYS.iter().copied()) {
                            message.push_str(&format!("; did you mean `{close}`?"));
                        }
                        return Err(self
                            .src()
                            .error(super::ErrorKind::UnknownKey, k.span(), message)
                            .help_line(format!("the keys of a parameter are {}", list(PARAM_KEYS))));
                    }
                }
                Ok(())
            })();
            self.keep(result);
        }
        if let (Some(default), Some(v)) = (&param.default, entry("default"))
            && let Err(bad) = default.allowed_by(&param.choices)
        {
            self.keep::<()>(Err(self.invalid(
                v,
                format!(
                    "the default of parameter `{name}` is `{bad}`, which is not one of its choices: {}",
                    choices_text(&param.choices)
                ),
            )));
        }
        match (&param.default, param.required) {
            (None, false) => {
                self.keep::<()>(Err(self
                    .src()
                    .error(
                        ErrorKind::MissingKey,
                        key.span(),
                        format!("parameter `{name}` has neither a `default` nor `required = true`"),
                    )
                    .help_line(format!(
                        "give it a value to use when none is given (`default = ...`), or make it required: `[params.{name}]` with `required = true`"
                    ))));
            }
            (Some(_), true) => {
                if let Some(v) = entry("required") {
                    self.warnings.borrow_mut().push(
                        self.src()
                            .error(
                                ErrorKind::InvalidValue,
                                v.span(),
                                format!("`{what}.required` has no effect: the parameter has a default"),
                            )
                            .warning()
                            .help_line("remove `required = true`, or remove the default to make the value required"),
                    );
                }
            }
            _ => {}
        }
        Some((param, spans))
    }

    /// A `default` or a `choices` entry of type `ty`.
    fn param_value(&self, key: &str, ty: ParamType, value: &Value<'_>) -> Result<ParamValue, ConfigError> {
        let wrong = || {
            self.wrong_type(key, Scope::Top, value, ty.described())
                .help_line(format!("the parameter's `type` is \"{ty}\""))
        };
        Ok(match (ty, value.get_ref()) {
            (ParamType::String, DeValue::String(s)) => ParamValue::String(s.to_string()),
            (ParamType::Int, DeValue::Integer(i)) => {
                let n = i128::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .and_then(|n| i64::try_from(n).ok());
                ParamValue::Int(n.ok_or_else(|| self.too_large(key, Scope::Top, value))?)
            }
            (ParamType::Float, DeValue::Integer(_) | DeValue::Float(_)) => {
                ParamValue::Float(self.number(key, Scope::Top, value)?)
            }
            (ParamType::Bool, DeValue::Boolean(b)) => ParamValue::Bool(*b),
            (ParamType::List, DeValue::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    out.push(self.scalar(key, item)?);
                }
                ParamValue::List(out)
            }
            _ => return Err(wrong()),
        })
    }

    /// A string, a number or a boolean as text (numbers as written: `3.10` stays `3.10`).
    fn scalar(&self, key: &str, value: &Value<'_>) -> Result<String, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                Ok(self.src().text.get(value.span()).unwrap_or_default().trim().to_owned())
            }
            _ => Err(self.wrong_type(key, Scope::Top, value, "a string, a number or a boolean")),
        }
    }

    /// Gives each parameter its value: `-p` over the environment over the default.
    fn resolve(&self, defs: &mut [(Param, ParamSpans)], header: Option<Span>) {
        let names: Vec<&str> = defs.iter().map(|(p, _)| p.name.as_str()).collect();
        let mut given: Vec<Option<&str>> = vec![None; defs.len()];
        for raw in &self.inputs.cli {
            let Some((name, text)) = raw.split_once('=') else {
                self.keep::<()>(Err(ConfigError::new(
                    ErrorKind::Param,
                    format!("`-p {raw}` must be NAME=VALUE"),
                )
                .help_line(format!("write `-p {}=VALUE`", raw.trim()))));
                continue;
            };
            let name = name.trim();
            match names.iter().position(|n| *n == name) {
                Some(i) => given[i] = Some(text),
                None => {
                    let mut message = format!("`-p {raw}`: the pipeline has no parameter `{name}`");
                    if let Some(close) = closest(name, names.iter().copied()) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    let mut e = ConfigError::new(ErrorKind::Param, message);
                    if let Some(span) = &header {
                        e = e.at(self
                            .src()
                            .snippet(span.clone())
                            .label("the parameters are declared here"));
                    }
                    let help = if names.is_empty() {
                        format!("the pipeline declares no parameters: declare it with `[params.{name}]`")
                    } else {
                        format!("the parameters are {}", list(&names))
                    };
                    self.keep::<()>(Err(e.help_line(help)));
                }
            }
        }
        for ((p, spans), given) in defs.iter_mut().zip(given) {
            let env_name = p.env_name();
            let from_env = self
                .inputs
                .env
                .iter()
                .rev()
                .find(|(k, _)| *k == env_name)
                .map(|(_, v)| v.as_str());
            let (text, origin, source) = match (given, from_env) {
                (Some(t), _) => (t, format!("`-p {}={t}`", p.name), ParamSource::CommandLine),
                (None, Some(t)) => (
                    t,
                    format!("`{env_name}={t}` (in the environment)"),
                    ParamSource::Environment,
                ),
                (None, None) => {
                    if let Some(d) = &p.default {
                        p.value = Some(d.clone());
                        p.source = ParamSource::Default;
                    } else if self.inputs.require_all {
                        self.keep::<()>(Err(self
                            .src()
                            .error(
                                ErrorKind::Param,
                                spans.name.clone(),
                                format!("parameter `{}` is required, and no value was given", p.name),
                            )
                            .help_line(format!(
                                "give it with `-p {0}=VALUE` (or `--param {0}=VALUE`), or set {env_name}",
                                p.name
                            ))));
                    }
                    continue;
                }
            };
            let place = spans.ty.clone().unwrap_or_else(|| spans.name.clone());
            match p.ty.parse(text) {
                Err(why) => {
                    self.keep::<()>(Err(self
                        .src()
                        .error(
                            ErrorKind::Param,
                            place,
                            format!("{origin}: {why}, and parameter `{}` is {}", p.name, p.ty),
                        )
                        .help_line(format!("give {}", p.ty.described()))));
                }
                Ok(v) => match v.allowed_by(&p.choices) {
                    Err(bad) => {
                        let choices: Vec<String> = p.choices.iter().map(ToString::to_string).collect();
                        let mut message =
                            format!("{origin}: `{bad}` is not one of the choices of parameter `{}`", p.name);
                        if let Some(close) = closest(&bad, choices.iter().map(String::as_str)) {
                            message.push_str(&format!("; did you mean `{close}`?"));
                        }
                        self.keep::<()>(Err(self
                            .src()
                            .error(ErrorKind::Param, spans.choices.clone().unwrap_or(place), message)
                            .help_line(format!("the choices are {}", choices_text(&p.choices)))));
                    }
                    Ok(()) => {
                        p.value = Some(v);
                        p.source = source;
                    }
                },
            }
        }
    }

    /// Adds `MILO_PARAM_<NAME>` for each parameter and `MILO_MATRIX_<KEY>` for each matrix
    /// value to `phase`'s environment (its own `env` wins).
    pub(super) fn export(&self, phase: &mut PhaseDef) {
        let vars = self.vars.borrow();
        for p in &vars.params {
            let value = match &p.value {
                Some(v) => v.to_string(),
                None => format!("<{}>", p.name),
            };
            phase.env.entry(p.env_name()).or_insert(value);
        }
        if let Some(cell) = &phase.matrix {
            for (k, v) in &cell.values {
                phase
                    .env
                    .entry(format!("{MATRIX_ENV_PREFIX}{}", k.to_ascii_uppercase()))
                    .or_insert_with(|| v.clone());
            }
        }
    }

    // ---- env files ----

    /// `env_file = ".env"` or `env_file = { path = ".env", required = false }`: the file's
    /// variables (read with dotenvy, relative to the pipeline file's directory); a missing file
    /// is an error unless `required = false`.
    pub(super) fn env_file(
        &self,
        scope: Scope<'_>,
        value: &Value<'_>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let (path_value, required) = match value.get_ref() {
            DeValue::String(_) => (value, true),
            DeValue::Table(t) => {
                let mut path = None;
                let mut required = true;
                for (k, v) in in_file_order(t) {
                    match k.get_ref().as_ref() {
                        "path" => path = Some(v),
                        "required" => required = self.boolean("env_file.required", scope, v)?,
                        other => {
                            return Err(self
                                .src()
                                .error(
                                    ErrorKind::UnknownKey,
                                    k.span(),
                                    format!("unknown key `{}` in `env_file`{}", shown(other), scope.suffix()),
                                )
                                .help_line("the keys of `env_file` are `path` and `required`"));
                        }
                    }
                }
                let Some(path) = path else {
                    return Err(self
                        .src()
                        .error(
                            ErrorKind::MissingKey,
                            value.span(),
                            format!("`env_file`{} has no `path`", scope.suffix()),
                        )
                        .help_line("write `env_file = { path = \".env\", required = false }`"));
                };
                (path, required)
            }
            _ => {
                return Err(self.wrong_type(
                    "env_file",
                    scope,
                    value,
                    "a path or `{ path = \".env\", required = false }`",
                ));
            }
        };
        let text = self.non_empty_string("env_file", scope, path_value)?;
        let text = self.render("env_file", scope, path_value, text)?;
        let text = self.no_nul("env_file", scope, path_value, text)?;
        let path = self.dir().join(&text);
        let iter = match dotenvy::from_path_iter(&path) {
            Ok(iter) => iter,
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(BTreeMap::new());
            }
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self
                    .invalid(
                        path_value,
                        format!("`env_file`{}: there is no file `{}`", scope.suffix(), path.display()),
                    )
                    .help_line(format!(
                        "create it, or make it optional: `env_file = {{ path = \"{text}\", required = false }}`"
                    )));
            }
            Err(e) => {
                return Err(self.invalid(
                    path_value,
                    format!("`env_file`{}: cannot read `{}`: {e}", scope.suffix(), path.display()),
                ));
            }
        };
        let mut vars = BTreeMap::new();
        for item in iter {
            match item {
                Ok((k, v)) => {
                    vars.insert(k, v);
                }
                Err(e) => {
                    return Err(self.invalid(
                        path_value,
                        format!(
                            "`env_file`{}: `{}` is not a valid env file: {e}",
                            scope.suffix(),
                            path.display()
                        ),
                    ));
                }
            }
        }
        Ok(vars)
    }

    // ---- matrices ----

    /// The combinations of a phase's `matrix`, `matrix_exclude` and `matrix_include`; `None`
    /// after a mistake (kept).
    pub(super) fn matrix(&self, table: &DeTable<'_>, scope: Scope<'_>) -> Option<Vec<Combo>> {
        let entry = |k: &str| table.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v);
        let ok = std::cell::Cell::new(true);
        let fail = |e: ConfigError| {
            ok.set(false);
            self.keep::<()>(Err(e));
        };
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(value) = entry("matrix") {
            match value.get_ref() {
                DeValue::Table(m) => {
                    for (k, v) in in_file_order(m) {
                        let key = k.get_ref().as_ref();
                        if !params::is_identifier(key) {
                            fail(self.src().error(
                                ErrorKind::InvalidValue,
                                k.span(),
                                format!(
                                    "`{}` is not a valid matrix key{}: use letters, digits and `_`",
                                    shown(key),
                                    scope.suffix()
                                ),
                            ));
                            continue;
                        }
                        match self.matrix_values(key, scope, v) {
                            Ok(values) => keys.push((key.to_owned(), values)),
                            Err(e) => fail(e),
                        }
                    }
                }
                _ => fail(self.wrong_type(
                    "matrix",
                    scope,
                    value,
                    "a table of lists: `matrix = { python = [\"3.12\", \"3.13\"] }`",
                )),
            }
        }
        let exclude = match entry("matrix_exclude") {
            Some(v) if keys.is_empty() && ok.get() => {
                fail(self.invalid(v, format!("`matrix_exclude`{} needs a `matrix`", scope.suffix())));
                Vec::new()
            }
            Some(v) => self
                .combos("matrix_exclude", scope, v, Some(&keys))
                .unwrap_or_else(|e| {
                    fail(e);
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let include = match entry("matrix_include") {
            Some(v) => self.combos("matrix_include", scope, v, None).unwrap_or_else(|e| {
                fail(e);
                Vec::new()
            }),
            None => Vec::new(),
        };
        if !ok.get() {
            return None;
        }
        let combos = matrix::expand(&keys, &exclude, &include);
        if combos.is_empty() {
            let span = entry("matrix")
                .or(entry("matrix_include"))
                .map(|v| v.span())
                .unwrap_or_default();
            fail(
                self.src()
                    .error(
                        ErrorKind::InvalidValue,
                        span,
                        format!("the matrix{} has no combinations", scope.suffix()),
                    )
                    .help_line("each key needs at least one value, and `matrix_exclude` must leave one combination"),
            );
            return None;
        }
        Some(combos)
    }

    /// One matrix key's values: an array, or `"{{ params.NAME }}"` naming a list parameter.
    fn matrix_values(&self, key: &str, scope: Scope<'_>, value: &Value<'_>) -> Result<Vec<String>, ConfigError> {
        let path = format!("matrix.{key}");
        let values = match value.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    let text = self.scalar(&path, item)?;
                    out.push((self.render(&path, scope, item, text)?, item.span()));
                }
                out
            }
            DeValue::String(s) => {
                let expr = s
                    .trim()
                    .strip_prefix("{{")
                    .and_then(|e| e.strip_suffix("}}"))
                    .map(str::trim)
                    .filter(|e| !e.is_empty() && !e.contains("}}"));
                let Some(expr) = expr else {
                    return Err(self
                        .wrong_type(&path, scope, value, "an array of values")
                        .help_line(format!("write `{key} = [\"a\", \"b\"]`, or `{key} = \"{{{{ params.NAME }}}}\"` with a list parameter")));
                };
                let vars = self.vars.borrow();
                let evaluated = self
                    .jinja
                    .compile_expression_owned(expr.to_owned())
                    .and_then(|e| e.eval(vars.context()));
                let list = match evaluated {
                    Ok(v) if v.kind() == minijinja::value::ValueKind::Seq => v,
                    Ok(v) => {
                        return Err(self
                            .invalid(
                                value,
                                format!(
                                    "`{path}`{} must give a list, and `{expr}` is {}",
                                    scope.suffix(),
                                    v.kind()
                                ),
                            )
                            .help_line("use a parameter with `type = \"list\"`"));
                    }
                    Err(e) => {
                        let text = s.to_string();
                        return Err(self.template_error(&path, scope, value, &text, &e, &vars));
                    }
                };
                let items: Vec<JValue> = list.try_iter().map(Iterator::collect).unwrap_or_default();
                items.iter().map(|v| (v.to_string(), value.span())).collect()
            }
            _ => {
                return Err(self.wrong_type(&path, scope, value, "an array of values"));
            }
        };
        let mut out = Vec::with_capacity(values.len());
        for (v, span) in values {
            self.check_matrix_text(&path, scope, &v, span)?;
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// A matrix value is part of phase names: not empty, without `,`, `=`, `[`, `]`, `*` or
    /// control characters.
    fn check_matrix_text(&self, path: &str, scope: Scope<'_>, v: &str, span: Span) -> Result<(), ConfigError> {
        if v.is_empty() || v.contains([',', '=', '[', ']', '*']) || v.chars().any(char::is_control) {
            return Err(self
                .src()
                .error(
                    ErrorKind::InvalidValue,
                    span,
                    format!(
                        "`{path}`{}: the value {:?} cannot be part of a phase name",
                        scope.suffix(),
                        v
                    ),
                )
                .help_line("matrix values must be non-empty, without `,`, `=`, `[`, `]`, `*` or control characters"));
        }
        Ok(())
    }

    /// `matrix_exclude` or `matrix_include`: an array of tables of values; an exclude names
    /// only `keys`.
    fn combos(
        &self,
        key: &str,
        scope: Scope<'_>,
        value: &Value<'_>,
        keys: Option<&[(String, Vec<String>)]>,
    ) -> Result<Vec<Combo>, ConfigError> {
        let example = format!("write `{key} = [{{ python = \"3.11\", suite = \"unit\" }}]`");
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self
                .wrong_type(key, scope, value, "an array of tables")
                .help_line(example));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let DeValue::Table(t) = item.get_ref() else {
                return Err(self
                    .wrong_type(key, scope, item, "a table of matrix values")
                    .help_line(example));
            };
            if t.is_empty() {
                return Err(self.invalid(
                    item,
                    format!("`{key}`{} entries must name at least one key", scope.suffix()),
                ));
            }
            let mut combo = Combo::new();
            for (k, v) in in_file_order(t) {
                let name = k.get_ref().as_ref();
                if let Some(keys) = keys
                    && !keys.iter().any(|(known, _)| known == name)
                {
                    let known: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                    let mut message = format!("`{key}`{}: `{}` is not a matrix key", scope.suffix(), shown(name));
                    if let Some(close) = closest(name, known.iter().copied()) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    return Err(self
                        .src()
                        .error(ErrorKind::UnknownKey, k.span(), message)
                        .help_line(format!("the matrix keys are {}", list(&known))));
                }
                if !params::is_identifier(name) {
                    return Err(self.src().error(
                        ErrorKind::InvalidValue,
                        k.span(),
                        format!(
                            "`{}` is not a valid matrix key: use letters, digits and `_`",
                            shown(name)
                        ),
                    ));
                }
                let path = format!("{key}.{name}");
                let text = self.scalar(&path, v)?;
                let text = self.render(&path, scope, v, text)?;
                self.check_matrix_text(&path, scope, &text, v.span())?;
                combo.push((name.to_owned(), text));
            }
            out.push(combo);
        }
        Ok(out)
    }

    /// `depends_on` entries naming a matrix phase (`test`: every instance) or a selector of
    /// instances (`test[python=3.12,*]`) replaced by the instances' names; a selector that
    /// matches nothing is an error.
    pub(super) fn expand_dependencies(&self, phases: &mut [PhaseDef], places: &mut [PhasePlaces]) {
        let names: std::collections::HashSet<String> = phases.iter().map(|p| p.name.clone()).collect();
        let cells: Vec<(String, String, Combo)> = phases
            .iter()
            .filter_map(|p| {
                let c = p.matrix.as_ref()?;
                Some((p.name.clone(), c.phase.clone(), c.values.clone()))
            })
            .collect();
        if cells.is_empty() {
            return;
        }
        for (phase, place) in phases.iter_mut().zip(places.iter_mut()) {
            let deps = std::mem::take(&mut phase.depends_on);
            let spans = std::mem::take(&mut place.depends_on);
            for (dep, span) in deps.into_iter().zip(spans) {
                if names.contains(&dep) {
                    phase.depends_on.push(dep);
                    place.depends_on.push(span);
                    continue;
                }
                let selector = Selector::parse(&dep);
                let matched: Vec<&String> = cells
                    .iter()
                    .filter(|(_, base, combo)| match &selector {
                        Some(s) => s.matches(base, combo),
                        None => *base == dep,
                    })
                    .map(|(name, _, _)| name)
                    .collect();
                match (&selector, matched.is_empty()) {
                    (_, false) => {
                        for m in matched {
                            phase.depends_on.push(m.clone());
                            place.depends_on.push(span.clone());
                        }
                    }
                    (Some(s), true) if cells.iter().any(|(_, base, _)| base == s.base) => {
                        let instances: Vec<&str> = cells
                            .iter()
                            .filter(|(_, base, _)| base == s.base)
                            .map(|(n, _, _)| n.as_str())
                            .collect();
                        self.keep::<()>(Err(self
                            .file_src(place.file)
                            .error(
                                ErrorKind::UnknownDependency,
                                span,
                                format!(
                                    "phase `{}` depends on `{}`, which matches no instance of matrix phase `{}`",
                                    shown(&phase.name),
                                    shown(&dep),
                                    shown(s.base)
                                ),
                            )
                            .help_line(format!("its instances are {}", list(&instances)))
                            .help_line(format!(
                                "name values of its keys and `*` for the others: `{}[KEY=VALUE,*]`",
                                shown(s.base)
                            ))));
                    }
                    _ => {
                        phase.depends_on.push(dep);
                        place.depends_on.push(span);
                    }
                }
            }
        }
    }

    /// Whether `dep` names a matrix phase whose matrix was wrong (already reported).
    pub(super) fn is_broken_dependency(&self, dep: &str) -> bool {
        let base = Selector::parse(dep).map_or(dep, |s| s.base);
        self.broken.borrow().iter().any(|b| b == base)
    }
}

/// `` `debug`, `release` ``.
fn choices_text(choices: &[ParamValue]) -> String {
    choices.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}
