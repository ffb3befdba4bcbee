//! Actions: the messages that flow into a [`Store`](crate::Store).
//!
//! An action has a type name and a payload. Built-in actions are `@@`-prefixed
//! (`@@INIT`, `@@SAGA_CANCELLED`, `@@SAGA_ERROR`). Every action serializes to JSON as
//! `{"type": "...", "payload": ...}`: that is the wire format of the JSON stream, the
//! run journal and the MCP server.
//!
//! Stores are generic over the action type. A typed enum (such as
//! [`PipelineAction`](crate::pipeline::PipelineAction)) is the fast path; [`DynAction`] is a
//! dynamic action for code that wants Python-like freedom.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The type name of the action a store dispatches when it is created.
pub const INIT: &str = "@@INIT";
/// The type name of the action dispatched when a saga is cancelled.
pub const SAGA_CANCELLED: &str = "@@SAGA_CANCELLED";
/// The type name of the action dispatched when a saga returns an error or panics.
pub const SAGA_ERROR: &str = "@@SAGA_ERROR";

/// Actions the store and the saga runtime dispatch by themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// `@@INIT`: dispatched once by [`Store::new`](crate::Store::new).
    Init,
    /// `@@SAGA_CANCELLED`: a saga was cancelled before it finished.
    SagaCancelled {
        /// The saga's label.
        saga: String,
    },
    /// `@@SAGA_ERROR`: a saga returned an error or panicked.
    SagaError {
        /// The saga's label.
        saga: String,
        /// The error or panic message.
        error: String,
    },
}

/// What a store needs from its action type.
///
/// `type_name` is the `"type"` field of the JSON form; `from_builtin` lets the store and the
/// saga runtime dispatch `@@INIT`, `@@SAGA_CANCELLED` and `@@SAGA_ERROR` into any action type.
pub trait Action: Send + Sync + 'static {
    /// The action's type name, e.g. `"@@PHASE_START"`.
    fn type_name(&self) -> &str;
    /// Builds the built-in action `builtin` in this action type.
    fn from_builtin(builtin: Builtin) -> Self;
}

/// A dynamic action: a type name and an arbitrary JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynAction {
    /// The type name, e.g. `"increment"` or `"@@INIT"`.
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// The payload; `null` when the action carries nothing.
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl DynAction {
    /// An action of type `kind` with a `null` payload; does not allocate for a static name.
    pub fn new(kind: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: kind.into(),
            payload: serde_json::Value::Null,
        }
    }

    /// An action of type `kind` with `payload`.
    pub fn with_payload(kind: impl Into<Cow<'static, str>>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
        }
    }
}

impl Action for DynAction {
    fn type_name(&self) -> &str {
        &self.kind
    }

    fn from_builtin(builtin: Builtin) -> Self {
        match builtin {
            Builtin::Init => DynAction::new(INIT),
            Builtin::SagaCancelled { saga } => {
                DynAction::with_payload(SAGA_CANCELLED, serde_json::json!({ "saga": saga }))
            }
            Builtin::SagaError { saga, error } => {
                DynAction::with_payload(SAGA_ERROR, serde_json::json!({ "saga": saga, "error": error }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dyn_action_serializes_as_type_and_payload() {
        let a = DynAction::with_payload("add", serde_json::json!({"n": 2}));
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(text, r#"{"type":"add","payload":{"n":2}}"#);
        let back: DynAction = serde_json::from_str(&text).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn builtins_have_at_at_names() {
        let init = DynAction::from_builtin(Builtin::Init);
        assert_eq!(
            serde_json::to_string(&init).unwrap(),
            r#"{"type":"@@INIT","payload":null}"#
        );
        let err = DynAction::from_builtin(Builtin::SagaError {
            saga: "s".into(),
            error: "e".into(),
        });
        assert_eq!(err.type_name(), "@@SAGA_ERROR");
        assert_eq!(err.payload["error"], "e");
    }
}
