//! Watching a tree for `milo watch`: [`Watcher`] turns file-system events (inotify and the
//! like through `notify`, or polling with [`Mode::Poll`] for file systems without events)
//! into debounced batches of changed paths that [`Rules`] let through.
//!
//! Rules: nothing under `.milo/` or `.git/`, nothing the caller names as never triggering
//! (declared outputs), nothing a `.gitignore` (of the root or of any directory between the
//! root and the path, the deepest deciding, as git does) or `.git/info/exclude` ignores, and
//! only what the caller's predicate wants (a phase's `sources`).
//!
//! Only events that can change content count (creations, writes, renames, removals, a new
//! modification time), not reads or access times: milo reading the sources to hash them must
//! not start a cycle.
//!
//! Batches: [`Watcher::next`] takes the first change, then every change that follows within
//! the debounce time of the previous one, so a burst of writes (a save that writes many
//! files, a formatter, `git checkout`) is one batch, whatever its length.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ignore::gitignore::Gitignore;
use notify::{Event, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher as _};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// The default debounce time.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The watcher could not be set up or could not watch the root.
    #[error("could not watch {path} for changes: {reason}")]
    Watch {
        /// The directory.
        path: String,
        /// What the OS said, and what to try.
        reason: String,
    },
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The OS's events (inotify, FSEvents, kqueue): no cost while nothing changes.
    Events,
    /// Scanning the tree every so often, for file systems without events (network mounts,
    /// some containers).
    Poll(Duration),
}

/// What [`Rules::on_every_change`] calls.
type Tell = Box<dyn Fn(&[PathBuf]) + Send + Sync>;

/// Which changed paths start a cycle (see the module's documentation).
pub struct Rules {
    root: PathBuf,
    /// Absolute paths (files or directories) whose changes never count.
    never: Vec<PathBuf>,
    wanted: Box<dyn Fn(&Path) -> bool + Send + Sync>,
    /// Each directory's `.gitignore`, read once (`None`: it has none).
    ignores: Mutex<HashMap<PathBuf, Option<Arc<Gitignore>>>>,
    exclude: Option<Gitignore>,
    /// Told of every change, counted or not (see [`Rules::on_every_change`]).
    every: Option<Tell>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("root", &self.root)
            .field("never", &self.never)
            .finish_non_exhaustive()
    }
}

impl Rules {
    /// Rules for the tree at `root` (absolute): `never` lists paths that never count (with
    /// everything below them), `wanted` says whether a path (absolute) is worth a cycle.
    pub fn new(root: PathBuf, never: Vec<PathBuf>, wanted: impl Fn(&Path) -> bool + Send + Sync + 'static) -> Self {
        let exclude_file = root.join(".git").join("info").join("exclude");
        let exclude = exclude_file.is_file().then(|| Gitignore::new(&exclude_file).0);
        Self {
            root,
            never,
            wanted: Box::new(wanted),
            ignores: Mutex::new(HashMap::new()),
            exclude,
            every: None,
        }
    }

    /// Also tells `f` of every change under the root as it arrives, whether it counts or
    /// not (`.milo/`, outputs and ignored paths included; the root when the OS lost events),
    /// before it is batched: what a cache that remembers the tree needs to stay exact.
    pub fn on_every_change(mut self, f: impl Fn(&[PathBuf]) + Send + Sync + 'static) -> Self {
        self.every = Some(Box::new(f));
        self
    }

    /// The watched root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a change of `path` (absolute) counts.
    pub fn counts(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        if rel.components().any(|c| {
            let c = c.as_os_str();
            c == ".milo" || c == ".git"
        }) {
            return false;
        }
        if self.never.iter().any(|n| path.starts_with(n)) {
            return false;
        }
        !self.ignored(path) && (self.wanted)(path)
    }

    /// Whether a `.gitignore` between the root and `path`, or `.git/info/exclude`, ignores it.
    fn ignored(&self, path: &Path) -> bool {
        let is_dir = path.is_dir();
        let mut dirs: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&self.root))
            .collect();
        // The deepest `.gitignore` that has a say decides.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            let Some(gi) = self.gitignore_of(dir) else { continue };
            let m = gi.matched_path_or_any_parents(path, is_dir);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        self.exclude
            .as_ref()
            .is_some_and(|gi| gi.matched_path_or_any_parents(path, is_dir).is_ignore())
    }

    fn gitignore_of(&self, dir: &Path) -> Option<Arc<Gitignore>> {
        let mut cache = self.ignores.lock();
        cache
            .entry(dir.to_owned())
            .or_insert_with(|| {
                let file = dir.join(".gitignore");
                file.is_file().then(|| Arc::new(Gitignore::new(&file).0))
            })
            .clone()
    }

    /// Forgets the `.gitignore` files read so far (one of them changed).
    fn forget_ignores(&self) {
        self.ignores.lock().clear();
    }
}

/// Whether an event of this kind can change a file's content (or make or remove one).
fn changes_content(kind: &EventKind) -> bool {
    use notify::event::{MetadataKind, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        // Polling reports a write as a new modification time.
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

/// Batches of changed paths under a root.
pub struct Watcher {
    rx: mpsc::UnboundedReceiver<Result<Vec<PathBuf>, String>>,
    buffer: BTreeSet<PathBuf>,
    debounce: Duration,
    _watcher: Box<dyn notify::Watcher + Send>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("debounce", &self.debounce)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching `rules.root()` recursively.
    pub fn start(rules: Rules, mode: Mode, debounce: Duration) -> Result<Self, WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let rules = Arc::new(rules);
        let root = rules.root().to_owned();
        let handler = {
            let rules = rules.clone();
            move |result: notify::Result<Event>| {
                let batch = match result {
                    // The OS dropped events (an inotify queue overflow): anything may have
                    // changed, which the root stands for.
                    Ok(event) if event.need_rescan() => {
                        let root = vec![rules.root().to_owned()];
                        if let Some(every) = &rules.every {
                            every(&root);
                        }
                        Ok(root)
                    }
                    // Reads (milo hashing the sources is one) and metadata-only changes (an
                    // access time, a chmod) change no content: they never count.
                    Ok(event) if !changes_content(&event.kind) => return,
                    Ok(event) => {
                        if let Some(every) = &rules.every {
                            every(&event.paths);
                        }
                        if event
                            .paths
                            .iter()
                            .any(|p| p.file_name().is_some_and(|n| n == ".gitignore"))
                        {
                            rules.forget_ignores();
                        }
                        let paths: Vec<PathBuf> = event.paths.into_iter().filter(|p| rules.counts(p)).collect();
                        if paths.is_empty() {
                            return;
                        }
                        Ok(paths)
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(batch);
            }
        };
        let failed = |e: notify::Error| WatchError::Watch {
            path: root.display().to_string(),
            reason: match &e.kind {
                notify::ErrorKind::MaxFilesWatch => format!(
                    "{e}: the limit of watched directories was reached; raise fs.inotify.max_user_watches, or use --poll"
                ),
                _ => format!("{e}; --poll watches by scanning instead"),
            },
        };
        let watcher: Box<dyn notify::Watcher + Send> = match mode {
            Mode::Events => Box::new(RecommendedWatcher::new(handler, notify::Config::default()).map_err(failed)?),
            Mode::Poll(every) => Box::new(
                PollWatcher::new(handler, notify::Config::default().with_poll_interval(every)).map_err(failed)?,
            ),
        };
        let mut watcher = watcher;
        watcher.watch(&root, RecursiveMode::Recursive).map_err(failed)?;
        Ok(Self {
            rx,
            buffer: BTreeSet::new(),
            debounce,
            _watcher: watcher,
        })
    }

    /// The next batch of changed paths (sorted, each once; the root itself when the OS lost
    /// events), with every batch that follows
    /// within the debounce time merged in; `None` once the watcher has stopped. An `Err` is a
    /// watcher error (events may have been lost). Cancel-safe: paths taken in by a call that
    /// is dropped are returned by the next call (or [`drain`](Self::drain)).
    pub async fn next(&mut self) -> Option<Result<Vec<PathBuf>, String>> {
        if self.buffer.is_empty() {
            match self.rx.recv().await? {
                Ok(p) => self.buffer.extend(p),
                Err(e) => return Some(Err(e)),
            }
        }
        loop {
            match tokio::time::timeout(self.debounce, self.rx.recv()).await {
                Ok(Some(Ok(more))) => self.buffer.extend(more),
                Ok(Some(Err(e))) => return Some(Err(e)),
                Ok(None) | Err(_) => break,
            }
        }
        Some(Ok(std::mem::take(&mut self.buffer).into_iter().collect()))
    }

    /// Every changed path already received, merged (without waiting); empty if none.
    pub fn drain(&mut self) -> Vec<PathBuf> {
        let mut paths = std::mem::take(&mut self.buffer);
        while let Ok(batch) = self.rx.try_recv() {
            if let Ok(p) = batch {
                paths.extend(p);
            }
        }
        paths.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milo_git_outputs_and_gitignored_paths_never_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join("src/gen")).unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\n/target/\n").unwrap();
        std::fs::write(root.join("src/.gitignore"), "gen/\n!keep.log\n").unwrap();
        let rules = Rules::new(root.clone(), vec![root.join("out")], |_| true);
        assert!(rules.counts(&root.join("src/main.c")));
        assert!(!rules.counts(&root.join(".milo/cache/x")));
        assert!(!rules.counts(&root.join(".git/index")));
        assert!(!rules.counts(&root.join("out/app")));
        assert!(!rules.counts(&root.join("out")));
        assert!(!rules.counts(&root.join("build.log")));
        assert!(!rules.counts(&root.join("target/debug/x")));
        assert!(!rules.counts(&root.join("src/gen/a.c")));
        // A deeper .gitignore can take a path back.
        assert!(rules.counts(&root.join("src/keep.log")));
        assert!(!rules.counts(Path::new("/elsewhere/file")));
        let picky = Rules::new(root.clone(), Vec::new(), |p| p.extension().is_some_and(|e| e == "c"));
        assert!(picky.counts(&root.join("src/main.c")));
        assert!(!picky.counts(&root.join("README.md")));
    }
}
