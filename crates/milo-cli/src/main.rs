//! The `milo` binary; everything lives in the `milo_cli` library.

/// mimalloc rather than glibc's allocator: a no-op incremental run makes a few small
/// allocations per source file on two threads, and a command pipeline a few hundred per
/// phase, where glibc's spent a tenth of the run (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    milo_cli::main()
}
