//! The loader's `include = [...]`: finding and reading the files a pipeline file includes
//! (and those they include), before any of them is checked.
//!
//! ```toml
//! include = ["ci/common.toml", { path = "web/milo.toml", cwd = "web", required = false }]
//! ```
//!
//! A path is relative to the directory of the file that names it. Each file is read once (a
//! file included twice, as in a diamond, brings its phases once); a file that includes itself,
//! directly or through others, is an error at the entry that closes the loop.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::{ConfigError, ErrorKind, SourceFile};

/// The most files one pipeline may consist of (a runaway generator, not a real project).
const MAX_FILES: usize = 256;

/// An included file, read.
pub(super) struct Included {
    /// As named for messages: the including file's directory joined with the entry.
    pub(super) path: PathBuf,
    pub(super) text: String,
    /// What its relative `cwd`s and `env_file`s are joined to: the including file's, or the
    /// entry's `cwd`.
    pub(super) dir: PathBuf,
    /// The entry's `cwd`, for its phases that set none.
    pub(super) default_cwd: Option<PathBuf>,
}

/// Everything `root` (the text of `src`, whose relative paths are joined to `dir`) includes,
/// depth first in the order written; the errors of the entries and of the files' syntax.
pub(super) fn gather(src: SourceFile<'_>, dir: &Path, root: &DeTable<'_>) -> (Vec<Included>, Vec<ConfigError>) {
    let mut out = Gather {
        files: Vec::new(),
        errors: Vec::new(),
        seen: Vec::new(),
    };
    out.seen.push(identity(src.path));
    let mut stack = vec![identity(src.path)];
    out.file(src, dir, root, &mut stack);
    (out.files, out.errors)
}

struct Gather {
    files: Vec<Included>,
    errors: Vec<ConfigError>,
    /// Every file read so far (canonical paths): each is read once.
    seen: Vec<PathBuf>,
}

/// One entry of an `include` list.
struct Entry {
    path: String,
    span: Range<usize>,
    cwd: Option<String>,
    required: bool,
}

impl Gather {
    /// The includes of `src` (parsed as `root`), read recursively.
    fn file(&mut self, src: SourceFile<'_>, dir: &Path, root: &DeTable<'_>, stack: &mut Vec<PathBuf>) {
        let Some((_, value)) = root.iter().find(|(k, _)| k.get_ref() == "include") else {
            return;
        };
        let entries = match value.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| self.entry(src, item))
                .collect::<Vec<_>>(),
            DeValue::String(s) => {
                self.errors.push(
                    src.error(
                        ErrorKind::WrongType,
                        value.span(),
                        "`include` must be an array of paths",
                    )
                    .help_line(format!("write `include = [\"{s}\"]`")),
                );
                return;
            }
            _ => {
                self.errors.push(
                    src.error(
                        ErrorKind::WrongType,
                        value.span(),
                        "`include` must be an array of paths",
                    )
                    .help_line("write `include = [\"ci/common.toml\"]`"),
                );
                return;
            }
        };
        let file_dir = match src.path.parent() {
            Some(p) => p.to_owned(),
            None => PathBuf::new(),
        };
        for entry in entries {
            let path = file_dir.join(&entry.path);
            let id = identity(&path);
            if stack.contains(&id) {
                self.errors.push(
                    src.error(
                        ErrorKind::InvalidValue,
                        entry.span.clone(),
                        format!("`{}` includes itself (through this entry)", path.display()),
                    )
                    .help_line("remove this entry: a file can be included once, not from inside itself"),
                );
                continue;
            }
            if self.seen.contains(&id) {
                continue;
            }
            if self.files.len() >= MAX_FILES {
                self.errors.push(src.error(
                    ErrorKind::InvalidValue,
                    entry.span.clone(),
                    format!("a pipeline may consist of at most {MAX_FILES} files"),
                ));
                return;
            }
            let text = match read(&path) {
                Ok(text) => text,
                Err(Missing) if !entry.required => continue,
                Err(Missing) => {
                    self.errors.push(
                        src.error(
                            ErrorKind::NotFound,
                            entry.span.clone(),
                            format!("included file `{}` does not exist", path.display()),
                        )
                        .help_line(format!(
                            "create it, or make it optional: `{{ path = \"{}\", required = false }}`",
                            entry.path
                        )),
                    );
                    continue;
                }
                Err(Unreadable(reason)) => {
                    self.errors.push(src.error(
                        ErrorKind::Io,
                        entry.span.clone(),
                        format!("cannot read included file `{}`: {reason}", path.display()),
                    ));
                    continue;
                }
            };
            self.seen.push(id.clone());
            let default_cwd = entry
                .cwd
                .as_ref()
                .map(|c| std::path::absolute(file_dir.join(c)).unwrap_or_else(|_| file_dir.join(c)));
            let child_dir = default_cwd.clone().unwrap_or_else(|| dir.to_owned());
            self.files.push(Included {
                path,
                text,
                dir: child_dir,
                default_cwd,
            });
            let (path, text, child_dir) = {
                let f = &self.files[self.files.len() - 1];
                (f.path.clone(), f.text.clone(), f.dir.clone())
            };
            let child_src = SourceFile {
                path: &path,
                text: &text,
            };
            match DeTable::parse(&text) {
                Ok(root) => {
                    stack.push(id);
                    self.file(child_src, &child_dir, root.get_ref(), stack);
                    stack.pop();
                }
                Err(e) => self.errors.push(super::syntax_error(child_src, &e)),
            }
        }
    }

    fn entry(&mut self, src: SourceFile<'_>, item: &toml::Spanned<DeValue<'_>>) -> Option<Entry> {
        let shape = || {
            src.error(
                ErrorKind::WrongType,
                item.span(),
                "an `include` entry must be a path or `{ path = \"...\", cwd = \"...\", required = false }`",
            )
        };
        match item.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() && !s.contains('\0') => Some(Entry {
                path: s.to_string(),
                span: item.span(),
                cwd: None,
                required: true,
            }),
            DeValue::String(_) => {
                self.errors.push(src.error(
                    ErrorKind::InvalidValue,
                    item.span(),
                    "an `include` entry must be a non-empty path",
                ));
                None
            }
            DeValue::Table(table) => {
                let mut entry = Entry {
                    path: String::new(),
                    span: item.span(),
                    cwd: None,
                    required: true,
                };
                for (key, value) in table.iter() {
                    match (key.get_ref().as_ref(), value.get_ref()) {
                        ("path", DeValue::String(s)) if !s.trim().is_empty() && !s.contains('\0') => {
                            entry.path = s.to_string();
                            entry.span = value.span();
                        }
                        ("cwd", DeValue::String(s)) if !s.contains('\0') => entry.cwd = Some(s.to_string()),
                        ("required", DeValue::Boolean(b)) => entry.required = *b,
                        ("path" | "cwd" | "required", _) => {
                            self.errors.push(src.error(
                                ErrorKind::WrongType,
                                value.span(),
                                format!(
                                    "`{}` of an `include` entry must be {}",
                                    key.get_ref(),
                                    if key.get_ref() == "required" {
                                        "true or false"
                                    } else {
                                        "a non-empty path"
                                    }
                                ),
                            ));
                            return None;
                        }
                        (other, _) => {
                            self.errors.push(
                                src.error(
                                    ErrorKind::UnknownKey,
                                    key.span(),
                                    format!("unknown key `{other}` in an `include` entry"),
                                )
                                .help_line("an entry takes `path`, `cwd` and `required`"),
                            );
                            return None;
                        }
                    }
                }
                if entry.path.is_empty() {
                    self.errors.push(shape().help_line("add `path = \"ci/common.toml\"`"));
                    return None;
                }
                Some(entry)
            }
            _ => {
                self.errors.push(shape());
                None
            }
        }
    }
}

/// A file's identity for loops and repeats: its canonical path where it exists.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned())
}

enum ReadError {
    Missing,
    Unreadable(String),
}
use ReadError::{Missing, Unreadable};

fn read(path: &Path) -> Result<String, ReadError> {
    use milo::bounded_read::{BoundedReadError, Links, read_regular};
    match read_regular(path, super::super::PIPELINE_FILE_LIMIT, Links::Follow) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            Unreadable(format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        }),
        Err(BoundedReadError::NotFound { .. }) => Err(Missing),
        Err(e) => Err(Unreadable(e.to_string())),
    }
}
