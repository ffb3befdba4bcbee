//! `milo params` (and `milo run --help-params`): the pipeline's parameters, with the values a
//! run would give them.

use std::fmt::Write as _;

use serde_json::json;

use super::inspect::load_file;
use super::write_stdout;
use crate::cli::ListArgs;
use crate::config::{Param, ParamValue, PipelineFile, resolved_params};
use crate::error::CliError;

pub fn params(args: &ListArgs) -> Result<u8, CliError> {
    let f = load_file(&args.file, &args.params)?;
    let text = if args.json {
        let list: Vec<serde_json::Value> = f.params.iter().map(to_json).collect();
        serde_json::to_string_pretty(&list).map_err(|e| CliError::Internal(e.to_string()))? + "\n"
    } else if f.params.is_empty() {
        format!(
            "{}: pipeline `{}` has no parameters (declare them with `[params.NAME]`)\n",
            args.file.file.display(),
            f.name
        )
    } else {
        table(&f.params, "")
    };
    write_stdout(text.as_bytes())?;
    Ok(0)
}

fn value_json(v: &ParamValue) -> serde_json::Value {
    match v {
        ParamValue::String(s) => json!(s),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(f) => json!(f),
        ParamValue::Bool(b) => json!(b),
        ParamValue::List(l) => json!(l),
    }
}

fn to_json(p: &Param) -> serde_json::Value {
    json!({
        "name": p.name,
        "type": p.ty.name(),
        "default": p.default.as_ref().map(value_json),
        "choices": p.choices.iter().map(value_json).collect::<Vec<_>>(),
        "required": p.required,
        "help": p.help,
        "value": p.value.as_ref().map(value_json),
        "source": p.source.label(),
        "env": p.env_name(),
    })
}

/// One entry per parameter, each line starting with `indent`:
///
/// ```text
/// target (string) = release   [from -p]
///     Build profile
///     default: debug; choices: debug, release
/// ```
pub(super) fn table(params: &[Param], indent: &str) -> String {
    let mut out = String::new();
    for p in params {
        let value = match &p.value {
            Some(v) => format!("= {v}   [from {}]", p.source.label()),
            None => format!("needs a value: -p {}=VALUE (or {})", p.name, p.env_name()),
        };
        let _ = writeln!(out, "{indent}{} ({}) {value}", p.name, p.ty);
        if !p.help.is_empty() {
            let _ = writeln!(out, "{indent}    {}", p.help);
        }
        let mut facts = Vec::new();
        match &p.default {
            Some(d) => facts.push(format!("default: {d}")),
            None => facts.push("required".to_owned()),
        }
        if !p.choices.is_empty() {
            let choices: Vec<String> = p.choices.iter().map(ToString::to_string).collect();
            facts.push(format!("choices: {}", choices.join(", ")));
        }
        let _ = writeln!(out, "{indent}    {}", facts.join("; "));
    }
    out
}

/// `target=release, version=1.2` for a pipeline with parameters.
pub(super) fn line(file: &PipelineFile) -> Option<String> {
    let values = resolved_params(file);
    (!values.is_empty()).then(|| {
        values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The JSON schema of the parameters, as the MCP `run_pipeline` tool's `params` argument: a
/// property per parameter with its type, choices (`enum`), default and help.
pub(crate) fn json_schema(params: &[Param]) -> serde_json::Map<String, serde_json::Value> {
    use crate::config::ParamType;
    let mut properties = serde_json::Map::new();
    for p in params {
        let mut prop = match p.ty {
            ParamType::String => json!({"type": "string"}),
            ParamType::Int => json!({"type": "integer"}),
            ParamType::Float => json!({"type": "number"}),
            ParamType::Bool => json!({"type": "boolean"}),
            ParamType::List => json!({"type": "array", "items": {"type": "string"}}),
        };
        if let Some(obj) = prop.as_object_mut() {
            if !p.choices.is_empty() {
                let choices = p.choices.iter().map(value_json).collect::<Vec<_>>();
                match p.ty {
                    // Each item of a list is one of the choices.
                    ParamType::List => {
                        obj.insert("items".into(), json!({"type": "string", "enum": choices}));
                    }
                    _ => {
                        obj.insert("enum".into(), json!(choices));
                    }
                }
            }
            if let Some(d) = &p.default {
                obj.insert("default".into(), value_json(d));
            }
            if !p.help.is_empty() {
                obj.insert("description".into(), json!(p.help));
            }
        }
        properties.insert(p.name.clone(), prop);
    }
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required && p.default.is_none())
        .map(|p| p.name.as_str())
        .collect();
    let mut schema = serde_json::Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), serde_json::Value::Object(properties));
    schema.insert("additionalProperties".into(), json!(false));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema
}

/// A JSON value given for a parameter as `-p` would give it: a string as it is, a number or
/// a boolean written out, an array of strings comma-joined.
pub(crate) fn cli_value(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        serde_json::Value::Null | serde_json::Value::Object(_) => None,
    }
}
