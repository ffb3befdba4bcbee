//! Files only their owner may read: the history's directory (0700), the database and its
//! `-wal` / `-shm` companions (0600), and the journal key. Modes are set explicitly after
//! creation, so they do not depend on the umask.
//!
//! Captured output and results can hold anything a phase printed; another local user must
//! not be able to read them (see docs/SECURITY.md).

use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700. An existing directory named `.milo`
/// (milo's own) is tightened to 0700 as well; any other existing directory is left alone (it
/// is the user's, chosen with `--db`).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let existed = dir.is_dir();
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let ours = !existed || dir.file_name().is_some_and(|n| n == ".milo");
        if ours {
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
            if mode != 0o700 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Makes `path` (created empty if missing) and the SQLite files beside it (`-wal`, `-shm`,
/// `-journal`, where they exist) mode 0600. SQLite creates its companion files with the
/// database file's mode, so doing this before the first connection covers them too.
pub fn database_files(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        restrict(path)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            match restrict(Path::new(&name)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Sets mode 0600 on an existing file unless it has it already.
#[cfg(unix)]
pub fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
