//! How the process uses its allocators: Rust's allocations go to mimalloc (set in `main.rs`),
//! told to give freed memory back at once; C code (SQLite) uses glibc's `malloc`, whose big
//! buffers go back to the operating system when freed.

/// mimalloc's option numbers (`mi_option_e` in `mimalloc.h`, the same in its v2 and v3, which
/// `libmimalloc-sys` 0.1.49 bundles; the test below checks them against their defaults).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes both allocators before any thread starts.
///
/// mimalloc: freed pages are returned to the OS at once (`purge_delay` 0, not after a second) and
/// arenas are committed as used, not up front. With its defaults, 10,000 command phases peaked
/// at 94 MB against glibc's 54 MB; with these, 55 MB, and the speed gained on glibc is kept
/// (see BENCHMARKS.md).
///
/// glibc: every allocation of 128 KiB or more gets its own `mmap`, so freeing it returns the
/// memory at once. glibc starts with that threshold but raises it each time such a block is
/// freed (up to 32 MiB), which left SQLite's heap fragmented and resident.
pub fn configure_allocator() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores a tuning value in mimalloc's option table (an atomic
    // store); it has no preconditions, and values it does not know are ignored.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only changes a tuning parameter inside glibc's allocator, under its
    // lock; it has no preconditions and no effect on memory already allocated. Called before
    // any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option numbers name the options meant: each reads its documented default
    /// (`purge_delay` 1000 ms in v3, `arena_eager_commit` 2) before it is set, then the value set.
    #[test]
    fn mimalloc_option_numbers_are_the_ones_meant() {
        if std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MIMALLOC_")) {
            return; // the environment may have changed the defaults
        }
        #[allow(unsafe_code)]
        // SAFETY: `mi_option_get`/`mi_option_set` read and store mimalloc's option table.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT), 2);
            configure_allocator();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT), 0);
        }
    }
}
