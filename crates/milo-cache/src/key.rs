//! A phase's ingredients (everything its key covers, as digests only) and the key over them;
//! and the reasons a phase runs, by diffing its ingredients against its latest record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::FieldHasher;
use crate::sources::SourceSet;

/// What a dependency contributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepIngredient {
    /// Its key, if it is incremental.
    pub key: Option<String>,
    /// Its result's canonical JSON digest, `"skipped"` or `"unknown"`.
    pub result: String,
}

/// Everything a phase's key is computed from. Values that may be secret (environment
/// variables, definition parts) appear only as digests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ingredients {
    /// Definition parts in declaration order: (name, digest of the value).
    pub definition: Vec<(String, String)>,
    /// The declared outputs, normalized.
    pub outputs: Vec<String>,
    /// Source files: relative path → content digest.
    pub sources: BTreeMap<String, String>,
    /// Environment inputs: name → digest of the value, or `"unset"`.
    pub env: BTreeMap<String, String>,
    /// Direct dependencies by name.
    pub deps: BTreeMap<String, DepIngredient>,
}

/// What the result of an unknown dependency is recorded as.
pub const UNKNOWN: &str = "unknown";

impl Ingredients {
    /// The key (64 hex digits) of phase `phase` with these ingredients.
    pub fn key(&self, phase: &str) -> String {
        let mut h = FieldHasher::new("milo-cache phase key v1");
        h.field("phase", phase);
        h.field("definition", (self.definition.len() as u64).to_le_bytes());
        for (name, digest) in &self.definition {
            h.field("part", name).field("value", digest);
        }
        h.field("outputs", (self.outputs.len() as u64).to_le_bytes());
        for o in &self.outputs {
            h.field("output", o);
        }
        h.field("sources", (self.sources.len() as u64).to_le_bytes());
        for (path, digest) in &self.sources {
            h.field("path", path).field("digest", digest);
        }
        h.field("env", (self.env.len() as u64).to_le_bytes());
        for (name, value) in &self.env {
            h.field("name", name).field("value", value);
        }
        h.field("deps", (self.deps.len() as u64).to_le_bytes());
        for (name, dep) in &self.deps {
            h.field("name", name);
            match &dep.key {
                Some(k) => h.field("key", k),
                None => h.field("no key", ""),
            };
            h.field("result", &dep.result);
        }
        h.finish()
    }
}

/// At most this many reasons are spelled out; the rest are counted ("and 2 more").
pub const MAX_REASONS: usize = 3;

/// `a; b; c; and 2 more`.
pub fn join(reasons: &[String]) -> String {
    if reasons.len() <= MAX_REASONS {
        return reasons.join("; ");
    }
    format!(
        "{}; and {} more",
        reasons[..MAX_REASONS].join("; "),
        reasons.len() - MAX_REASONS
    )
}

/// Why `now` differs from `before` (the phase's latest record), in words, most telling
/// first. `earlier` phrases a changed file as "changed back to an earlier version" (when the
/// key matches an older record).
pub fn diff(before: &Ingredients, now: &Ingredients, sources: &SourceSet, earlier: bool) -> Vec<String> {
    let mut out = Vec::new();
    let old_parts: BTreeMap<&str, &str> = before
        .definition
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    let new_parts: BTreeMap<&str, &str> = now.definition.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    for (name, digest) in &now.definition {
        if old_parts.get(name.as_str()) != Some(&digest.as_str()) {
            out.push(format!("{name} changed"));
        }
    }
    for (name, _) in &before.definition {
        if !new_parts.contains_key(name.as_str()) {
            out.push(format!("{name} changed"));
        }
    }
    if before.outputs != now.outputs {
        out.push("outputs changed".into());
    }

    let changed = if earlier {
        "changed back to an earlier version"
    } else {
        "changed"
    };
    let mut added: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut removed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (path, digest) in &now.sources {
        match before.sources.get(path) {
            Some(d) if d == digest => {}
            Some(_) => out.push(format!("{path} {changed}")),
            None => added
                .entry(sources.group_of(path).unwrap_or("sources").to_owned())
                .or_default()
                .push(path),
        }
    }
    for path in before.sources.keys() {
        if !now.sources.contains_key(path) {
            removed
                .entry(sources.group_of(path).unwrap_or("sources").to_owned())
                .or_default()
                .push(path);
        }
    }
    for (group, paths) in added {
        match paths.as_slice() {
            [one] => out.push(format!("{one} added")),
            many => out.push(format!("{} files added to {group}", many.len())),
        }
    }
    for (group, paths) in removed {
        match paths.as_slice() {
            [one] => out.push(format!("{one} removed")),
            many => out.push(format!("{} files removed from {group}", many.len())),
        }
    }

    for (name, value) in &now.env {
        if before.env.get(name) != Some(value) {
            out.push(format!("{name} changed"));
        }
    }
    for name in before.env.keys() {
        if !now.env.contains_key(name) {
            out.push(format!("{name} is no longer an input"));
        }
    }

    for (name, dep) in &now.deps {
        match before.deps.get(name) {
            _ if dep.result == UNKNOWN => out.push(format!("dependency `{name}` will run")),
            None => out.push(format!("dependency `{name}` added")),
            Some(b) if b.result != dep.result => out.push(format!("dependency `{name}` produced a different result")),
            Some(b) if b.key != dep.key => out.push(format!("dependency `{name}` changed")),
            Some(_) => {}
        }
    }
    for name in before.deps.keys() {
        if !now.deps.contains_key(name) {
            out.push(format!("dependency `{name}` removed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_caps_the_list() {
        let r: Vec<String> = (1..=5).map(|i| format!("r{i}")).collect();
        assert_eq!(join(&r[..2]), "r1; r2");
        assert_eq!(join(&r), "r1; r2; r3; and 2 more");
    }

    #[test]
    fn keys_separate_sections() {
        let mut a = Ingredients::default();
        a.env.insert("X".into(), "unset".into());
        let mut b = Ingredients::default();
        b.sources.insert("X".into(), "unset".into());
        assert_ne!(a.key("p"), b.key("p"));
        assert_ne!(a.key("p"), a.key("q"));
        let mut c = Ingredients::default();
        c.deps.insert(
            "d".into(),
            DepIngredient {
                key: None,
                result: "r".into(),
            },
        );
        let mut d = c.clone();
        if let Some(x) = d.deps.get_mut("d") {
            x.key = Some(String::new());
        }
        assert_ne!(c.key("p"), d.key("p"));
    }
}
