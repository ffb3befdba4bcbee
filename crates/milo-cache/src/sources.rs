//! Which files a phase's `sources` globs match: patterns are compiled once, each include is
//! walked from its literal base directory only, `!` patterns exclude, and `.milo/` and the
//! phase's own declared outputs are never sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::error::{CacheError, Result};
use crate::stat::Stat;

/// One include pattern.
#[derive(Debug)]
struct Include {
    /// As written (reasons group added files by it).
    pattern: String,
    /// The literal directory prefix, relative to cwd ("" for cwd itself).
    base: String,
    matcher: Matcher,
    /// Also matches everything under the path (a literal pattern naming a directory).
    under: Option<Matcher>,
}

/// A compiled pattern. The shapes most `sources` take are matched with string comparisons
/// (compiling a regex per phase costs a no-op run of a thousand phases ~50 ms); the others
/// with globset.
#[derive(Debug)]
enum Matcher {
    /// A path with no glob syntax: itself.
    Literal(String),
    /// Everything below a literal directory (`dir/**` of a literal `dir`).
    Under(String),
    /// `dir/PREFIX*SUFFIX` with a literal `dir` (maybe empty), one `*` in the last part and no
    /// other glob syntax: a file directly in `dir` (`*` never matches `/`).
    Star {
        dir: String,
        prefix: String,
        suffix: String,
    },
    Glob(GlobMatcher),
}

impl Matcher {
    fn of(phase: &str, pattern: &str) -> Result<Matcher> {
        let (dir, last) = match pattern.rsplit_once('/') {
            Some((dir, last)) => (dir, last),
            None => ("", pattern),
        };
        if !pattern.contains(is_meta) {
            return Ok(Matcher::Literal(pattern.to_owned()));
        }
        if !dir.contains(is_meta)
            && let Some((prefix, suffix)) = last.split_once('*')
            && !prefix.contains(is_meta)
            && !suffix.contains(is_meta)
        {
            return Ok(Matcher::Star {
                dir: dir.to_owned(),
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
            });
        }
        glob(phase, pattern).map(Matcher::Glob)
    }

    fn is_match(&self, rel: &str) -> bool {
        match self {
            Matcher::Literal(p) => rel == p,
            Matcher::Under(dir) => {
                rel.len() > dir.len() + 1 && rel.starts_with(dir.as_str()) && rel.as_bytes()[dir.len()] == b'/'
            }
            Matcher::Star { dir, prefix, suffix } => {
                let name = if dir.is_empty() {
                    rel
                } else if rel.len() > dir.len() && rel.starts_with(dir.as_str()) && rel.as_bytes()[dir.len()] == b'/' {
                    &rel[dir.len() + 1..]
                } else {
                    return false;
                };
                !name.contains('/')
                    && name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix.as_str())
                    && name.ends_with(suffix.as_str())
            }
            Matcher::Glob(g) => g.is_match(rel),
        }
    }
}

/// A phase's compiled `sources`.
#[derive(Debug)]
pub struct SourceSet {
    includes: Vec<Include>,
    excludes: GlobSet,
    outputs: Vec<String>,
}

/// A matched source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Relative to cwd, `/`-separated (`cwd.join(rel)` is the file).
    pub rel: String,
    /// Its stat now.
    pub stat: Stat,
}

fn glob(phase: &str, pattern: &str) -> Result<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| CacheError::Glob {
            phase: phase.to_owned(),
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })
}

fn is_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | '{' | '\\')
}

/// `./a//b/` → `a/b`.
pub fn normalize(pattern: &str) -> String {
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let joined = parts.join("/");
    if pattern.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

impl SourceSet {
    /// Compiles `sources` of phase `phase`, excluding its normalized `outputs`.
    pub fn compile(phase: &str, sources: &[String], outputs: &[String]) -> Result<SourceSet> {
        let mut includes = Vec::new();
        let mut excludes = GlobSetBuilder::new();
        for raw in sources {
            if let Some(ex) = raw.strip_prefix('!') {
                let ex = normalize(ex);
                excludes.add(glob_of(phase, raw, &ex)?);
                excludes.add(glob_of(phase, raw, &format!("{ex}/**"))?);
                continue;
            }
            let pattern = normalize(raw);
            let literal: Vec<&str> = pattern.split('/').take_while(|part| !part.contains(is_meta)).collect();
            let all_literal = literal.len() == pattern.split('/').count();
            let base = if all_literal {
                pattern.clone()
            } else {
                literal.join("/")
            };
            let matcher = Matcher::of(phase, &pattern)?;
            let under = all_literal.then(|| Matcher::Under(pattern.clone()));
            includes.push(Include {
                pattern: raw.clone(),
                base,
                matcher,
                under,
            });
        }
        let excludes = excludes.build().map_err(|e| CacheError::Glob {
            phase: phase.to_owned(),
            pattern: sources.join(", "),
            message: e.to_string(),
        })?;
        Ok(SourceSet {
            includes,
            excludes,
            outputs: outputs.to_vec(),
        })
    }

    /// The include pattern (as written) that first matches `rel`, if any.
    pub fn group_of(&self, rel: &str) -> Option<&str> {
        self.includes
            .iter()
            .find(|inc| inc.matcher.is_match(rel) || inc.under.as_ref().is_some_and(|u| u.is_match(rel)))
            .map(|inc| inc.pattern.as_str())
    }

    /// Whether `rel` (relative to the phase's cwd, `/`-separated) is one of its sources.
    pub fn matches(&self, rel: &str) -> bool {
        !self.excluded(rel) && self.group_of(rel).is_some()
    }

    fn excluded(&self, rel: &str) -> bool {
        // `.milo/`, and the temporary siblings a restore (maybe in another milo run) builds
        // an output in.
        rel.split('/')
            .any(|c| c == ".milo" || (c.starts_with('.') && c.contains(".milo-restore-")))
            || self
                .outputs
                .iter()
                .any(|o| rel == o || (rel.starts_with(o.as_str()) && rel.as_bytes().get(o.len()) == Some(&b'/')))
            || self.excludes.is_match(rel)
    }

    /// Whether [`walk`](Self::walk) would list `rel` if it were a regular file: it matches
    /// and no directory the walk would descend through on the way to it is excluded.
    pub fn walk_finds(&self, rel: &str) -> bool {
        if !self.matches(rel) {
            return false;
        }
        // The walk starts from the outermost base holding `rel` and skips excluded
        // directories from there down.
        let Some(outer) = self
            .includes
            .iter()
            .map(|inc| inc.base.as_str())
            .filter(|b| contains(b, rel))
            .min_by_key(|b| depth_of(b))
        else {
            return false;
        };
        let mut dir = rel;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if depth_of(parent) < depth_of(outer) {
                break;
            }
            if self.excluded(parent) {
                return false;
            }
            dir = parent;
        }
        true
    }

    /// Whether a directory at `rel` can hold sources (or lead to them): it is not excluded and
    /// lies below an include's base, or is one of the directories above a base.
    pub fn may_hold(&self, rel: &str) -> bool {
        !self.excluded(rel)
            && self
                .includes
                .iter()
                .any(|inc| contains(&inc.base, rel) || contains(rel, &inc.base))
    }

    /// Every file matched now, sorted by relative path, each once.
    pub fn walk(&self, cwd: &Path) -> Result<Vec<SourceFile>> {
        Ok(self.walk_noting_links(cwd)?.0)
    }

    /// [`walk`](Self::walk), and whether it followed a symbolic link (whose target's changes
    /// a watcher of the tree may never report).
    pub fn walk_noting_links(&self, cwd: &Path) -> Result<(Vec<SourceFile>, bool)> {
        let linked = std::cell::Cell::new(false);
        let mut found: Vec<SourceFile> = Vec::new();
        // Includes sharing a base are walked once, against all of them.
        let mut bases: BTreeMap<&str, Vec<&Include>> = BTreeMap::new();
        for inc in &self.includes {
            bases.entry(inc.base.as_str()).or_default().push(inc);
        }
        // A base under another base is covered by the outer walk.
        let keys: Vec<&str> = bases.keys().copied().collect();
        let mut merged: BTreeMap<&str, Vec<&Include>> = BTreeMap::new();
        for key in keys {
            let outer = merged
                .keys()
                .copied()
                .find(|b: &&str| b.is_empty() || key == *b || key.starts_with(&format!("{b}/")));
            let incs = bases.remove(key).unwrap_or_default();
            match outer {
                Some(b) => merged.entry(b).or_default().extend(incs),
                None => {
                    merged.insert(key, incs);
                }
            }
        }
        for (base, incs) in merged {
            self.walk_base(cwd, base, &incs, &linked, &mut found)?;
        }
        // Bases do not overlap (nested ones were merged), so a file is found once; sorted once
        // at the end rather than kept sorted file by file.
        found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
        found.dedup_by(|a, b| a.rel == b.rel);
        Ok((found, linked.get()))
    }

    fn walk_base(
        &self,
        cwd: &Path,
        base: &str,
        incs: &[&Include],
        linked: &std::cell::Cell<bool>,
        found: &mut Vec<SourceFile>,
    ) -> Result<()> {
        let root = if base.is_empty() {
            cwd.to_path_buf()
        } else {
            cwd.join(base)
        };
        // How deep below the root a match can be (unbounded with `**` or a directory
        // pattern).
        let base_depth = depth_of(base);
        let max_depth = incs
            .iter()
            .map(|inc| match inc.under {
                Some(_) => None,
                None if inc.pattern.contains("**") => None,
                None => Some(depth_of(&normalize(&inc.pattern)).saturating_sub(base_depth)),
            })
            .try_fold(0usize, |acc, d| d.map(|d| acc.max(d)));
        let walk = Walk {
            set: self,
            incs,
            max_depth,
            linked,
        };
        let meta = match std::fs::symlink_metadata(&root) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CacheError::io("stat (for sources)", &root)(e)),
        };
        if meta.is_dir() {
            if !base.is_empty() && self.excluded(base) {
                return Ok(());
            }
            walk.dir(&root, base, 1, found)
        } else {
            let ft = meta.file_type();
            walk.file(|| root, base.to_owned(), ft, || Ok(meta), found)
        }
    }
}

fn depth_of(rel: &str) -> usize {
    rel.split('/').filter(|c| !c.is_empty()).count()
}

/// Whether `rel` is `dir` or below it (`dir` "" is the cwd, which holds everything).
fn contains(dir: &str, rel: &str) -> bool {
    dir.is_empty() || rel == dir || (rel.starts_with(dir) && rel.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// One walk from a literal base: `std::fs::read_dir` (file types from the directory
/// entries, stats relative to the directory's descriptor), pruning excluded directories and
/// those deeper than any pattern can match.
struct Walk<'a> {
    set: &'a SourceSet,
    incs: &'a [&'a Include],
    max_depth: Option<usize>,
    /// Set when a symbolic link is followed.
    linked: &'a std::cell::Cell<bool>,
}

impl Walk<'_> {
    fn matches(&self, rel: &str) -> bool {
        self.incs
            .iter()
            .any(|inc| inc.matcher.is_match(rel) || inc.under.as_ref().is_some_and(|u| u.is_match(rel)))
    }

    fn dir(&self, dir: &Path, rel: &str, depth: usize, found: &mut Vec<SourceFile>) -> Result<()> {
        if self.max_depth.is_some_and(|max| depth > max) {
            return Ok(());
        }
        let list_err = |e| CacheError::io("list (for sources)", dir)(e);
        for entry in std::fs::read_dir(dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let mut child = String::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                child.push_str(rel);
                child.push('/');
            }
            child.push_str(&name);
            let ft = entry
                .file_type()
                .map_err(CacheError::io("stat (a source)", entry.path()))?;
            if ft.is_dir() {
                if !self.set.excluded(&child) {
                    self.dir(&entry.path(), &child, depth + 1, found)?;
                }
                continue;
            }
            self.file(|| entry.path(), child, ft, || entry.metadata(), found)?;
        }
        Ok(())
    }

    fn file(
        &self,
        path: impl FnOnce() -> PathBuf,
        rel: String,
        ft: std::fs::FileType,
        meta: impl FnOnce() -> std::io::Result<std::fs::Metadata>,
        found: &mut Vec<SourceFile>,
    ) -> Result<()> {
        if self.set.excluded(&rel) || !self.matches(&rel) {
            return Ok(());
        }
        // Symbolic links are followed to what they point at; a dangling one, or one to a
        // directory, is not a source file.
        let meta = if ft.is_symlink() {
            self.linked.set(true);
            match std::fs::metadata(path()) {
                Ok(m) if m.is_file() => m,
                _ => return Ok(()),
            }
        } else {
            meta().map_err(|e| CacheError::io("stat (a source)", path())(e))?
        };
        if meta.is_file() {
            found.push(SourceFile {
                rel,
                stat: Stat::of(&meta),
            });
        }
        Ok(())
    }
}

fn glob_of(phase: &str, raw: &str, pattern: &str) -> Result<globset::Glob> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| CacheError::Glob {
            phase: phase.to_owned(),
            pattern: raw.to_owned(),
            message: e.kind().to_string(),
        })
}

/// `base` + the path below it, `/`-separated.
pub fn rel_of(base: &str, below: &Path) -> String {
    let mut rel = String::from(base);
    for c in below.components() {
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(&c.as_os_str().to_string_lossy());
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, rel: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }

    fn rels(set: &SourceSet, dir: &Path) -> Vec<String> {
        set.walk(dir).unwrap().into_iter().map(|f| f.rel).collect()
    }

    #[test]
    fn globs_excludes_milo_and_outputs() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "src/a.c",
            "src/b.h",
            "src/sub/c.c",
            "src/gen/d.c",
            "src/.milo/e.c",
            "build/x.c",
            "top.c",
            "lib/one.rs",
        ] {
            touch(d.path(), f);
        }
        let srcs: Vec<String> = ["src/**/*.c", "!src/gen", "*.c", "build/**", "lib", "nothing/*.c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let set = SourceSet::compile("p", &srcs, &["build".into()]).unwrap();
        assert_eq!(rels(&set, d.path()), ["lib/one.rs", "src/a.c", "src/sub/c.c", "top.c"]);
        assert_eq!(set.group_of("src/new.c"), Some("src/**/*.c"));
        let braces = SourceSet::compile("p", &["src/{a,b}.?".into(), "src/[a-b].c".into()], &[]).unwrap();
        assert_eq!(rels(&braces, d.path()), ["src/a.c", "src/b.h"]);
    }

    #[test]
    fn the_fast_matchers_agree_with_globset() {
        let patterns = [
            "src/p1/*.txt",
            "*.c",
            "src/*",
            "a/b/c",
            "src/f*",
            "src/*_test.go",
            "x/*.tar.gz",
        ];
        let paths = [
            "src/p1/f000.txt",
            "src/p1/sub/f.txt",
            "src/p1/.txt",
            "src/p10/f.txt",
            "src/p1.txt",
            "a.c",
            "d/a.c",
            ".c",
            "src/x",
            "src/x/y",
            "a/b/c",
            "a/b/c/d",
            "a/b",
            "src/f",
            "src/fa/b",
            "src/a_test.go",
            "src/_test.go",
            "x/a.tar.gz",
            "x/.tar.gz",
            "x/a.gz",
        ];
        for pattern in patterns {
            let fast = Matcher::of("p", pattern).unwrap();
            assert!(!matches!(fast, Matcher::Glob(_)), "{pattern} takes the fast path");
            let reference = glob("p", pattern).unwrap();
            for path in paths {
                assert_eq!(fast.is_match(path), reference.is_match(path), "{pattern} on {path}");
            }
        }
        let under = Matcher::Under("a/b".into());
        let reference = glob("p", "a/b/**").unwrap();
        for path in paths {
            assert_eq!(under.is_match(path), reference.is_match(path), "a/b/** on {path}");
        }
    }

    #[test]
    fn a_bad_glob_names_the_phase_and_pattern() {
        let err = SourceSet::compile("p", &["src/[".into()], &[]).unwrap_err().to_string();
        assert!(err.contains("phase `p`") && err.contains("src/["), "{err}");
    }
}
