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
    #[error("dependency cycle: {} (each phase depends on the next); remove one of these dependencies", .path.join(" → "))]
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
