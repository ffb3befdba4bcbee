//! `milo cache status|clean|prune --max-size SIZE`: the cache of phase outputs beside the
//! pipeline file (`.milo/cache`).

use crate::cli::{CacheAction, CacheArgs};
use crate::error::CliError;
use crate::incremental::cache_dir;

use super::write_stdout;

pub fn cache(args: &CacheArgs) -> Result<u8, CliError> {
    let dir = cache_dir(&args.file.file);
    let failed = |e: milo_cache::CacheError| {
        CliError::usage(
            format!("cache at {}: {e}", dir.display()),
            Some("`milo cache clean` removes it; the next run then starts it afresh".into()),
        )
    };
    let text = match &args.action {
        CacheAction::Status => milo_cache::status(&dir).map_err(failed)?.to_string(),
        CacheAction::Clean => {
            let freed = milo_cache::clean(&dir).map_err(failed)?;
            format!(
                "removed the cache at {} ({})\n",
                dir.display(),
                milo_cache::human_bytes(freed)
            )
        }
        CacheAction::Prune { max_size } => milo_cache::prune(&dir, *max_size).map_err(failed)?.to_string(),
    };
    let text = if text.ends_with('\n') {
        text
    } else {
        format!("{text}\n")
    };
    write_stdout(text.as_bytes())?;
    Ok(0)
}
