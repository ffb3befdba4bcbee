//! Fuzzes the `milo.toml` loader and the pipeline validator: any text either is rejected with
//! a `ConfigError` (whose message renders) or builds a valid pipeline, and nothing panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match milo_cli::config::PipelineFile::parse("fuzz/milo.toml", text.as_ref()) {
        Ok(file) => {
            match milo_cli::build::pipeline(&file, &[]) {
                Ok(p) => {
                    assert_eq!(p.execution_order().len(), file.phases.len());
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
            // `--only` with the first phase (and a name that is not a phase).
            if let Some(first) = file.phases.first() {
                let _ = milo_cli::build::pipeline(&file, std::slice::from_ref(&first.name));
            }
            let _ = milo_cli::build::pipeline(&file, &["no such phase".to_owned()]).map(drop);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
