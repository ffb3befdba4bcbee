//! How the process uses the allocator: big buffers go back to the operating system when freed.

/// Makes glibc's `malloc` serve every allocation of 128 KiB or more with its own `mmap`, so
/// freeing it returns the memory to the operating system at once.
///
/// glibc starts with that threshold but raises it each time such a block is freed (up to
/// 32 MiB). Parsing a large `milo.toml` grows and frees buffers of tens of megabytes (the TOML
/// parser's token list and tree); with the raised threshold the later ones came from the
/// heap, which stayed fragmented and resident for the whole run: 10,000 command phases peaked
/// at 64 MiB, against 53 MiB with the threshold fixed (see BENCHMARKS.md).
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only changes a tuning parameter inside glibc's allocator, under its
    // lock; it has no preconditions and no effect on memory already allocated. Called before
    // any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
