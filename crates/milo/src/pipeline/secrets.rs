//! [`Secrets`]: the values a run must never show or record, and masking them as `***`.
//!
//! A pipeline carries one ([`Pipeline::with_secrets`](super::Pipeline::with_secrets)); the
//! saga masks every action it dispatches with it (captured lines, errors, results), so no
//! view, history, report, MCP resource or JSON stream sees a secret value, as CI systems
//! mask secrets in their logs. Leftmost-longest matching: of two secrets where one contains
//! the other, the longer one is masked whole.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use super::action::PipelineAction;

/// What a secret value is replaced with.
pub const MASK: &str = "***";

/// A set of secret values and their matcher. Empty by default (masks nothing, costs
/// nothing).
#[derive(Clone, Default)]
pub struct Secrets {
    matcher: Option<Arc<AhoCorasick>>,
    count: usize,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values themselves.
        f.debug_struct("Secrets").field("count", &self.count).finish()
    }
}

impl Secrets {
    /// The secrets `values`. Empty values are ignored; a value of several lines also masks
    /// each of its lines on its own (captured output arrives a line at a time).
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = Vec::new();
        for v in values {
            let v = v.as_ref();
            if v.is_empty() {
                continue;
            }
            needles.push(v.to_owned());
            if v.contains('\n') {
                needles.extend(
                    v.lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_owned),
                );
            }
        }
        needles.sort();
        needles.dedup();
        if needles.is_empty() {
            return Self::default();
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
            .ok()
            .map(Arc::new);
        Self {
            count: needles.len(),
            matcher,
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret value replaced by [`MASK`] (borrowed when there is none).
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => Cow::Owned(m.replace_all(text, &vec![MASK; self.count])),
            _ => Cow::Borrowed(text),
        }
    }

    /// [`mask`](Self::mask) for an `Arc<str>`: the same `Arc` when there is nothing to mask.
    fn mask_arc(&self, text: &Arc<str>) -> Arc<str> {
        match self.mask(text) {
            Cow::Borrowed(_) => text.clone(),
            Cow::Owned(s) => s.into(),
        }
    }

    /// Every string of `value` (keys too) masked; `None` when nothing changed.
    pub fn mask_json(&self, value: &serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match value {
            Value::String(s) => match self.mask(s) {
                Cow::Owned(m) => Some(Value::String(m)),
                Cow::Borrowed(_) => None,
            },
            Value::Array(items) => {
                let masked: Vec<Option<Value>> = items.iter().map(|v| self.mask_json(v)).collect();
                masked.iter().any(Option::is_some).then(|| {
                    Value::Array(
                        masked
                            .into_iter()
                            .zip(items)
                            .map(|(m, v)| m.unwrap_or_else(|| v.clone()))
                            .collect(),
                    )
                })
            }
            Value::Object(map) => {
                let mut changed = false;
                let out = map
                    .iter()
                    .map(|(k, v)| {
                        let key = self.mask(k);
                        let value = self.mask_json(v);
                        changed |= matches!(key, Cow::Owned(_)) || value.is_some();
                        (key.into_owned(), value.unwrap_or_else(|| v.clone()))
                    })
                    .collect();
                changed.then_some(Value::Object(out))
            }
            _ => None,
        }
    }

    /// `action` with every secret in its text (captured line, error, result, names) masked.
    pub fn mask_action(&self, action: PipelineAction) -> PipelineAction {
        use PipelineAction as A;
        if self.is_empty() {
            return action;
        }
        match action {
            A::PhaseLog {
                name,
                line,
                stream,
                timestamp,
            } => A::PhaseLog {
                line: self.mask_arc(&line),
                name,
                stream,
                timestamp,
            },
            A::PhaseComplete {
                name,
                result,
                timestamp,
                reused_from,
            } => A::PhaseComplete {
                result: self.mask_json(&result).map_or(result, Arc::new),
                name,
                timestamp,
                reused_from,
            },
            A::PhaseFailed { name, error, timestamp } => A::PhaseFailed {
                error: self.mask(&error).into_owned(),
                name,
                timestamp,
            },
            A::PhaseSkipped { name, error, timestamp } => A::PhaseSkipped {
                error: self.mask(&error).into_owned(),
                name,
                timestamp,
            },
            A::PhaseRetry {
                name,
                attempt,
                error,
                max_retries,
                delay,
                timestamp,
            } => A::PhaseRetry {
                error: self.mask(&error).into_owned(),
                name,
                attempt,
                max_retries,
                delay,
                timestamp,
            },
            A::PipelineFailed { error, timestamp } => A::PipelineFailed {
                error: self.mask(&error).into_owned(),
                timestamp,
            },
            A::SagaError { saga, error } => A::SagaError {
                error: self.mask(&error).into_owned(),
                saga,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_anywhere_longest_first() {
        let s = Secrets::new(["s3cr3t", "s3cr3t-and-more", "", "line one\nline two"]);
        assert_eq!(s.mask("token=s3cr3t;"), "token=***;");
        assert_eq!(s.mask("s3cr3t-and-more and s3cr3t"), "*** and ***");
        assert_eq!(s.mask("got line two"), "got ***");
        assert!(matches!(s.mask("nothing here"), Cow::Borrowed(_)));
        assert!(Secrets::new([""]).is_empty());
        assert_eq!(format!("{s:?}"), "Secrets { count: 5 }");
        let json = serde_json::json!({"a": ["x s3cr3t", 1], "s3cr3t": null});
        assert_eq!(
            s.mask_json(&json),
            Some(serde_json::json!({"a": ["x ***", 1], "***": null}))
        );
        assert_eq!(s.mask_json(&serde_json::json!({"a": 1})), None);
    }
}
