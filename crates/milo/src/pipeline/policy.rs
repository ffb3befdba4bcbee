//! [`PhasePolicy`]: what happens when a phase's handler fails (stop, skip or retry).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::saga::Backoff;
use crate::saga::effect_backoff_delay;

/// The longest wait between retries, whatever the backoff.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What a failing phase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFail {
    /// The phase fails and the pipeline fails; no new phase starts.
    #[default]
    Stop,
    /// The phase is skipped (its error kept); dependents run and see no result.
    Skip,
    /// The phase runs again, up to `max_retries` more times.
    Retry,
}

/// How the wait between retries grows: `fixed`, or `exponential` (`retry_delay × 2^(attempt-1)`,
/// capped at 30 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryBackoff {
    /// Always `retry_delay`.
    #[default]
    Fixed,
    /// `retry_delay × 2^(attempt-1)`, capped at 30 s.
    Exponential,
}

/// A value that is not a valid policy field, with what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} `{value}`: expected one of {expected}")]
pub struct InvalidPolicyValue {
    /// The field being parsed (`on_fail`, `retry_backoff`).
    pub field: &'static str,
    /// What was given.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl FromStr for OnFail {
    type Err = InvalidPolicyValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stop" => Ok(OnFail::Stop),
            "skip" => Ok(OnFail::Skip),
            "retry" => Ok(OnFail::Retry),
            _ => Err(InvalidPolicyValue {
                field: "on_fail",
                value: s.to_owned(),
                expected: "\"stop\", \"skip\", \"retry\"",
            }),
        }
    }
}

impl FromStr for RetryBackoff {
    type Err = InvalidPolicyValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fixed" => Ok(RetryBackoff::Fixed),
            "exponential" => Ok(RetryBackoff::Exponential),
            _ => Err(InvalidPolicyValue {
                field: "retry_backoff",
                value: s.to_owned(),
                expected: "\"fixed\", \"exponential\"",
            }),
        }
    }
}

impl fmt::Display for OnFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFail::Stop => "stop",
            OnFail::Skip => "skip",
            OnFail::Retry => "retry",
        })
    }
}

impl fmt::Display for RetryBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetryBackoff::Fixed => "fixed",
            RetryBackoff::Exponential => "exponential",
        })
    }
}

/// A phase's failure policy, as in the specification:
/// `PhasePolicy(on_fail="retry", max_retries=3, retry_backoff="exponential")`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhasePolicy {
    /// `stop` (default), `skip` or `retry`.
    pub on_fail: OnFail,
    /// Retries after the first attempt (only with `on_fail = retry`); default 0.
    pub max_retries: u32,
    /// The wait before the first retry; default 1 s.
    #[serde(with = "secs")]
    pub retry_delay: Duration,
    /// How the wait grows; default fixed.
    pub retry_backoff: RetryBackoff,
}

impl Default for PhasePolicy {
    fn default() -> Self {
        Self {
            on_fail: OnFail::Stop,
            max_retries: 0,
            retry_delay: Duration::from_secs(1),
            retry_backoff: RetryBackoff::Fixed,
        }
    }
}

impl PhasePolicy {
    /// Stop the pipeline on failure (the default).
    pub fn stop() -> Self {
        Self::default()
    }

    /// Skip the phase on failure.
    pub fn skip() -> Self {
        Self {
            on_fail: OnFail::Skip,
            ..Self::default()
        }
    }

    /// Retry up to `max_retries` times (so at most `max_retries + 1` attempts).
    pub fn retry(max_retries: u32) -> Self {
        Self {
            on_fail: OnFail::Retry,
            max_retries,
            ..Self::default()
        }
    }

    /// Sets the initial delay between retries.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets the backoff.
    pub fn retry_backoff(mut self, backoff: RetryBackoff) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Whether a failed attempt number `attempt` (1-based) is followed by another.
    pub fn retries_after(&self, attempt: u32) -> bool {
        self.on_fail == OnFail::Retry && attempt <= self.max_retries
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let backoff = match self.retry_backoff {
            RetryBackoff::Fixed => Backoff::Fixed,
            RetryBackoff::Exponential => Backoff::Exponential,
        };
        effect_backoff_delay(backoff, self.retry_delay, attempt, MAX_RETRY_DELAY)
    }
}

/// Durations as (fractional) seconds in serialized forms.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_specification() {
        let p = PhasePolicy::default();
        assert_eq!(p.on_fail, OnFail::Stop);
        assert_eq!(p.max_retries, 0);
        assert_eq!(p.retry_delay, Duration::from_secs(1));
        assert_eq!(p.retry_backoff, RetryBackoff::Fixed);
    }

    #[test]
    fn exponential_delays_double_and_cap_at_30s() {
        let p = PhasePolicy::retry(9)
            .retry_backoff(RetryBackoff::Exponential)
            .retry_delay(Duration::from_millis(500));
        let d: Vec<_> = (1..=8).map(|a| p.delay_after(a).as_secs_f64()).collect();
        assert_eq!(d, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    }

    #[test]
    fn retry_counts_retries_not_attempts() {
        let p = PhasePolicy::retry(2);
        assert!(p.retries_after(1));
        assert!(p.retries_after(2));
        assert!(!p.retries_after(3));
        assert!(!PhasePolicy::skip().retries_after(1));
    }

    #[test]
    fn invalid_values_name_the_valid_ones() {
        let e = "explode".parse::<OnFail>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid on_fail `explode`: expected one of \"stop\", \"skip\", \"retry\""
        );
        assert!("linear".parse::<RetryBackoff>().is_err());
    }
}
