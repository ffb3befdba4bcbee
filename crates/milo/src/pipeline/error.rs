//! [`PipelineError`]: why a set of phases is not a valid pipeline.

/// A pipeline definition problem, found by [`Pipeline::new`](super::Pipeline::new) or `>>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// Two phases share a name.
    #[error("duplicate phase name `{name}`: phase names must be unique")]
    DuplicatePhase {
        /// The repeated name.
        name: String,
    },
    /// A phase depends on a phase that does not exist.
    #[error("phase `{phase}` depends on `{dependency}`, which does not exist (available phases: {})", list(.available))]
    UnknownDependency {
        /// The phase with the bad dependency.
        phase: String,
        /// The missing name.
        dependency: String,
        /// Every phase name, in declaration order.
        available: Vec<String>,
    },
    /// Phases depend on each other in a circle.
    #[error("dependency cycle: {} (each phase depends on the next); remove one of these dependencies", cycle_excerpt(.path))]
    Cycle {
        /// The cycle, first name repeated at the end: `["a", "b", "c", "a"]` means a depends on
        /// b, b on c, c on a.
        path: Vec<String>,
    },
    /// A phase's name is empty.
    #[error("a phase has an empty name")]
    EmptyName,
    /// A phase's weight is negative or not finite.
    #[error("phase `{phase}` has weight {weight}: a weight must be a finite number ≥ 0")]
    InvalidWeight {
        /// The phase.
        phase: String,
        /// The weight given.
        weight: f64,
    },
    /// A phase depends on itself.
    #[error("phase `{phase}` depends on itself")]
    SelfDependency {
        /// The phase.
        phase: String,
    },
}

impl PipelineError {
    /// The phase the error is about, if any (used to point at its definition).
    pub fn phase(&self) -> Option<&str> {
        match self {
            PipelineError::DuplicatePhase { name } => Some(name),
            PipelineError::UnknownDependency { phase, .. }
            | PipelineError::InvalidWeight { phase, .. }
            | PipelineError::SelfDependency { phase } => Some(phase),
            PipelineError::Cycle { path } => path.first().map(String::as_str),
            PipelineError::EmptyName => None,
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// How many steps of a long cycle's path are shown at its start and at its end.
const CYCLE_HEAD: usize = 10;
const CYCLE_TAIL: usize = 3;

/// The indices `k` of the dependencies `path[k] → path[k + 1]` of a cycle that messages show:
/// all of a short cycle, the first 10 and the last 3 of a long one.
pub fn shown_cycle_steps(path: &[String]) -> impl Iterator<Item = usize> {
    let steps = path.len().saturating_sub(1);
    let (head, tail_from) = if steps <= CYCLE_HEAD + CYCLE_TAIL {
        (steps, steps)
    } else {
        (CYCLE_HEAD, steps - CYCLE_TAIL)
    };
    (0..head).chain(tail_from..steps)
}

/// A cycle's path as `a → b → c → a`, or for a long one its first 10 and last 3 steps with
/// the number of phases left out between them: a ring of 100,000 phases reads in one line.
fn cycle_excerpt(path: &[String]) -> String {
    let steps = path.len().saturating_sub(1);
    if steps <= CYCLE_HEAD + CYCLE_TAIL {
        return path.join(" → ");
    }
    let head = path[..=CYCLE_HEAD].join(" → ");
    let tail = path[steps - CYCLE_TAIL..].join(" → ");
    let left_out = steps - CYCLE_TAIL - CYCLE_HEAD - 1;
    format!("{head} → … ({left_out} more phases, {steps} in the cycle) … → {tail}")
}
