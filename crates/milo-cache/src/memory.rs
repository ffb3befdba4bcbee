//! Source walks remembered between checks while a file watcher reports every change under a
//! root (`milo watch`, through [`Cache::changed`](crate::Cache::changed)).
//!
//! A phase's walk (every matched file and its stat) is kept after its first check and patched
//! from the reported paths instead of being walked again: a file reported is stat'ed and
//! added, updated or dropped; a path gone drops everything below it; a directory that may hold
//! sources (created, renamed in, or a lost batch of events, which reports the root) forgets
//! the walk, so the next check walks afresh. A walk is kept only when the watcher can see
//! everything it lists: the phase's cwd and every include base lie inside the root and the
//! walk followed no symbolic link. A walk that overlapped a report is not kept (a generation
//! count says so), so no change is lost between a walk and its keeping.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::sources::{SourceFile, SourceSet};
use crate::stat::Stat;

/// The walks of one cache.
#[derive(Debug)]
pub(crate) struct Memory {
    root: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    walks: HashMap<String, Arc<Vec<SourceFile>>>,
    /// Per phase, how many reports could have changed its walk.
    generations: HashMap<String, u64>,
}

/// What a reported path is now.
enum Now {
    Missing,
    Dir,
    Link,
    File(Stat),
    Other,
}

impl Memory {
    /// Walks under `root`, which a watcher reports every change of.
    pub(crate) fn new(root: PathBuf) -> Memory {
        Memory {
            root,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether a phase in `cwd` with these sources can be remembered (the watcher sees all
    /// of it).
    pub(crate) fn covers(&self, cwd: &Path, sources: &[String]) -> bool {
        cwd.starts_with(&self.root)
            && !cwd.components().any(|c| c == Component::ParentDir)
            && sources
                .iter()
                .all(|s| !s.trim_start_matches('!').starts_with('/') && !s.split('/').any(|c| c == ".."))
    }

    /// The remembered walk of `phase`, or the generation to keep a new one under.
    pub(crate) fn get(&self, phase: &str) -> Result<Arc<Vec<SourceFile>>, u64> {
        let inner = self.inner.lock();
        match inner.walks.get(phase) {
            Some(files) => Ok(files.clone()),
            None => Err(inner.generations.get(phase).copied().unwrap_or(0)),
        }
    }

    /// Keeps `files` as `phase`'s walk, unless a change that could alter it was reported
    /// since `generation` (the walk may have missed it).
    pub(crate) fn keep(&self, phase: &str, files: Arc<Vec<SourceFile>>, generation: u64) {
        let mut inner = self.inner.lock();
        if inner.generations.get(phase).copied().unwrap_or(0) == generation {
            inner.walks.insert(phase.to_owned(), files);
        }
    }

    /// Patches the remembered walks for the changes of `paths` (absolute), given every phase
    /// as (name, cwd, sources). A change no phase's walk can see (a log file, `.milo/`, an
    /// output) changes nothing.
    pub(crate) fn changed<'a, I>(&self, paths: &[PathBuf], phases: I)
    where
        I: Iterator<Item = (&'a str, &'a Path, &'a SourceSet)> + Clone,
    {
        // Stat'ed before the lock: checks wait on it.
        let now: Vec<(&PathBuf, Now)> = paths.iter().map(|p| (p, now(p))).collect();
        let mut inner = self.inner.lock();
        for (path, what) in &now {
            // Outside the root, or the root itself (events were lost): anything may differ.
            let everything = !path.starts_with(&self.root) || *path == &self.root;
            for (name, cwd, set) in phases.clone() {
                let below = path.strip_prefix(cwd).ok().map(rel_of);
                let relevant = everything
                    || match &below {
                        Some(rel) => relevant(set, rel, what),
                        // Above the cwd (a parent renamed or removed).
                        None => cwd.starts_with(path),
                    };
                if !relevant {
                    continue;
                }
                match inner.generations.get_mut(name) {
                    Some(g) => *g += 1,
                    None => {
                        inner.generations.insert(name.to_owned(), 1);
                    }
                }
                let Some(files) = inner.walks.get_mut(name) else {
                    continue;
                };
                let kept = match (&below, everything) {
                    (Some(rel), false) => patch(files, set, rel, what),
                    _ => false,
                };
                if !kept {
                    inner.walks.remove(name);
                }
            }
        }
    }
}

/// Whether a change at `rel` can alter the walk of `set`.
fn relevant(set: &SourceSet, rel: &str, what: &Now) -> bool {
    match what {
        Now::Dir => rel.is_empty() || set.may_hold(rel),
        // A file, or a directory, gone.
        Now::Missing => set.walk_finds(rel) || set.may_hold(rel),
        Now::Link | Now::File(_) | Now::Other => set.walk_finds(rel),
    }
}

/// `a/b/c` of a relative path, as the walk spells it.
fn rel_of(below: &Path) -> String {
    crate::sources::rel_of("", below)
}

fn now(path: &Path) -> Now {
    match std::fs::symlink_metadata(path) {
        Err(_) => Now::Missing,
        Ok(m) if m.is_dir() => Now::Dir,
        Ok(m) if m.file_type().is_symlink() => Now::Link,
        Ok(m) if m.is_file() => Now::File(Stat::of(&m)),
        Ok(_) => Now::Other,
    }
}

/// Applies one change at `rel` to a walk; `false` to forget the walk.
fn patch(files: &mut Arc<Vec<SourceFile>>, set: &SourceSet, rel: &str, what: &Now) -> bool {
    let at = files.binary_search_by(|f| f.rel.as_str().cmp(rel));
    match what {
        Now::Dir if rel.is_empty() || set.may_hold(rel) => false,
        Now::Link if set.walk_finds(rel) => false,
        Now::File(stat) if set.walk_finds(rel) => {
            let file = SourceFile {
                rel: rel.to_owned(),
                stat: *stat,
            };
            match at {
                Ok(i) if files[i].stat == *stat => {}
                Ok(i) => Arc::make_mut(files)[i] = file,
                Err(i) => Arc::make_mut(files).insert(i, file),
            }
            true
        }
        Now::Missing => {
            // The path, and everything below it (a removed directory).
            if let Ok(i) = at {
                Arc::make_mut(files).remove(i);
            }
            let prefix = format!("{rel}/");
            let start = files.partition_point(|f| f.rel.as_str() < prefix.as_str());
            let end = start + files[start..].iter().take_while(|f| f.rel.starts_with(&prefix)).count();
            if end > start {
                Arc::make_mut(files).drain(start..end);
            }
            true
        }
        // A directory that holds no sources, a link or file the walk would not list, a FIFO…
        _ => {
            if let Ok(i) = at {
                Arc::make_mut(files).remove(i);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One change to the tree, on one of a few names in a few directories.
    #[derive(Debug, Clone)]
    enum Op {
        Write(usize, usize),
        Remove(usize, usize),
        RemoveDir(usize),
        /// A directory created with a file in it (which may go unreported).
        NewDirWithFile(usize, usize),
        Link(usize, usize),
    }

    const DIRS: [&str; 5] = ["src", "src/sub", "src/out", "src/sub/deep", "docs"];
    const NAMES: [&str; 4] = ["a.c", "b.h", "c.txt", "a-b.c"];

    fn op() -> impl Strategy<Value = Op> {
        let (d, n) = (0..DIRS.len(), 0..NAMES.len());
        prop_oneof![
            4 => (d.clone(), n.clone()).prop_map(|(d, n)| Op::Write(d, n)),
            2 => (d.clone(), n.clone()).prop_map(|(d, n)| Op::Remove(d, n)),
            1 => d.clone().prop_map(Op::RemoveDir),
            1 => (d.clone(), n.clone()).prop_map(|(d, n)| Op::NewDirWithFile(d, n)),
            1 => (d, n).prop_map(|(d, n)| Op::Link(d, n)),
        ]
    }

    /// Applies `op` under `root` and returns the paths a watcher reports for it.
    fn apply(root: &Path, op: &Op, step: usize) -> Vec<PathBuf> {
        match *op {
            Op::Write(d, n) => {
                let dir = root.join(DIRS[d]);
                // A directory created is reported as such (and its parents, which are
                // created first); a file written, as itself.
                let mut reported: Vec<PathBuf> = dir
                    .ancestors()
                    .take_while(|a| !a.exists())
                    .map(Path::to_owned)
                    .collect();
                reported.reverse();
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join(NAMES[n]);
                std::fs::write(&file, format!("{step}")).unwrap();
                reported.push(file);
                reported
            }
            Op::Remove(d, n) => {
                let file = root.join(DIRS[d]).join(NAMES[n]);
                let _ = std::fs::remove_file(&file);
                vec![file]
            }
            Op::RemoveDir(d) => {
                let dir = root.join(DIRS[d]);
                let _ = std::fs::remove_dir_all(&dir);
                vec![dir]
            }
            Op::NewDirWithFile(d, n) => {
                let dir = root.join(DIRS[d]).join(format!("new{step}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(NAMES[n]), "x").unwrap();
                // Only the directory: its file was written before a watch on it existed.
                vec![dir]
            }
            Op::Link(d, n) => {
                let dir = root.join(DIRS[d]);
                let mut reported: Vec<PathBuf> = dir
                    .ancestors()
                    .take_while(|a| !a.exists())
                    .map(Path::to_owned)
                    .collect();
                reported.reverse();
                std::fs::create_dir_all(&dir).unwrap();
                let link = dir.join(format!("link{step}.c"));
                let _ = std::os::unix::fs::symlink(root.join("docs").join(NAMES[n]), &link);
                reported.push(link);
                reported
            }
        }
    }

    fn rels(files: &[SourceFile]) -> Vec<(String, Stat)> {
        files.iter().map(|f| (f.rel.clone(), f.stat)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever changes happen, a remembered walk patched from the reports lists what a
        /// fresh walk lists, file for file and stat for stat.
        #[test]
        fn a_patched_walk_is_the_walk(ops in proptest::collection::vec(op(), 1..30)) {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().to_owned();
            let outputs = vec!["src/out".to_owned()];
            let sources = vec!["src/**/*.c".to_owned(), "src/**/*.h".to_owned(), "!src/sub/deep".to_owned()];
            let set = SourceSet::compile("p", &sources, &outputs).unwrap();
            let memory = Memory::new(root.clone());
            prop_assert!(memory.covers(&root, &sources));
            for (step, op) in ops.iter().enumerate() {
                // A check: the remembered walk if there is one, else a walk that is kept.
                let files = match memory.get("p") {
                    Ok(files) => files,
                    Err(generation) => {
                        let (files, linked) = set.walk_noting_links(&root).unwrap();
                        let files = Arc::new(files);
                        if !linked {
                            memory.keep("p", files.clone(), generation);
                        }
                        files
                    }
                };
                prop_assert_eq!(rels(&files), rels(&set.walk(&root).unwrap()), "before step {}: {:?}", step, op);
                let paths = apply(&root, op, step);
                memory.changed(&paths, std::iter::once(("p", root.as_path(), &set)));
            }
            if let Ok(files) = memory.get("p") {
                prop_assert_eq!(rels(&files), rels(&set.walk(&root).unwrap()));
            }
        }
    }

    #[test]
    fn a_walk_that_overlapped_a_report_is_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let set = SourceSet::compile("p", &["src/**".to_owned()], &[]).unwrap();
        let memory = Memory::new(root.clone());
        let Err(generation) = memory.get("p") else {
            panic!("nothing is remembered yet")
        };
        memory.changed(&[root.join("src/a")], std::iter::once(("p", root.as_path(), &set)));
        memory.keep("p", Arc::new(Vec::new()), generation);
        assert!(
            memory.get("p").is_err(),
            "a report came between the walk and its keeping"
        );
    }

    #[test]
    fn a_change_no_walk_can_see_does_not_stand_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let set = SourceSet::compile("p", &["src/**".to_owned()], &["src/out".to_owned()]).unwrap();
        let memory = Memory::new(root.clone());
        let Err(generation) = memory.get("p") else {
            panic!("nothing is remembered yet")
        };
        // milo's own log beside the pipeline file, its index, the phase's output.
        std::fs::write(root.join("watch.log"), "cycle 2").unwrap();
        let unrelated = [
            root.join("watch.log"),
            root.join(".milo/cache/index.db-wal"),
            root.join("src/out"),
        ];
        memory.changed(&unrelated, std::iter::once(("p", root.as_path(), &set)));
        memory.keep("p", Arc::new(Vec::new()), generation);
        assert!(memory.get("p").is_ok(), "only changes the walk could see count");
    }

    #[test]
    fn only_phases_the_watcher_sees_whole_are_remembered() {
        let memory = Memory::new(PathBuf::from("/w"));
        assert!(memory.covers(Path::new("/w/sub"), &["src/**".to_owned(), "!src/gen".to_owned()]));
        assert!(!memory.covers(Path::new("/elsewhere"), &["src/**".to_owned()]));
        assert!(!memory.covers(Path::new("/w"), &["../shared/*.c".to_owned()]));
        assert!(!memory.covers(Path::new("/w"), &["/etc/hosts".to_owned()]));
        assert!(!memory.covers(Path::new("/w/../x"), &["a".to_owned()]));
    }
}
