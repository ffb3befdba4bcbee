//! The crate's typed error: what failed, on which path, and what to do about it.

use std::path::PathBuf;

/// Anything the cache can fail at. Every variant names the file or setting involved.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A quick check ([`Incremental::check_quick`](milo::pipeline::Incremental::check_quick))
    /// met work that may take long (hashing a file, restoring outputs): the full check does it.
    #[error("the check needs to hash or restore files")]
    WouldBlock,
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create the cache directory", …).
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The index database failed.
    #[error(
        "the cache index {} failed: {source} (if it is corrupt, `milo cache clean` removes it)",
        path.display()
    )]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A `sources` pattern does not parse.
    #[error("phase `{phase}`: source pattern `{pattern}` is not a valid glob: {message}")]
    Glob {
        /// The phase declaring it.
        phase: String,
        /// The pattern as written.
        pattern: String,
        /// Why it does not parse.
        message: String,
    },
    /// A declared output is not usable (absolute, escapes cwd, inside `.milo`).
    #[error("phase `{phase}`: output `{output}` {problem}")]
    BadOutput {
        /// The phase declaring it.
        phase: String,
        /// The output as written.
        output: String,
        /// What is wrong with it and how to fix it.
        problem: &'static str,
    },
    /// The same phase name appears twice in the specs.
    #[error("phase `{0}` is specified twice")]
    DuplicatePhase(String),
    /// A phase's cwd is not absolute.
    #[error("phase `{phase}`: cwd {} must be an absolute path", cwd.display())]
    RelativeCwd {
        /// The phase.
        phase: String,
        /// Its cwd.
        cwd: PathBuf,
    },
    /// A record in the index does not decode (written by an incompatible milo).
    #[error(
        "a record of phase `{phase}` in the cache index does not decode ({message}); `milo cache clean` resets the cache"
    )]
    Corrupt {
        /// The phase whose record it is.
        phase: String,
        /// The decoding error.
        message: String,
    },
}

impl CacheError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io { action, path, source }
    }
}

/// `Result` with [`CacheError`].
pub type Result<T, E = CacheError> = std::result::Result<T, E>;
