//! Pipeline parameters (`[params.NAME]`): their types and values, and how a value given on
//! the command line (`-p NAME=VALUE`) or in the environment (`MILO_PARAM_NAME`) is read.

use std::fmt;

/// What a parameter holds (`type = "..."`; default `"string"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    /// A list of strings; comma-separated on the command line and in the environment.
    List,
}

impl ParamType {
    /// The names `type` accepts, in the order they are listed in messages.
    pub const NAMES: &'static [&'static str] = &["string", "int", "float", "bool", "list"];

    /// The type called `name` (`"string"`, `"int"`…).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "int" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "list" => Self::List,
            _ => return None,
        })
    }

    /// `"string"`, `"int"`…
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::List => "list",
        }
    }

    /// `a string`, `an integer`… for messages.
    pub(crate) fn described(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Int => "an integer (such as 4 or -1)",
            Self::Float => "a number (such as 0.5)",
            Self::Bool => "a boolean (`true` or `false`)",
            Self::List => "a list (comma-separated on the command line: `a,b,c`)",
        }
    }

    /// `text` (from `-p` or the environment) as a value of this type.
    pub fn parse(self, text: &str) -> Result<ParamValue, String> {
        Ok(match self {
            Self::String => ParamValue::String(text.to_owned()),
            Self::Int => ParamValue::Int(text.trim().parse().map_err(|_| format!("`{text}` is not an integer"))?),
            Self::Float => match text.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => ParamValue::Float(f),
                _ => return Err(format!("`{text}` is not a finite number")),
            },
            Self::Bool => match text.trim() {
                "true" => ParamValue::Bool(true),
                "false" => ParamValue::Bool(false),
                _ => return Err(format!("`{text}` is not `true` or `false`")),
            },
            Self::List => ParamValue::List(split_list(text)),
        })
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `"3.11, 3.12"` → `["3.11", "3.12"]`; an empty text is the empty list.
fn split_list(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    text.split(',').map(|s| s.trim().to_owned()).collect()
}

/// A parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
}

impl ParamValue {
    /// The value for templates: `{{ params.jobs + 1 }}` works for an int, `{% for p in
    /// params.pythons %}` for a list.
    pub(crate) fn to_template(&self) -> minijinja::Value {
        match self {
            Self::String(s) => minijinja::Value::from(s.as_str()),
            Self::Int(i) => minijinja::Value::from(*i),
            Self::Float(f) => minijinja::Value::from(*f),
            Self::Bool(b) => minijinja::Value::from(*b),
            Self::List(l) => minijinja::Value::from(l.clone()),
        }
    }

    /// Whether `self` is allowed by `choices` (for a list, each of its items).
    pub(crate) fn allowed_by(&self, choices: &[ParamValue]) -> Result<(), String> {
        if choices.is_empty() {
            return Ok(());
        }
        match self {
            Self::List(items) => match items.iter().find(|i| !choices.iter().any(|c| c.to_string() == **i)) {
                Some(bad) => Err(bad.clone()),
                None => Ok(()),
            },
            v if choices.contains(v) => Ok(()),
            v => Err(v.to_string()),
        }
    }
}

/// As exported in `MILO_PARAM_NAME`: the text, the number, `true`/`false`, the list's items
/// joined with commas.
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::List(l) => f.write_str(&l.join(",")),
        }
    }
}

/// Where a parameter's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamSource {
    /// `-p NAME=VALUE` (or `--param`).
    CommandLine,
    /// `MILO_PARAM_NAME` in milo's environment.
    Environment,
    /// The file's `default`.
    Default,
    /// None: a required parameter without a value, which `milo check` and the inspecting
    /// commands accept (templates then see the placeholder `<NAME>`).
    Missing,
}

impl ParamSource {
    /// `"-p"`, `"environment"`, `"default"`, `"missing"`.
    pub fn label(self) -> &'static str {
        match self {
            Self::CommandLine => "-p",
            Self::Environment => "environment",
            Self::Default => "default",
            Self::Missing => "missing",
        }
    }
}

/// One `[params.NAME]`, with its value for this load.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    pub default: Option<ParamValue>,
    /// Empty: any value of the type.
    pub choices: Vec<ParamValue>,
    pub required: bool,
    pub help: String,
    /// The value templates and `MILO_PARAM_NAME` get; `None` when [`ParamSource::Missing`].
    pub value: Option<ParamValue>,
    pub source: ParamSource,
}

impl Param {
    /// The variable the value is read from and exported in: `MILO_PARAM_` and the name
    /// upper-cased.
    pub fn env_name(&self) -> String {
        env_name(&self.name)
    }
}

/// `MILO_PARAM_TARGET` for `target`.
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())
}

/// The prefix of the environment variables that set parameters.
pub const ENV_PREFIX: &str = "MILO_PARAM_";

/// Where the values of parameters come from, besides the file's defaults.
#[derive(Debug, Clone, Default)]
pub struct ParamInputs {
    /// `-p NAME=VALUE`, as given (a later one for the same name wins).
    pub cli: Vec<String>,
    /// The `MILO_PARAM_*` variables of milo's environment.
    pub env: Vec<(String, String)>,
    /// Whether a required parameter without a value is an error (`milo run`), or only noted
    /// (`milo check` and the commands that only show the pipeline).
    pub require_all: bool,
}

impl ParamInputs {
    /// `-p` values and the `MILO_PARAM_*` variables of this process's environment.
    pub fn new(cli: Vec<String>, require_all: bool) -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        Self { cli, env, require_all }
    }
}

/// The check of a parameter name: an identifier (`[A-Za-z_][A-Za-z0-9_]*`), so that it can be
/// written `{{ params.NAME }}` and exported as `MILO_PARAM_NAME`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_by_type_and_display_as_exported() {
        assert_eq!(ParamType::Int.parse(" 4 "), Ok(ParamValue::Int(4)));
        assert!(ParamType::Int.parse("abc").is_err());
        assert!(ParamType::Float.parse("inf").is_err());
        assert_eq!(ParamType::Bool.parse("true"), Ok(ParamValue::Bool(true)));
        assert!(ParamType::Bool.parse("yes").is_err());
        let list = ParamType::List.parse("3.11, 3.12").expect("a list");
        assert_eq!(list.to_string(), "3.11,3.12");
        assert_eq!(ParamType::List.parse(""), Ok(ParamValue::List(vec![])));
        assert!(is_identifier("build_2") && !is_identifier("2x") && !is_identifier("a-b"));
    }

    #[test]
    fn choices_apply_to_each_list_item() {
        let choices = [ParamValue::String("a".into()), ParamValue::String("b".into())];
        assert_eq!(
            ParamValue::List(vec!["a".into(), "b".into()]).allowed_by(&choices),
            Ok(())
        );
        assert_eq!(
            ParamValue::List(vec!["a".into(), "c".into()]).allowed_by(&choices),
            Err("c".into())
        );
        assert_eq!(ParamValue::String("c".into()).allowed_by(&choices), Err("c".into()));
        assert_eq!(ParamValue::Int(3).allowed_by(&[]), Ok(()));
    }
}
