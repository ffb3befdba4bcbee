//! Effects as data: what a saga asked for, as recorded by the test interpreter, plus the
//! value types some effects take (retry policies, take patterns).

use std::sync::Arc;
use std::time::Duration;

use crate::action::Action;

/// One effect a saga performed, in the order it performed them.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<A> {
    /// `put`: an action dispatched.
    Put(A),
    /// `select`: the state was read.
    Select,
    /// `call`: an async call, by label.
    Call(String),
    /// `try_call`: an async call whose panic becomes an error, by label.
    TryCall(String),
    /// `call_blocking`: a sync call on the blocking pool, by label.
    CallBlocking(String),
    /// `take`: waited for an action matching the described pattern.
    Take(String),
    /// `take_timeout`: waited at most this long for an action matching the described pattern.
    TakeTimeout(String, Duration),
    /// `delay`: waited this long.
    Delay(Duration),
    /// `fork`: started an attached child saga, by label.
    Fork(String),
    /// `spawn`: started a detached saga, by label.
    Spawn(String),
    /// `all`: ran these sagas and waited for all of them.
    All(Vec<String>),
    /// `race`: ran these sagas until the first finished.
    Race(Vec<String>),
    /// `timeout`: bounded the inner work by this duration.
    Timeout(Duration),
}

/// How the wait between retry attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Always the base delay.
    Fixed,
    /// `base × attempt`.
    Linear,
    /// `base × 2^(attempt-1)`.
    Exponential,
}

/// Attempts and waits for [`Cx::retry`](super::Cx::retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (at least 1).
    pub max_attempts: u32,
    /// The delay after the first failed attempt.
    pub base: Duration,
    /// How the delay grows.
    pub backoff: Backoff,
    /// The longest delay.
    pub cap: Duration,
}

impl RetryPolicy {
    /// `max_attempts` attempts with a fixed `base` delay and a 30 s cap.
    pub fn new(max_attempts: u32, base: Duration) -> Self {
        Self {
            max_attempts,
            base,
            backoff: Backoff::Fixed,
            cap: Duration::from_secs(30),
        }
    }

    /// Sets the backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the cap.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_for(&self, attempt: u32) -> Duration {
        backoff_delay(self.backoff, self.base, attempt, self.cap)
    }
}

/// The wait after failed attempt `attempt` (1-based) for `backoff` from `base`, at most `cap`.
pub(crate) fn backoff_delay(backoff: Backoff, base: Duration, attempt: u32, cap: Duration) -> Duration {
    let attempt = attempt.max(1);
    let d = match backoff {
        Backoff::Fixed => base,
        Backoff::Linear => base.saturating_mul(attempt),
        Backoff::Exponential => base.saturating_mul(2u32.saturating_pow(attempt - 1)),
    };
    d.min(cap)
}

/// Which actions a [`Cx::take`](super::Cx::take) waits for.
pub trait Pattern<A>: Send + Sync + 'static {
    /// Whether `action` matches.
    fn matches(&self, action: &A) -> bool;
    /// How the test interpreter records this pattern.
    fn describe(&self) -> String;
}

impl<A: Action> Pattern<A> for &'static str {
    fn matches(&self, action: &A) -> bool {
        action.type_name() == *self
    }
    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

impl<A: Action> Pattern<A> for String {
    fn matches(&self, action: &A) -> bool {
        action.type_name() == self
    }
    fn describe(&self) -> String {
        self.clone()
    }
}

/// A pattern from a predicate, recorded as `label`.
pub struct When<A> {
    label: String,
    predicate: Arc<dyn Fn(&A) -> bool + Send + Sync>,
}

/// Matches actions for which `predicate` holds; `label` names it in test records.
pub fn when<A, F>(label: impl Into<String>, predicate: F) -> When<A>
where
    F: Fn(&A) -> bool + Send + Sync + 'static,
{
    When {
        label: label.into(),
        predicate: Arc::new(predicate),
    }
}

impl<A: 'static> Pattern<A> for When<A> {
    fn matches(&self, action: &A) -> bool {
        (self.predicate)(action)
    }
    fn describe(&self) -> String {
        self.label.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs_grow_as_named_and_stop_at_the_cap() {
        let s = Duration::from_secs(1);
        let cap = Duration::from_secs(30);
        let exp: Vec<_> = (1..=6)
            .map(|a| backoff_delay(Backoff::Exponential, s, a, cap))
            .collect();
        assert_eq!(exp, [1, 2, 4, 8, 16, 30].map(Duration::from_secs));
        assert_eq!(backoff_delay(Backoff::Linear, s, 3, cap), Duration::from_secs(3));
        assert_eq!(backoff_delay(Backoff::Fixed, s, 9, cap), s);
        assert_eq!(backoff_delay(Backoff::Exponential, s, 200, cap), cap);
    }
}
