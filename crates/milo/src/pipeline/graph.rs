//! [`Pipeline`]: a validated set of phases, its dependency graph and execution order.
//!
//! Validation is iterative (Kahn's algorithm), so a chain of a million phases cannot overflow
//! the stack. [`PipelineDef`] is the handler-free description of a pipeline that states,
//! timelines and front ends share.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Shr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::error::PipelineError;
use super::phase::{Handler, Phase};
use super::policy::PhasePolicy;
use crate::executor::{Executor, LocalExecutor};

/// What is known about a phase apart from its handler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseInfo {
    /// The unique name.
    pub name: Arc<str>,
    /// A human-readable description.
    pub description: String,
    /// Names of the phases it depends on.
    pub depends_on: Vec<Arc<str>>,
    /// Whether it may run concurrently with other parallel phases.
    pub parallel: bool,
    /// Its share of progress.
    pub weight: f64,
    /// How many log lines the state keeps.
    pub max_logs: usize,
    /// Its failure policy.
    pub policy: PhasePolicy,
    /// Its per-attempt timeout, in seconds.
    #[serde(serialize_with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// The shell command, for command phases.
    pub command: Option<String>,
    /// Indices of its dependencies in [`PipelineDef::phases`].
    #[serde(skip)]
    pub deps: Vec<usize>,
    /// Indices of the phases that depend on it.
    #[serde(skip)]
    pub dependents: Vec<usize>,
    /// Its level: 0 for roots, else 1 + the highest level of its dependencies.
    pub level: usize,
    /// Whether it is a long-running service (see [`Service`](super::Service)).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub service: bool,
    /// The name of its [`PhaseGroup`](super::PhaseGroup) (the matrix phase it is an instance
    /// of), if any; views gather a group's members under it (see [`PipelineDef::rows`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Arc<str>>,
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// A validated pipeline without its handlers: names, graph, order, weights.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineDef {
    /// The pipeline's name.
    pub name: Arc<str>,
    /// The phases in declaration order.
    pub phases: Vec<Arc<PhaseInfo>>,
    index: HashMap<Arc<str>, usize>,
    order: Vec<usize>,
    rank: Vec<usize>,
    total_weight: f64,
}

impl PipelineDef {
    /// The index of phase `name` in [`phases`](Self::phases).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Phase indices in execution order: level by level, names sorted within a level.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The position of phase `index` in the execution order.
    pub fn rank(&self, index: usize) -> usize {
        self.rank[index]
    }

    /// The sum of all weights.
    pub fn total_weight(&self) -> f64 {
        self.total_weight
    }

    /// Phase names in execution order.
    pub fn execution_order(&self) -> Vec<String> {
        self.order.iter().map(|&i| self.phases[i].name.to_string()).collect()
    }

    /// Phase names level by level (a phase's level is one more than its deepest
    /// dependency's), in execution order within a level.
    pub fn levels(&self) -> Vec<Vec<&str>> {
        let depth = self.phases.iter().map(|p| p.level + 1).max().unwrap_or(0);
        let mut levels: Vec<Vec<&str>> = vec![Vec::new(); depth];
        for &i in &self.order {
            let p = &self.phases[i];
            levels[p.level].push(&p.name);
        }
        levels
    }
}

/// A named, validated set of phases. Cheap to clone.
///
/// ```
/// use milo::pipeline::{Phase, Pipeline};
/// let noop = |_: &milo::pipeline::PhaseContext| Ok::<_, String>(());
/// let pipeline = Pipeline::new("build", [
///     Phase::new("discover", noop),
///     Phase::new("parse", noop).depends_on(["discover"]),
///     Phase::new("render", noop).depends_on(["parse"]).parallel(true),
///     Phase::new("assets", noop).depends_on(["parse"]).parallel(true),
///     Phase::new("write", noop).depends_on(["render", "assets"]),
/// ])?;
/// assert_eq!(pipeline.execution_order(), ["discover", "parse", "assets", "render", "write"]);
/// # Ok::<(), milo::pipeline::PipelineError>(())
/// ```
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) def: Arc<PipelineDef>,
    pub(crate) phases: Arc<[Phase]>,
    pub(crate) capture_output: bool,
    pub(crate) fail_fast: bool,
    pub(crate) jobs: Option<usize>,
    pub(crate) grace: Duration,
    pub(crate) result_limit: u64,
    pub(crate) executor: Arc<dyn Executor>,
    /// Values masked in every dispatched action (see [`Secrets`](super::Secrets)).
    pub(crate) secrets: super::Secrets,
    /// Decides which phases are up to date (see [`Incremental`](super::Incremental)).
    pub(crate) incremental: Option<Arc<dyn super::Incremental>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.def.name)
            .field("phases", &self.phases)
            .field("capture_output", &self.capture_output)
            .field("fail_fast", &self.fail_fast)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

/// How long a cancelled command gets between SIGTERM and SIGKILL by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

impl Pipeline {
    /// Validates `phases` (unique names, known dependencies, no cycles) into a pipeline.
    pub fn new(name: impl Into<Arc<str>>, phases: impl IntoIterator<Item = Phase>) -> Result<Self, PipelineError> {
        let phases: Vec<Phase> = phases.into_iter().collect();
        let def = validate(name.into(), &phases)?;
        Ok(Self {
            def: Arc::new(def),
            phases: phases.into(),
            capture_output: false,
            fail_fast: false,
            jobs: None,
            grace: DEFAULT_GRACE,
            result_limit: crate::bounded_read::DEFAULT_RESULT_LIMIT,
            executor: Arc::new(LocalExecutor),
            secrets: super::Secrets::default(),
            incremental: None,
        })
    }

    /// Masks `values` as `***` in every action the run dispatches (captured lines, errors,
    /// results) and in the definition's descriptions and command lines as [`def`](Self::def)
    /// shows them (see [`Secrets`](super::Secrets)); the commands run unmasked.
    pub fn with_secrets<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.secrets = super::Secrets::new(values);
        if !self.secrets.is_empty() {
            let def = Arc::make_mut(&mut self.def);
            for p in def.phases.iter_mut() {
                let p = Arc::make_mut(p);
                p.description = self.secrets.mask(&p.description).into_owned();
                if let Some(c) = &p.command {
                    p.command = Some(self.secrets.mask(c).into_owned());
                }
            }
        }
        self
    }

    /// The values this pipeline masks.
    pub fn secrets(&self) -> &super::Secrets {
        &self.secrets
    }

    /// Collects each phase's output as `@@PHASE_LOG` actions (default off for library
    /// pipelines, as in the specification).
    pub fn capture_output(mut self, on: bool) -> Self {
        self.capture_output = on;
        self
    }

    /// On a failure under the stop policy, cancel running phases at once.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// At most `jobs` parallel phases at once (default: available parallelism).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// How long cancelled commands get between SIGTERM and SIGKILL (default 5 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The largest result a command phase may write to `MILO_OUTPUT`, in bytes (default
    /// 16 MiB); a larger one fails the phase.
    pub fn max_result_size(mut self, bytes: u64) -> Self {
        self.result_limit = bytes;
        self
    }

    /// Where command phases run (default: local processes).
    pub fn executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// Skips phases that `incremental` finds up to date, and records those that ran (see
    /// [`Incremental`](super::Incremental)). Without it every phase runs.
    pub fn incremental(mut self, incremental: Arc<dyn super::Incremental>) -> Self {
        self.incremental = Some(incremental);
        self
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The handler-free definition.
    pub fn def(&self) -> &Arc<PipelineDef> {
        &self.def
    }

    /// The phases in declaration order.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Phase names level by level, sorted by name within a level.
    pub fn execution_order(&self) -> Vec<String> {
        self.def.execution_order()
    }

    /// Whether output is captured.
    pub fn captures_output(&self) -> bool {
        self.capture_output
    }

    /// Whether fail-fast is on.
    pub fn is_fail_fast(&self) -> bool {
        self.fail_fast
    }

    /// The effective `jobs` limit.
    pub fn job_limit(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A new pipeline with `phase` appended; `self` is unchanged. The same as `&p >> phase`.
    pub fn with_phase(&self, phase: Phase) -> Result<Pipeline, PipelineError> {
        let mut phases: Vec<Phase> = self.phases.to_vec();
        phases.push(phase);
        let def = validate(self.def.name.clone(), &phases)?;
        Ok(Pipeline {
            def: Arc::new(def),
            phases: phases.into(),
            ..self.clone()
        })
    }

    pub(crate) fn handler(&self, index: usize) -> &Handler {
        &self.phases[index].handler
    }
}

impl Shr<Phase> for &Pipeline {
    type Output = Result<Pipeline, PipelineError>;
    fn shr(self, phase: Phase) -> Self::Output {
        self.with_phase(phase)
    }
}

impl Shr<Phase> for Pipeline {
    type Output = Result<Pipeline, PipelineError>;
    fn shr(self, phase: Phase) -> Self::Output {
        self.with_phase(phase)
    }
}

impl Shr<Phase> for Result<Pipeline, PipelineError> {
    type Output = Result<Pipeline, PipelineError>;
    fn shr(self, phase: Phase) -> Self::Output {
        self?.with_phase(phase)
    }
}

fn validate(name: Arc<str>, phases: &[Phase]) -> Result<PipelineDef, PipelineError> {
    let n = phases.len();
    let mut index: HashMap<Arc<str>, usize> = HashMap::with_capacity(n);
    for (i, p) in phases.iter().enumerate() {
        if p.name.is_empty() {
            return Err(PipelineError::EmptyName);
        }
        if !(p.weight.is_finite() && p.weight >= 0.0) {
            return Err(PipelineError::InvalidWeight {
                phase: p.name.to_string(),
                weight: p.weight,
            });
        }
        if index.insert(p.name.clone(), i).is_some() {
            return Err(PipelineError::DuplicatePhase {
                name: p.name.to_string(),
            });
        }
    }
    let mut infos: Vec<PhaseInfo> = Vec::with_capacity(n);
    for p in phases {
        let mut deps = Vec::with_capacity(p.depends_on.len());
        for d in &p.depends_on {
            let Some(&j) = index.get(d) else {
                return Err(PipelineError::UnknownDependency {
                    phase: p.name.to_string(),
                    dependency: d.to_string(),
                    available: phases.iter().map(|p| p.name.to_string()).collect(),
                });
            };
            if **d == *p.name {
                return Err(PipelineError::SelfDependency {
                    phase: p.name.to_string(),
                });
            }
            if !deps.contains(&j) {
                deps.push(j);
            }
        }
        infos.push(PhaseInfo {
            name: p.name.clone(),
            description: p.description.clone(),
            depends_on: p.depends_on.clone(),
            parallel: p.parallel,
            weight: p.weight,
            max_logs: p.max_logs,
            policy: p.policy,
            timeout: p.timeout,
            command: p.command_line().map(|c| c.run.clone()),
            deps,
            dependents: Vec::new(),
            level: 0,
            service: p.service.is_some(),
            group: p.group.as_ref().map(|g| g.name.clone()),
        });
    }
    for i in 0..n {
        for k in 0..infos[i].deps.len() {
            let j = infos[i].deps[k];
            infos[j].dependents.push(i);
        }
    }

    // Kahn's algorithm, visiting ready phases in (level, name) order.
    let mut waiting: Vec<usize> = infos.iter().map(|p| p.deps.len()).collect();
    let mut ready: BinaryHeap<Reverse<(usize, &str, usize)>> = BinaryHeap::new();
    for (i, p) in infos.iter().enumerate() {
        if p.deps.is_empty() {
            ready.push(Reverse((0, &phases[i].name, i)));
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut levels = vec![0usize; n];
    while let Some(Reverse((level, _, i))) = ready.pop() {
        order.push(i);
        for &d in &infos[i].dependents {
            levels[d] = levels[d].max(level + 1);
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse((levels[d], &phases[d].name, d)));
            }
        }
    }
    if order.len() < n {
        return Err(PipelineError::Cycle {
            path: find_cycle(&infos, &waiting),
        });
    }
    let mut rank = vec![0usize; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
        infos[i].level = levels[i];
    }
    let total_weight = infos.iter().map(|p| p.weight).sum();
    let phases = infos.into_iter().map(Arc::new).collect();
    Ok(PipelineDef {
        name,
        phases,
        index,
        order,
        rank,
        total_weight,
    })
}

/// A real cycle among the phases Kahn's algorithm could not order (`waiting > 0`): from the
/// first such phase in declaration order, follow unresolved dependencies until a phase
/// repeats.
fn find_cycle(infos: &[PhaseInfo], waiting: &[usize]) -> Vec<String> {
    let Some(start) = waiting.iter().position(|&w| w > 0) else {
        return Vec::new();
    };
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut at = start;
    loop {
        if let Some(&pos) = seen.get(&at) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|&i: &usize| infos[i].name.to_string()).collect();
            cycle.push(infos[at].name.to_string());
            return cycle;
        }
        seen.insert(at, path.len());
        path.push(at);
        // Every unordered phase has at least one unordered dependency.
        match infos[at].deps.iter().find(|&&d| waiting[d] > 0) {
            Some(&d) => at = d,
            None => return vec![infos[at].name.to_string()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(name: &str) -> Phase {
        Phase::new(name, |_| Ok::<_, String>(()))
    }

    #[test]
    fn cycles_are_reported_with_their_path() {
        let err = Pipeline::new(
            "p",
            [
                noop("x"),
                noop("a").depends_on(["b"]),
                noop("b").depends_on(["c"]),
                noop("c").depends_on(["a", "x"]),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err,
            PipelineError::Cycle {
                path: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        assert!(err.to_string().contains("a → b → c → a"));
    }

    #[test]
    fn a_phase_depending_on_a_cycle_reports_the_cycle_only() {
        let err = Pipeline::new(
            "p",
            [
                noop("z").depends_on(["a"]),
                noop("a").depends_on(["b"]),
                noop("b").depends_on(["a"]),
            ],
        )
        .unwrap_err();
        let PipelineError::Cycle { path } = err else {
            panic!("{err}")
        };
        assert_eq!(path, ["a", "b", "a"]);
    }

    #[test]
    fn unknown_dependencies_list_the_available_phases() {
        let err = Pipeline::new("p", [noop("a"), noop("b").depends_on(["nope"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "phase `b` depends on `nope`, which does not exist (available phases: `a`, `b`)"
        );
    }

    #[test]
    fn duplicates_and_self_dependencies_are_rejected() {
        assert!(matches!(
            Pipeline::new("p", [noop("a"), noop("a")]),
            Err(PipelineError::DuplicatePhase { .. })
        ));
        assert!(matches!(
            Pipeline::new("p", [noop("a").depends_on(["a"])]),
            Err(PipelineError::SelfDependency { .. })
        ));
        assert!(matches!(
            Pipeline::new("p", [noop("a").weight(-1.0)]),
            Err(PipelineError::InvalidWeight { .. })
        ));
    }

    #[test]
    fn a_long_cycle_is_shown_with_its_first_and_last_steps() {
        let n = 100_000;
        let phases = (0..n).map(|i| noop(&format!("p{i}")).depends_on([format!("p{}", (i + 1) % n)]));
        let err = Pipeline::new("ring", phases).unwrap_err();
        let PipelineError::Cycle { path } = &err else {
            panic!("{err}")
        };
        assert_eq!(path.len(), n + 1);
        let message = err.to_string();
        assert!(message.len() < 400, "{message}");
        assert!(
            message.contains("p0 → p1 → p2 → p3 → p4 → p5 → p6 → p7 → p8 → p9 → p10 → … (99986 more phases, 100000 in the cycle) … → p99997 → p99998 → p99999 → p0"),
            "{message}"
        );
        let shown: Vec<usize> = crate::pipeline::shown_cycle_steps(path).collect();
        assert_eq!(shown, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 99997, 99998, 99999]);
    }

    #[test]
    fn a_million_phase_chain_validates_without_overflowing_the_stack() {
        let n = 1_000_000;
        let phases = (0..n).map(|i| {
            let p = noop(&format!("p{i}"));
            if i == 0 {
                p
            } else {
                p.depends_on([format!("p{}", i - 1)])
            }
        });
        let p = Pipeline::new("chain", phases).unwrap();
        let order = p.def().order();
        assert_eq!(order.len(), n);
        assert_eq!(order[n - 1], n - 1);
    }
}
