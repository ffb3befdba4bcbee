//! The content-addressed object store: `<dir>/objects/<2 hex>/<62 hex>`, one read-only file
//! per distinct digest, written to `<dir>/tmp` then renamed so no reader ever sees a partial
//! object.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{CacheError, Result};

/// The object store under a cache directory.
#[derive(Debug, Clone)]
pub struct Cas {
    objects: PathBuf,
    tmp: PathBuf,
}

impl Cas {
    /// The store of cache directory `dir` (nothing is created).
    pub fn new(dir: &Path) -> Cas {
        Cas {
            objects: dir.join("objects"),
            tmp: dir.join("tmp"),
        }
    }

    /// Where object `digest` lives.
    pub fn path_of(&self, digest: &str) -> PathBuf {
        let (a, b) = digest.split_at(digest.len().min(2));
        self.objects.join(a).join(b)
    }

    /// Whether object `digest` is there with `size` bytes.
    pub fn has(&self, digest: &str, size: u64) -> bool {
        fs::metadata(self.path_of(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Stores the file at `from` as object `digest` unless it is already there.
    pub fn put(&self, digest: &str, size: u64, from: &Path) -> Result<()> {
        if self.has(digest, size) {
            return Ok(());
        }
        let dest = self.path_of(digest);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(CacheError::io("create the cache directory", parent))?;
        }
        fs::create_dir_all(&self.tmp).map_err(CacheError::io("create the cache directory", &self.tmp))?;
        let tmp = tempfile::Builder::new()
            .prefix("object-")
            .tempfile_in(&self.tmp)
            .map_err(CacheError::io("create a temporary file in", &self.tmp))?;
        fs::copy(from, tmp.path()).map_err(|e| CacheError::Io {
            action: "copy into the cache",
            path: from.to_path_buf(),
            source: e,
        })?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o444))
            .map_err(CacheError::io("set the mode of", tmp.path()))?;
        tmp.persist(&dest).map_err(|e| CacheError::Io {
            action: "store the object",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Removes object `digest` (already absent is fine).
    pub fn remove(&self, digest: &str) -> Result<()> {
        let p = self.path_of(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError::io("remove the object", p)(e)),
        }
    }

    /// The objects directory.
    pub fn objects_dir(&self) -> &Path {
        &self.objects
    }

    /// The temporary directory.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }
}
