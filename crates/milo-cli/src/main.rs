//! The `milo` binary; everything lives in the `milo_cli` library.

fn main() -> std::process::ExitCode {
    milo_cli::main()
}
