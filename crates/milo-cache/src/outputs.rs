//! Declared outputs: their manifest (files with digest and mode, directories as their exact
//! set of entries, symbolic links with their target), comparing what is on disk with a
//! recorded manifest, and restoring a manifest from the object store.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cas::Cas;
use crate::error::{CacheError, Result};
use crate::sources::rel_of;
use crate::stat::{self, Entry as StatEntry, Stat, StatMap, Want};

/// One node of an output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    /// A regular file.
    File {
        /// Content digest (hex).
        digest: String,
        /// Bytes.
        size: u64,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link (never followed).
    Symlink {
        /// What it points to, as written.
        target: String,
    },
    /// A directory.
    Dir,
}

/// One declared output as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// As declared, relative to cwd.
    pub path: String,
    /// What it is.
    pub node: Node,
    /// For a directory: every entry below it, by path relative to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, Node>,
}

/// The state of an output on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// It does not exist.
    Missing,
    /// It exists.
    Present(Output),
}

/// A file of an output that has to be hashed.
struct Pending {
    rel: String,
    stat: Stat,
    mode: u32,
}

fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CacheError::io("stat (an output)", path)(e)),
    }
}

fn link_target(path: &Path) -> Result<String> {
    let t = fs::read_link(path).map_err(CacheError::io("read the link", path))?;
    Ok(t.to_string_lossy().into_owned())
}

/// What the outputs `rels` (relative to `cwd`) are now, hashing files through the stat cache.
/// Returns each output's state, the stat entries of its files, and whether any was hashed.
#[allow(clippy::type_complexity)]
pub fn scan(
    cwd: &Path,
    rels: &[String],
    cache: &StatMap,
    seen_ns: i64,
    quick: bool,
) -> Result<(Vec<Scanned>, Vec<(String, StatEntry)>, bool)> {
    // First the shape (lstat / walk), then hash every file of every output in one parallel go.
    enum Shape {
        Missing,
        File(usize),
        Link(String),
        Dir(Vec<(String, Result<usize, Node>)>),
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut shapes = Vec::with_capacity(rels.len());
    for rel in rels {
        let path = cwd.join(rel);
        let Some(meta) = lstat(&path)? else {
            shapes.push(Shape::Missing);
            continue;
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            shapes.push(Shape::Link(link_target(&path)?));
        } else if ft.is_file() {
            pending.push(Pending {
                rel: rel.clone(),
                stat: Stat::of(&meta),
                mode: meta.permissions().mode() & 0o7777,
            });
            shapes.push(Shape::File(pending.len() - 1));
        } else if ft.is_dir() {
            let mut children = Vec::new();
            for entry in walkdir::WalkDir::new(&path)
                .min_depth(1)
                .follow_links(false)
                .sort_by_file_name()
            {
                let entry = entry.map_err(|e| {
                    let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| path.clone());
                    CacheError::Io {
                        action: "list (an output directory)",
                        path: p,
                        source: e
                            .into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("walk failed")),
                    }
                })?;
                let below = rel_of("", entry.path().strip_prefix(&path).unwrap_or(entry.path()));
                let ft = entry.file_type();
                if ft.is_symlink() {
                    children.push((
                        below,
                        Err(Node::Symlink {
                            target: link_target(entry.path())?,
                        }),
                    ));
                } else if ft.is_dir() {
                    children.push((below, Err(Node::Dir)));
                } else if ft.is_file() {
                    let meta = entry.metadata().map_err(|e| CacheError::Io {
                        action: "stat (an output)",
                        path: entry.path().to_path_buf(),
                        source: e
                            .into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("stat failed")),
                    })?;
                    pending.push(Pending {
                        rel: format!("{rel}/{below}"),
                        stat: Stat::of(&meta),
                        mode: meta.permissions().mode() & 0o7777,
                    });
                    children.push((below, Ok(pending.len() - 1)));
                }
                // Sockets, fifos, devices: not something a cache can hold; ignored.
            }
            shapes.push(Shape::Dir(children));
        } else {
            shapes.push(Shape::Missing);
        }
    }
    let wants: Vec<Want<'_>> = pending
        .iter()
        .map(|p| Want {
            rel: &p.rel,
            stat: p.stat,
        })
        .collect();
    let (digests, fresh) = stat::digests(cwd, &wants, cache, seen_ns, quick)?;
    let hashed = fresh.iter().any(Option::is_some);
    let entries: Vec<StatEntry> = fresh
        .into_iter()
        .zip(&pending)
        .map(|(e, p)| match e {
            Some(e) => e,
            // A hit: the cache has it.
            None => cache.get(&p.rel).cloned().unwrap_or(StatEntry {
                stat: p.stat,
                seen_ns,
                digest: String::new(),
            }),
        })
        .collect();
    let file = |i: usize| Node::File {
        digest: digests[i].clone(),
        size: pending[i].stat.size,
        mode: pending[i].mode,
    };
    let scanned = rels
        .iter()
        .zip(shapes)
        .map(|(rel, shape)| match shape {
            Shape::Missing => Scanned::Missing,
            Shape::File(i) => Scanned::Present(Output {
                path: rel.clone(),
                node: file(i),
                children: BTreeMap::new(),
            }),
            Shape::Link(target) => Scanned::Present(Output {
                path: rel.clone(),
                node: Node::Symlink { target },
                children: BTreeMap::new(),
            }),
            Shape::Dir(children) => Scanned::Present(Output {
                path: rel.clone(),
                node: Node::Dir,
                children: children
                    .into_iter()
                    .map(|(below, n)| (below, n.map_or_else(|node| node, file)))
                    .collect(),
            }),
        })
        .collect();
    let entries = pending.into_iter().map(|p| p.rel).zip(entries).collect();
    Ok((scanned, entries, hashed))
}

/// How the outputs on disk differ from the recorded ones, in words ("output build/app was
/// deleted"), empty when they are the same.
pub fn differences(recorded: &[Output], now: &[Scanned]) -> Vec<String> {
    let mut out = Vec::new();
    for (rec, cur) in recorded.iter().zip(now) {
        match cur {
            Scanned::Missing => out.push(format!("output {} was deleted", rec.path)),
            Scanned::Present(cur) if cur.node != rec.node => out.push(format!("output {} was modified", rec.path)),
            Scanned::Present(cur) => {
                for (below, node) in &rec.children {
                    match cur.children.get(below) {
                        None => out.push(format!("output {}/{below} was deleted", rec.path)),
                        Some(n) if n != node => out.push(format!("output {}/{below} was modified", rec.path)),
                        Some(_) => {}
                    }
                }
                for below in cur.children.keys() {
                    if !rec.children.contains_key(below) {
                        out.push(format!("output {}/{below} was added", rec.path));
                    }
                }
            }
        }
    }
    if recorded.len() != now.len() {
        out.push("the declared outputs changed".into());
    }
    out
}

/// The digests (with sizes) of every file of `outputs`, each once.
pub fn objects(outputs: &[Output]) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for o in outputs {
        for node in std::iter::once(&o.node).chain(o.children.values()) {
            if let Node::File { digest, size, .. } = node {
                all.insert(digest.clone(), *size);
            }
        }
    }
    all
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(CacheError::io("set the mode of", path))
}

/// Copies object `digest` to `dest` (created or replaced) with `mode`.
fn copy_object(cas: &Cas, digest: &str, dest: &Path, mode: u32) -> Result<()> {
    let object = cas.path_of(digest);
    fs::copy(&object, dest).map_err(|e| CacheError::Io {
        action: "restore from the cache",
        path: dest.to_path_buf(),
        source: e,
    })?;
    set_mode(dest, mode)
}

fn remove_any(path: &Path) -> Result<()> {
    match lstat(path)? {
        None => Ok(()),
        Some(m) if m.is_dir() => fs::remove_dir_all(path).map_err(CacheError::io("remove", path)),
        Some(_) => fs::remove_file(path).map_err(CacheError::io("remove", path)),
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = blake3::hash(
        format!(
            "{}:{:?}:{}",
            std::process::id(),
            std::thread::current().id(),
            stat::now_ns()
        )
        .as_bytes(),
    )
    .to_hex();
    path.with_file_name(format!(".{name}.milo-restore-{}", &unique[..12]))
}

fn symlink(target: &str, at: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, at).map_err(CacheError::io("create the symbolic link", at))
}

/// Puts `node` at `path` through a temporary sibling renamed over it.
fn restore_leaf(cas: &Cas, node: &Node, path: &Path) -> Result<()> {
    let tmp = temp_name(path);
    match node {
        Node::File { digest, mode, .. } => copy_object(cas, digest, &tmp, *mode)?,
        Node::Symlink { target } => symlink(target, &tmp)?,
        Node::Dir => return fs::create_dir_all(path).map_err(CacheError::io("create the directory", path)),
    }
    if lstat(path)?.is_some_and(|m| m.is_dir()) {
        remove_any(path)?;
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        CacheError::io("put the restored file at", path)(e)
    })
}

/// Makes the outputs on disk exactly `recorded` (whose objects must all be in `cas`), given
/// what they are `now`. Files are copied in parallel; a missing directory is built in a
/// temporary sibling and renamed into place, an existing one is mirrored (stale entries
/// removed, changed files replaced one by one through a rename).
pub fn restore(cwd: &Path, cas: &Cas, recorded: &[Output], now: &[Scanned]) -> Result<()> {
    for (rec, cur) in recorded.iter().zip(now) {
        let path = cwd.join(&rec.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(CacheError::io("create the directory", parent))?;
        }
        let cur = match cur {
            Scanned::Present(c) if c == rec => continue,
            Scanned::Present(c) => Some(c),
            Scanned::Missing => None,
        };
        match &rec.node {
            Node::Dir => match cur.filter(|c| c.node == Node::Dir) {
                Some(cur) => mirror(cas, rec, cur, &path)?,
                None => {
                    let tmp = temp_name(&path);
                    let built = build_dir(cas, rec, &tmp).and_then(|()| {
                        remove_any(&path)?;
                        fs::rename(&tmp, &path).map_err(CacheError::io("put the restored directory at", &path))
                    });
                    if built.is_err() {
                        let _ = fs::remove_dir_all(&tmp);
                    }
                    built?;
                }
            },
            leaf => restore_leaf(cas, leaf, &path)?,
        }
    }
    Ok(())
}

fn build_dir(cas: &Cas, rec: &Output, root: &Path) -> Result<()> {
    fs::create_dir(root).map_err(CacheError::io("create the directory", root))?;
    let mut files = Vec::new();
    // BTreeMap order puts a directory before everything below it.
    for (below, node) in &rec.children {
        let p = root.join(below);
        match node {
            Node::Dir => fs::create_dir_all(&p).map_err(CacheError::io("create the directory", &p))?,
            Node::Symlink { target } => symlink(target, &p)?,
            Node::File { digest, mode, .. } => files.push((p, digest, *mode)),
        }
    }
    files
        .par_iter()
        .try_for_each(|(p, digest, mode)| copy_object(cas, digest, p, *mode))
}

fn mirror(cas: &Cas, rec: &Output, cur: &Output, root: &Path) -> Result<()> {
    // Remove what should not be there (deepest first), or is of another kind.
    let mut stale: Vec<&String> = cur
        .children
        .iter()
        .filter(|(below, node)| match rec.children.get(*below) {
            None => true,
            Some(want) => std::mem::discriminant(want) != std::mem::discriminant(*node),
        })
        .map(|(below, _)| below)
        .collect();
    stale.sort_by(|a, b| b.cmp(a));
    for below in stale {
        remove_any(&root.join(below))?;
    }
    let mut files = Vec::new();
    for (below, node) in &rec.children {
        if cur.children.get(below) == Some(node) {
            continue;
        }
        let p = root.join(below);
        match node {
            Node::Dir => fs::create_dir_all(&p).map_err(CacheError::io("create the directory", &p))?,
            leaf => files.push((p, leaf)),
        }
    }
    files.par_iter().try_for_each(|(p, leaf)| restore_leaf(cas, leaf, p))
}
