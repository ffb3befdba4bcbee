//! Reading files that someone else controls — a phase's result file, the pipeline file a user
//! names — without letting them control milo: only regular files are read (a FIFO, a device
//! or, where asked, a symbolic link is refused instead of blocking forever or streaming
//! gigabytes), opening never blocks, and no more than a size limit is read.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

/// The default limit on a phase's result (`MILO_OUTPUT`): 16 MiB.
pub const DEFAULT_RESULT_LIMIT: u64 = 16 * 1024 * 1024;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    /// There is no file at the path.
    #[error("there is no file at {path}")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The path names a symbolic link where only a file is accepted.
    #[error("{path} is a symbolic link, not a regular file")]
    Symlink {
        /// The path.
        path: String,
    },
    /// The path names something other than a regular file.
    #[error("{path} is a {kind}, not a regular file")]
    NotRegular {
        /// The path.
        path: String,
        /// What it is: `FIFO`, `directory`, `character device`…
        kind: &'static str,
    },
    /// The file is larger than the limit.
    #[error("{path} is larger than the limit of {}", human_size(*.limit))]
    TooLarge {
        /// The path.
        path: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Opening or reading failed.
    #[error("could not read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Whether a symbolic link at the path itself may be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (a pipeline file may be a link to a regular file).
    Follow,
    /// Refuse it (a phase must not point milo at another file).
    Refuse,
}

/// Reads the regular file at `path`, at most `limit` bytes: an error for anything else. The
/// open is non-blocking, so a FIFO with no writer is refused at once rather than waited on.
pub fn read_regular(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, BoundedReadError> {
    let shown = || path.display().to_string();
    let mut flags = OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    if links == Links::Refuse {
        flags |= OFlag::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BoundedReadError::NotFound { path: shown() },
            // O_NOFOLLOW on a link fails with ELOOP.
            _ if e.raw_os_error() == Some(nix::libc::ELOOP) && links == Links::Refuse => {
                BoundedReadError::Symlink { path: shown() }
            }
            _ => BoundedReadError::Io {
                path: shown(),
                source: e,
            },
        })?;
    read_open(file, path, limit)
}

fn read_open(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let shown = || path.display().to_string();
    let io = |source| BoundedReadError::Io { path: shown(), source };
    let meta = file.metadata().map_err(io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "FIFO"
        } else if ft.is_dir() {
            "directory"
        } else if ft.is_char_device() {
            "character device"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(BoundedReadError::NotRegular { path: shown(), kind });
    }
    if meta.len() > limit {
        return Err(BoundedReadError::TooLarge { path: shown(), limit });
    }
    // The file may still grow while it is read: read one byte past the limit to tell.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge { path: shown(), limit });
    }
    Ok(bytes)
}

/// `16 MiB`, `512 KiB`, `100 bytes`.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_regular(&p, 5, Links::Refuse).unwrap(), b"hello");
        assert!(matches!(
            read_regular(&p, 4, Links::Refuse),
            Err(BoundedReadError::TooLarge { limit: 4, .. })
        ));
    }

    #[test]
    fn fifos_devices_and_links_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_regular(&fifo, 10, Links::Follow),
            Err(BoundedReadError::NotRegular { kind: "FIFO", .. })
        ));
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_regular(&link, 10, Links::Refuse),
            Err(BoundedReadError::Symlink { .. })
        ));
        assert!(matches!(
            read_regular(&link, 10, Links::Follow),
            Err(BoundedReadError::NotRegular {
                kind: "character device",
                ..
            })
        ));
        assert!(matches!(
            read_regular(&dir.path().join("none"), 10, Links::Follow),
            Err(BoundedReadError::NotFound { .. })
        ));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(16 * 1024 * 1024), "16 MiB");
        assert_eq!(human_size(2048), "2 KiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }
}
