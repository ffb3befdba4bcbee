//! The milo command.

// Placeholder until the command itself is written; the loader is not used yet.
#[allow(dead_code, unused_imports)]
mod config;

fn main() {}
