//! [`CliError`]: every way a `milo` command can fail, with its exit status.

use std::path::PathBuf;

use crate::config::ConfigError;

/// A failure of the command itself (not of a pipeline run, which has its own exit status).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The pipeline file is missing or invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The command line asks for something impossible.
    #[error("error: {message}{}", help.as_ref().map(|h| format!("\n  = help: {h}")).unwrap_or_default())]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// A file could not be written or read.
    #[error("error: could not {action} `{}`: {source}", path.display())]
    Io {
        /// What milo was doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something went wrong inside milo.
    #[error("error: {0}")]
    Internal(String),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(e) => e.exit_code(),
            CliError::Usage { .. } => 2,
            CliError::Io { .. } | CliError::Internal(_) => 1,
        }
    }

    pub fn usage(message: impl Into<String>, help: Option<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            help,
        }
    }
}
