//! The recorded form of a pipeline definition, its hashes, and rebuilding a reducer-only
//! [`Pipeline`] from it for replay.
//!
//! * The run row keeps [`DefRecord`] as JSON: what the reducer needs (names, dependencies,
//!   parallel, weight, max_logs, policy, timeout) plus commands, so a replay reproduces the
//!   recorded run exactly, whatever the pipeline file says today.
//! * Each phase row keeps a *phase hash* over what decides its output: its name, its
//!   dependencies and, for command phases, the command line, working directory and extra
//!   environment. Description, weight, parallel, max_logs, policy and timeout do not change
//!   what a completed phase produced, so editing them does not make `--resume` run it again.
//! * A matrix instance keeps its group (the matrix phase's name), so `milo show` and the
//!   report can gather the instances under one line.

use std::sync::Arc;
use std::time::Duration;

use milo::pipeline::{Phase, PhasePolicy, Pipeline, PipelineError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One phase as recorded in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecordDef {
    /// Its name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// The phases it depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Whether it may run concurrently with other parallel phases.
    #[serde(default)]
    pub parallel: bool,
    /// Its share of progress.
    pub weight: f64,
    /// How many log lines the state keeps.
    pub max_logs: usize,
    /// Its failure policy.
    pub policy: PhasePolicy,
    /// Per-attempt timeout, seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The shell command of a command phase.
    #[serde(default)]
    pub command: Option<String>,
    /// The command's working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The command's extra environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// The group it belongs to: the matrix phase it is an instance of. Left out of the JSON
    /// for a phase without one, so the definitions of pipelines without a matrix hash as they
    /// did; absent in every definition recorded before groups were (see
    /// [`group_of_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The group of a matrix instance by its name alone (`test` for `test[python=3.12,suite=unit]`),
/// for a definition recorded before groups were: an instance's name is its matrix phase's
/// followed by `[key=value,…]`.
pub fn group_of_name(name: &str) -> Option<&str> {
    let (base, rest) = name.split_once('[')?;
    let cell = rest.strip_suffix(']')?;
    (!base.is_empty() && cell.split(',').all(|kv| kv.contains('='))).then_some(base)
}

/// A pipeline as recorded in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefRecord {
    /// The pipeline's name.
    pub name: String,
    /// Its phases in declaration order.
    pub phases: Vec<PhaseRecordDef>,
}

impl DefRecord {
    /// The record of `pipeline`, its secrets ([`Pipeline::secrets`]) masked as `***` in
    /// commands, working directories and environment values.
    pub fn of(pipeline: &Pipeline) -> Self {
        let def = pipeline.def();
        let secrets = pipeline.secrets();
        let mask = |s: &str| secrets.mask(s).into_owned();
        let phases = def
            .phases
            .iter()
            .zip(pipeline.phases())
            .map(|(info, phase)| {
                let cmd = phase.command_line();
                PhaseRecordDef {
                    name: info.name.to_string(),
                    depends_on: info.depends_on.iter().map(|d| d.to_string()).collect(),
                    parallel: info.parallel,
                    weight: info.weight,
                    max_logs: info.max_logs,
                    policy: info.policy,
                    timeout: info.timeout.map(|t| t.as_secs_f64()),
                    description: mask(&info.description),
                    command: info.command.as_deref().map(mask),
                    cwd: cmd.and_then(|c| c.cwd.as_ref()).map(|p| mask(&p.display().to_string())),
                    env: cmd
                        .map(|c| c.env.iter().map(|(k, v)| (k.clone(), mask(v))).collect())
                        .unwrap_or_default(),
                    group: info.group.as_deref().map(str::to_owned),
                }
            })
            .collect();
        Self {
            name: def.name.to_string(),
            phases,
        }
    }

    /// The JSON kept in the `defs` table, keyed by [`hash`](Self::hash).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and derived structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The hash of the whole definition (hex SHA-256 of [`to_json`](Self::to_json)).
    pub fn hash(&self) -> String {
        self.to_json_and_hash().1
    }

    /// [`to_json`](Self::to_json) and [`hash`](Self::hash), serializing once.
    pub fn to_json_and_hash(&self) -> (String, String) {
        let json = self.to_json();
        let hash = hex(&Sha256::digest(json.as_bytes()));
        (json, hash)
    }

    /// A pipeline with the same graph, weights, max_logs and policies whose phases do
    /// nothing: enough to build the reducer that replays a recorded journal.
    pub fn to_noop_pipeline(&self) -> Result<Pipeline, PipelineError> {
        let phases = self.phases.iter().map(|p| {
            let mut phase = Phase::new_async(p.name.as_str(), |_| async { Ok::<_, String>(()) })
                .depends_on(p.depends_on.iter().map(|d| Arc::<str>::from(d.as_str())))
                .parallel(p.parallel)
                .weight(p.weight)
                .max_logs(p.max_logs)
                .policy(p.policy)
                .description(p.description.clone());
            // Out of range (edited by hand): no timeout, which the reducer does not use.
            if let Some(t) = p.timeout.and_then(|t| Duration::try_from_secs_f64(t).ok()) {
                phase = phase.timeout(t);
            }
            phase
        });
        Pipeline::new(self.name.as_str(), phases)
    }
}

/// The hash that decides whether a completed phase is "unchanged" for `--resume`.
pub fn phase_hash(p: &PhaseRecordDef) -> String {
    #[derive(Serialize)]
    struct Key<'a> {
        name: &'a str,
        depends_on: &'a [String],
        command: &'a Option<String>,
        cwd: &'a Option<String>,
        env: &'a [(String, String)],
    }
    let key = Key {
        name: &p.name,
        depends_on: &p.depends_on,
        command: &p.command,
        cwd: &p.cwd,
        env: &p.env,
    };
    let json = serde_json::to_vec(&key).unwrap_or_default();
    hex(&Sha256::digest(&json))
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_name_gives_its_matrix_phase() {
        assert_eq!(group_of_name("test[python=3.12,suite=unit]"), Some("test"));
        assert_eq!(group_of_name("test[n=1]"), Some("test"));
        assert_eq!(group_of_name("build"), None);
        assert_eq!(group_of_name("odd[name]"), None);
        assert_eq!(group_of_name("[n=1]"), None);
    }
}
