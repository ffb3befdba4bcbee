//! Incremental runs for milo: [`Cache`] implements the core's
//! [`Incremental`] seam for phases that declare `sources` and
//! `outputs`. A phase's key digests its definition, its source files' contents, its
//! environment inputs and its direct dependencies' keys and results; a phase whose key
//! matches an earlier success and whose outputs are as recorded is up to date, one whose
//! outputs are gone or changed is restored from a content-addressed cache.
//!
//! Layout of the cache directory ([`Options::dir`]):
//! * `index.db`: SQLite (WAL) — records, object references and sizes, the stat cache;
//! * `objects/<2 hex>/<62 hex>`: one read-only file per distinct output file content;
//! * `tmp/`: objects being written (renamed into `objects/` when complete).
//!
//! Management for `milo cache status|clean|prune`: [`status`], [`clean`], [`prune`].
//!
//! # Reasons
//! A decision's reason is one of: `never ran`; `forced (--force)`; `up to date`; or a list
//! joined with `; ` (the first three, then `and N more`) of: `<part> changed` (a
//! definition part, by name), `outputs changed`, `<path> changed`, `<path> added`,
//! `N files added to <pattern>`, `<path> removed`, `N files removed from <pattern>`,
//! `<VAR> changed`, `<VAR> is no longer an input`, ``dependency `<name>` produced a
//! different result``, ``dependency `<name>` changed`` (new key, same result),
//! ``dependency `<name>` will run`` (its result is unknown: dry runs),
//! ``dependency `<name>` added``/``removed``, `output <path> was deleted`,
//! `output <path> was modified`, `output <dir>/<entry> was added` (an extra file in a
//! directory output). A restore appends ` (restored from cache)` (read-only:
//! ` (would restore from cache)`); a restore from an older record than the latest says
//! `<path> changed back to an earlier version`. A restore that fails appends
//! ` (could not restore: <error>)` and the phase runs.
//!
//! # Dry runs (`read_only`)
//! A read-only cache decides exactly as a writable one would and writes nothing: no
//! directory, no index, no stat-cache refresh, no restore. A phase that would be restored is
//! answered `Check::Fresh` with verdict `Restored` and a reason ending in
//! "(would restore from cache)": the recorded result is exactly what the restore would
//! produce, so its dependents are decided as precisely as in a real run. `record` does
//! nothing.

mod cas;
mod db;
mod error;
mod hash;
mod key;
mod manage;
mod memory;
mod outputs;
mod sources;
mod stat;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use milo::capture::Stream;
use milo::pipeline::{Check, Decision, DepResult, Dependency, Incremental, Recorded, Verdict};
use parking_lot::Mutex;
use rayon::prelude::*;

pub use error::CacheError;
pub use manage::{CacheStatus, PhaseCount, PruneReport, clean, human_bytes, prune, status};

use cas::Cas;
use db::{Db, NewRecord};
use key::{DepIngredient, Ingredients};
use outputs::{Node, Output, Scanned};
use sources::{SourceFile, SourceSet};
use stat::{Entry, StatMap, Want, now_ns};

/// The default bound of the object store: 5 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 5 << 30;

/// How stale a record's "last used" time may get before a check that finds it up to date
/// writes it again (eviction is least recently used first, to this precision).
const USED_GRANULARITY_NS: i64 = 3_600 * 1_000_000_000;

/// One phase as far as incremental runs are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpec {
    /// The phase's name.
    pub name: String,
    /// What runs, as named parts the CLI composes: e.g. `[("command", run), ("cwd", cwd),
    /// ("env", canonical env table), ("shell", "sh")]`. Part names appear in reasons
    /// ("command changed", "env changed"); only digests of the values are stored.
    pub definition: Vec<(String, String)>,
    /// Absolute; globs and outputs are relative to it.
    pub cwd: PathBuf,
    /// Globs: `**`, `{a,b}`, `*`, `?`, `[..]`; a leading `!` excludes. A pattern without
    /// wildcards naming a directory means every file below it.
    pub sources: Vec<String>,
    /// Paths (files or directories) relative to cwd.
    pub outputs: Vec<String>,
    /// Names of environment variables read at check time (unset is a value).
    pub env_inputs: Vec<String>,
    /// Store and restore this phase's outputs.
    pub cache: bool,
}

/// Which phases run whatever their key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Force {
    /// None.
    #[default]
    None,
    /// Every phase.
    All,
    /// These phases.
    Phases(BTreeSet<String>),
}

/// How the cache behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The cache directory, e.g. `<project>/.milo/cache`.
    pub dir: PathBuf,
    /// Decide without writing anything (dry runs).
    pub read_only: bool,
    /// Phases forced to run.
    pub force: Force,
    /// Restore outputs from, and store them into, the object store.
    pub use_cache: bool,
    /// Bound of the object store in bytes.
    pub max_size: u64,
    /// A root whose every change is reported through [`Cache::changed`] (a file watcher's):
    /// each phase's source walk is then remembered between checks and patched from the
    /// reports instead of walked again. `None` (the default): every check walks.
    pub watched: Option<PathBuf>,
}

impl Options {
    /// Writable, nothing forced, caching on, [`DEFAULT_MAX_SIZE`].
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            read_only: false,
            force: Force::None,
            use_cache: true,
            max_size: DEFAULT_MAX_SIZE,
            watched: None,
        }
    }
}

#[derive(Debug)]
struct Compiled {
    spec: PhaseSpec,
    sources: SourceSet,
    /// Normalized, in declaration order.
    outputs: Vec<String>,
}

/// What a check leaves for the record of the same phase.
#[derive(Debug, Clone)]
struct Pending {
    key: String,
    ingredients: Ingredients,
    stats: StatMap,
}

/// The [`Incremental`] of `milo.toml` pipelines. Cheap to share (`Arc<Cache>`); checks and
/// records of different phases run in parallel.
///
/// Records found up to date are marked used in batches: [`Cache::flush`] (also run on drop
/// and before every eviction) writes the marks.
#[derive(Debug)]
pub struct Cache {
    options: Options,
    phases: HashMap<String, Compiled>,
    db: Db,
    cas: Cas,
    pending: Mutex<HashMap<String, Pending>>,
    used: Mutex<Vec<(i64, i64)>>,
    memory: Option<memory::Memory>,
    /// What a quick check that could not finish read, for the full check of the same phase.
    handoff: Mutex<HashMap<String, Walked>>,
}

/// A phase's source files and its decoded stat row.
type Walked = (Arc<Vec<SourceFile>>, Arc<StatMap>);

fn normalize_output(phase: &str, raw: &str) -> Result<String, CacheError> {
    let bad = |problem| CacheError::BadOutput {
        phase: phase.to_owned(),
        output: raw.to_owned(),
        problem,
    };
    if raw.starts_with('/') {
        return Err(bad("is absolute: declare it relative to the phase's cwd"));
    }
    let norm = sources::normalize(raw);
    if norm.is_empty() {
        return Err(bad(
            "is the phase's cwd itself: declare the files or directories it writes",
        ));
    }
    if norm.split('/').any(|c| c == "..") {
        return Err(bad("leaves the phase's cwd (`..`): declare it inside the cwd"));
    }
    if norm.split('/').any(|c| c == ".milo") {
        return Err(bad("is inside `.milo/`, which belongs to milo"));
    }
    Ok(norm)
}

impl Cache {
    /// A cache over `options.dir` for the phases `specs`. Unless read-only, creates the
    /// directory and the index.
    pub fn open(options: Options, specs: Vec<PhaseSpec>) -> Result<Cache, CacheError> {
        let mut phases = HashMap::with_capacity(specs.len());
        for spec in specs {
            if !spec.cwd.is_absolute() {
                return Err(CacheError::RelativeCwd {
                    phase: spec.name.clone(),
                    cwd: spec.cwd.clone(),
                });
            }
            let outputs = spec
                .outputs
                .iter()
                .map(|o| normalize_output(&spec.name, o))
                .collect::<Result<Vec<_>, _>>()?;
            let sources = SourceSet::compile(&spec.name, &spec.sources, &outputs)?;
            let name = spec.name.clone();
            if phases
                .insert(name.clone(), Compiled { spec, sources, outputs })
                .is_some()
            {
                return Err(CacheError::DuplicatePhase(name));
            }
        }
        let db = Db::open(&options.dir, options.read_only)?;
        let incremental: Vec<&str> = phases
            .iter()
            .filter(|(_, c)| !c.spec.sources.is_empty() || !c.spec.outputs.is_empty())
            .map(|(name, _)| name.as_str())
            .collect();
        db.preload_stats(&incremental)?;
        let cas = Cas::new(&options.dir);
        let memory = options.watched.clone().map(memory::Memory::new);
        Ok(Cache {
            memory,
            handoff: Mutex::new(HashMap::new()),
            options,
            phases,
            db,
            cas,
            pending: Mutex::new(HashMap::new()),
            used: Mutex::new(Vec::new()),
        })
    }

    /// Whether a change of `path` (absolute) can change phase `phase`'s key: one of its
    /// `sources` matches it (its outputs and `.milo/` never do). `milo watch` asks.
    pub fn is_source(&self, phase: &str, path: &std::path::Path) -> bool {
        let Some(c) = self.phases.get(phase) else { return false };
        let Ok(rel) = path.strip_prefix(&c.spec.cwd) else {
            return false;
        };
        let rel: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        c.sources.matches(&rel.join("/"))
    }

    /// Tells the cache that `paths` (absolute, under [`Options::watched`]) changed: files
    /// created, written or removed, directories created or removed, or the root itself when
    /// changes may have been lost. Remembered walks are patched for them. Without
    /// `Options::watched`, nothing to do.
    pub fn changed(&self, paths: &[PathBuf]) {
        if let Some(memory) = &self.memory {
            memory.changed(
                paths,
                self.phases
                    .iter()
                    .map(|(name, c)| (name.as_str(), c.spec.cwd.as_path(), &c.sources)),
            );
        }
    }

    /// Phase `c`'s source files now: its remembered walk (see [`Options::watched`]), or a
    /// walk of its sources.
    fn source_files(&self, c: &Compiled) -> Result<Arc<Vec<SourceFile>>, CacheError> {
        let name = c.spec.name.as_str();
        let Some(memory) = &self.memory else {
            return Ok(Arc::new(c.sources.walk(&c.spec.cwd)?));
        };
        let generation = match memory.get(name) {
            Ok(files) => return Ok(files),
            Err(generation) => generation,
        };
        let (files, linked) = c.sources.walk_noting_links(&c.spec.cwd)?;
        let files = Arc::new(files);
        if !linked && memory.covers(&c.spec.cwd, &c.spec.sources) {
            memory.keep(name, files.clone(), generation);
        }
        Ok(files)
    }

    /// Phase `phase`'s declared outputs, absolute.
    pub fn outputs_of(&self, phase: &str) -> Vec<PathBuf> {
        self.phases
            .get(phase)
            .map(|c| c.outputs.iter().map(|o| c.spec.cwd.join(o)).collect())
            .unwrap_or_default()
    }

    /// The options it was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Writes the "used" marks of records found up to date since the last flush (LRU order
    /// for eviction). Nothing when read-only.
    pub fn flush(&self) -> Result<(), CacheError> {
        let ids = std::mem::take(&mut *self.used.lock());
        if self.options.read_only {
            return Ok(());
        }
        self.db.touch(&ids)
    }

    fn forced(&self, phase: &str) -> bool {
        match &self.options.force {
            Force::None => false,
            Force::All => true,
            Force::Phases(set) => set.contains(phase),
        }
    }

    fn ingredients(&self, c: &Compiled, sources: BTreeMap<String, String>, deps: &[Dependency<'_>]) -> Ingredients {
        let definition = c
            .spec
            .definition
            .iter()
            .map(|(n, v)| (n.clone(), hash::value_digest("definition", v.as_bytes())))
            .collect();
        let env = c
            .spec
            .env_inputs
            .iter()
            .map(|name| {
                let value = match std::env::var_os(name) {
                    Some(v) => hash::value_digest("env", v.as_encoded_bytes()),
                    None => "unset".to_owned(),
                };
                (name.clone(), value)
            })
            .collect();
        let deps = deps
            .iter()
            .map(|d| {
                let result = match d.result {
                    DepResult::Completed(v) => hash::json_digest(v),
                    DepResult::Skipped => "skipped".to_owned(),
                    DepResult::Unknown => key::UNKNOWN.to_owned(),
                };
                (
                    d.name.to_owned(),
                    DepIngredient {
                        key: d.key.map(str::to_owned),
                        result,
                    },
                )
            })
            .collect();
        Ingredients {
            definition,
            outputs: c.outputs.clone(),
            sources,
            env,
            deps,
        }
    }

    fn corrupt(phase: &str) -> impl Fn(serde_json::Error) -> CacheError + '_ {
        move |e| CacheError::Corrupt {
            phase: phase.to_owned(),
            message: e.to_string(),
        }
    }

    /// The reasons from the phase's latest record to `now`.
    fn reasons_since_latest(&self, c: &Compiled, now: &Ingredients, earlier: bool) -> Result<Vec<String>, CacheError> {
        let name = c.spec.name.as_str();
        let Some((_, json)) = self.db.latest(name)? else {
            return Ok(vec!["never ran".into()]);
        };
        let before: Ingredients = serde_json::from_str(&json).map_err(Self::corrupt(name))?;
        let reasons = key::diff(&before, now, &c.sources, earlier);
        Ok(if reasons.is_empty() {
            vec!["inputs changed".into()]
        } else {
            reasons
        })
    }

    /// `quick`: fail with [`CacheError::WouldBlock`] before hashing a file or restoring an
    /// output (nothing is written before that point).
    ///
    /// A quick check that fails that way hands its walk and its decoded stat row to the full
    /// check that follows, which then reads neither again.
    fn decide(&self, c: &Compiled, deps: &[Dependency<'_>], quick: bool) -> Result<Check, CacheError> {
        let name = c.spec.name.as_str();
        let handed = if quick { None } else { self.handoff.lock().remove(name) };
        let (files, cache) = match handed {
            Some(h) => h,
            None => (
                self.source_files(c)?,
                Arc::new(stat::decode(&self.db.load_stats(name)?)),
            ),
        };
        let decided = self.decide_with(c, deps, quick, &files, &cache);
        if quick && matches!(decided, Err(CacheError::WouldBlock)) {
            self.handoff.lock().insert(name.to_owned(), (files, cache));
        }
        decided
    }

    fn decide_with(
        &self,
        c: &Compiled,
        deps: &[Dependency<'_>],
        quick: bool,
        files: &[SourceFile],
        cache: &StatMap,
    ) -> Result<Check, CacheError> {
        let name = c.spec.name.as_str();
        let cwd = c.spec.cwd.as_path();
        let seen = now_ns();
        let wants: Vec<Want<'_>> = files
            .iter()
            .map(|f| Want {
                rel: &f.rel,
                stat: f.stat,
            })
            .collect();
        let (digests, mut fresh) = stat::digests(cwd, &wants, cache, seen, quick)?;
        // Whether the phase's stat row must be rewritten (files hashed, added or gone).
        let mut dirty = fresh.iter().any(Option::is_some);
        let sources: BTreeMap<String, String> = files.iter().map(|f| f.rel.clone()).zip(digests).collect();
        // The row's entries, built only when needed (a run, a rewrite).
        let mut source_stats = || -> StatMap {
            files
                .iter()
                .zip(fresh.iter_mut())
                .filter_map(|(f, e)| Some((f.rel.clone(), e.take().or_else(|| cache.get(&f.rel).cloned())?)))
                .collect()
        };
        let ingredients = self.ingredients(c, sources, deps);
        let key = ingredients.key(name);
        let decision = |verdict, reason: String| Decision {
            key: Arc::from(key.as_str()),
            verdict,
            reason: Arc::from(reason),
        };

        let mut out_stats: Vec<(String, Entry)> = Vec::new();
        let found = if self.forced(name) {
            None
        } else {
            self.db.lookup(name, &key)?
        };
        let check = match found {
            _ if self.forced(name) => Check::Run(decision(Verdict::Run, "forced (--force)".into())),
            None => Check::Run(decision(
                Verdict::Run,
                key::join(&self.reasons_since_latest(c, &ingredients, false)?),
            )),
            Some(found) => {
                let manifest: Vec<Output> = serde_json::from_str(&found.manifest).map_err(Self::corrupt(name))?;
                let rels: Vec<String> = manifest.iter().map(|o| o.path.clone()).collect();
                let (scanned, out_entries, out_hashed) = outputs::scan(cwd, &rels, cache, seen, quick)?;
                dirty |= out_hashed || cache.len() != files.len() + out_entries.len();
                out_stats = out_entries;
                let diffs = outputs::differences(&manifest, &scanned);
                let recorded = || -> Result<Recorded, CacheError> {
                    Ok(Recorded {
                        result: serde_json::from_str(&found.result).map_err(Self::corrupt(name))?,
                        logs: serde_json::from_str::<Vec<(Stream, String)>>(&found.logs)
                            .map_err(Self::corrupt(name))?,
                    })
                };
                if diffs.is_empty() {
                    if found.latest {
                        // Least-recently-used order to the hour is enough for eviction: a
                        // no-op run of a thousand phases writes nothing.
                        if seen.saturating_sub(found.used_ns) > USED_GRANULARITY_NS {
                            self.used.lock().push((found.id, seen));
                        }
                    } else if !self.options.read_only {
                        // It becomes the phase's latest record: reasons are diffed against it.
                        self.db.touch(&[(found.id, now_ns())])?;
                    }
                    Check::Fresh(decision(Verdict::UpToDate, "up to date".into()), recorded()?)
                } else if quick {
                    // Outputs to restore (or a run to decide on): the full check does it.
                    return Err(CacheError::WouldBlock);
                } else {
                    let restorable = self.options.use_cache
                        && c.spec.cache
                        && found.stored
                        && outputs::objects(&manifest)
                            .iter()
                            .all(|(d, size)| self.cas.has(d, *size));
                    let why = if found.latest {
                        diffs
                    } else {
                        self.reasons_since_latest(c, &ingredients, restorable)?
                    };
                    let why = key::join(&why);
                    if !restorable {
                        Check::Run(decision(Verdict::Run, why))
                    } else if self.options.read_only {
                        Check::Fresh(
                            decision(Verdict::Restored, format!("{why} (would restore from cache)")),
                            recorded()?,
                        )
                    } else {
                        match outputs::restore(cwd, &self.cas, &manifest, &scanned) {
                            Ok(()) => {
                                restored_entries(cwd, &manifest, &mut out_stats);
                                dirty = true;
                                self.db.touch(&[(found.id, now_ns())])?;
                                Check::Fresh(
                                    decision(Verdict::Restored, format!("{why} (restored from cache)")),
                                    recorded()?,
                                )
                            }
                            // A restore that cannot complete (an object removed by a
                            // concurrent prune, a full disk…) costs a run, not a failure.
                            Err(e) => Check::Run(decision(Verdict::Run, format!("{why} (could not restore: {e})"))),
                        }
                    }
                }
            }
        };
        let run = matches!(check, Check::Run(_));
        if !(dirty || run) {
            return Ok(check);
        }
        let mut stats = source_stats();
        stats.extend(out_stats);
        if !self.options.read_only && (dirty || stats.len() != cache.len()) {
            self.db.save_stats(name, &encode_map(&stats))?;
        }
        if run {
            self.pending.lock().insert(
                name.to_owned(),
                Pending {
                    key,
                    ingredients,
                    stats,
                },
            );
        }
        Ok(check)
    }

    fn store(
        &self,
        c: &Compiled,
        decision: &Decision,
        result: &serde_json::Value,
        logs: &[(Stream, String)],
    ) -> Result<(), String> {
        let name = c.spec.name.as_str();
        let pending = self
            .pending
            .lock()
            .get(name)
            .filter(|p| *p.key == *decision.key)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "phase `{name}` was recorded without being checked first under key {}",
                    decision.key
                )
            })?;
        let seen = now_ns();
        let cwd = c.spec.cwd.as_path();
        let (scanned, out_entries, _) =
            outputs::scan(cwd, &c.outputs, &pending.stats, seen, false).map_err(|e| e.to_string())?;
        let mut manifest = Vec::with_capacity(scanned.len());
        for (rel, s) in c.outputs.iter().zip(scanned) {
            match s {
                Scanned::Missing => return Err(format!("declared output `{rel}` was not written by the phase")),
                Scanned::Present(o) => manifest.push(o),
            }
        }
        let objects = outputs::objects(&manifest);
        let total: u64 = objects.values().sum();
        let store = self.options.use_cache && c.spec.cache && total <= self.options.max_size;
        if store {
            let mut from: HashMap<&str, PathBuf> = HashMap::new();
            for o in &manifest {
                if let Node::File { digest, .. } = &o.node {
                    from.entry(digest).or_insert_with(|| cwd.join(&o.path));
                }
                for (below, node) in &o.children {
                    if let Node::File { digest, .. } = node {
                        from.entry(digest).or_insert_with(|| cwd.join(&o.path).join(below));
                    }
                }
            }
            objects
                .par_iter()
                .try_for_each(|(digest, size)| match from.get(digest.as_str()) {
                    Some(path) => self.cas.put(digest, *size, path),
                    None => Ok(()),
                })
                .map_err(|e| e.to_string())?;
        }
        let mut stats = pending.stats;
        stats.extend(out_entries);
        let no_objects = BTreeMap::new();
        let record = NewRecord {
            phase: name,
            key: &pending.key,
            result: serde_json::to_string(result).map_err(|e| format!("the result does not serialize: {e}"))?,
            logs: serde_json::to_string(logs).map_err(|e| format!("the logs do not serialize: {e}"))?,
            manifest: serde_json::to_string(&manifest).map_err(|e| format!("the manifest does not serialize: {e}"))?,
            ingredients: serde_json::to_string(&pending.ingredients)
                .map_err(|e| format!("the ingredients do not serialize: {e}"))?,
            objects: if store { &objects } else { &no_objects },
            stored: store,
            stats: encode_map(&stats),
            now: now_ns(),
        };
        let gone = self.db.record(&record).map_err(|e| e.to_string())?;
        self.remove_objects(&gone).map_err(|e| e.to_string())?;
        if store {
            self.flush().map_err(|e| e.to_string())?;
            let (_, gone) = self.db.evict(self.options.max_size, false).map_err(|e| e.to_string())?;
            self.remove_objects(&gone).map_err(|e| e.to_string())?;
        }
        self.pending.lock().remove(name);
        Ok(())
    }

    fn remove_objects(&self, digests: &[String]) -> Result<(), CacheError> {
        digests.iter().try_for_each(|d| self.cas.remove(d))
    }
}

/// Stat entries for the files just restored, with their recorded digests (they are racy:
/// the next check hashes them again, which also verifies the restore).
fn restored_entries(cwd: &Path, manifest: &[Output], stats: &mut Vec<(String, Entry)>) {
    let seen = now_ns();
    for o in manifest {
        let files = std::iter::once((o.path.clone(), &o.node))
            .chain(o.children.iter().map(|(below, n)| (format!("{}/{below}", o.path), n)));
        for (rel, node) in files {
            if let Node::File { digest, .. } = node
                && let Ok(meta) = std::fs::symlink_metadata(cwd.join(&rel))
            {
                stats.push((
                    rel,
                    Entry {
                        stat: stat::Stat::of(&meta),
                        seen_ns: seen,
                        digest: digest.clone(),
                    },
                ));
            }
        }
    }
}

fn encode_map(stats: &StatMap) -> Vec<u8> {
    let entries: Vec<(&str, &Entry)> = stats.iter().map(|(k, v)| (k.as_str(), v)).collect();
    stat::encode(&entries)
}

impl Drop for Cache {
    fn drop(&mut self) {
        // Best effort: losing "used" marks only makes eviction a little less precise.
        let _ = self.flush();
    }
}

impl Incremental for Cache {
    fn is_incremental(&self, phase: &str) -> bool {
        self.phases
            .get(phase)
            .is_some_and(|c| !c.spec.sources.is_empty() || !c.spec.outputs.is_empty())
    }

    fn check(&self, phase: &str, deps: &[Dependency<'_>]) -> Result<Check, String> {
        match self.phases.get(phase) {
            Some(c) if self.is_incremental(phase) => self.decide(c, deps, false).map_err(|e| e.to_string()),
            _ => Ok(Check::Always),
        }
    }

    fn check_quick(&self, phase: &str, deps: &[Dependency<'_>]) -> Option<Result<Check, String>> {
        match self.phases.get(phase) {
            Some(c) if self.is_incremental(phase) => match self.decide(c, deps, true) {
                Err(CacheError::WouldBlock) => None,
                other => Some(other.map_err(|e| e.to_string())),
            },
            _ => Some(Ok(Check::Always)),
        }
    }

    fn record(
        &self,
        phase: &str,
        decision: &Decision,
        result: &serde_json::Value,
        logs: &[(Stream, String)],
    ) -> Result<(), String> {
        if self.options.read_only {
            return Ok(());
        }
        match self.phases.get(phase) {
            Some(c) if self.is_incremental(phase) => self.store(c, decision, result, logs),
            _ => Ok(()),
        }
    }
}
