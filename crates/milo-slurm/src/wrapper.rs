//! The batch script each job runs: it enters the phase's `cwd`, sets its `env` and `MILO_*`
//! variables (with `MILO_OUTPUT`/`MILO_INPUTS` on the shared filesystem), marks the start,
//! runs the command with the phase's shell, and writes the command's exit status to a file
//! atomically (a temporary file renamed into place): that file is the ground truth for how
//! the command ended.

use std::path::{Path, PathBuf};

use milo::executor::CommandSpec;

/// The files of one job, all in the run's job directory on the shared filesystem.
#[derive(Debug, Clone)]
pub(crate) struct JobFiles {
    pub(crate) script: PathBuf,
    pub(crate) stdout: PathBuf,
    pub(crate) stderr: PathBuf,
    pub(crate) started: PathBuf,
    pub(crate) exit: PathBuf,
    pub(crate) result: PathBuf,
    pub(crate) inputs: PathBuf,
}

impl JobFiles {
    pub(crate) fn new(dir: &Path, n: u64) -> Self {
        let f = |ext: &str| dir.join(format!("{n}.{ext}"));
        Self {
            script: f("sh"),
            stdout: f("out"),
            stderr: f("err"),
            started: f("started"),
            exit: f("exit"),
            result: f("result"),
            inputs: f("inputs.json"),
        }
    }

    pub(crate) fn remove(&self) {
        for p in [
            &self.script,
            &self.stdout,
            &self.stderr,
            &self.started,
            &self.exit,
            &self.result,
            &self.inputs,
        ] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `'text'` for `sh`, with every `'` written as `'\''`.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Whether `name` can be an environment variable of `sh`'s `export`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The batch script of `spec`. `MILO_OUTPUT` and `MILO_INPUTS` point into `files` (the
/// executor copies them from and to the orchestrator's own paths).
pub(crate) fn script(spec: &CommandSpec, files: &JobFiles) -> Result<String, String> {
    let mut s = String::from("#!/bin/sh\n# Written by milo: runs one phase's command as a Slurm job.\n");
    if let Some(cwd) = &spec.cwd {
        let cwd = cwd.display().to_string();
        s.push_str(&format!(
            "cd {q} || {{ echo \"milo: cannot enter the phase's cwd {cwd} on $(hostname)\" >&2; \
             printf '1\\n' > {tmp} && mv -f {tmp} {exit}; exit 1; }}\n",
            q = quote(&cwd),
            cwd = cwd.replace(['"', '`', '$', '\\'], "_"),
            tmp = quote(&format!("{}.tmp", files.exit.display())),
            exit = quote(&files.exit.display().to_string()),
        ));
    }
    for (k, v) in &spec.env {
        if !valid_name(k) {
            return Err(format!(
                "environment variable `{k}` cannot be passed to a Slurm job (not a shell variable name)"
            ));
        }
        let v = match k.as_str() {
            "MILO_OUTPUT" => files.result.display().to_string(),
            "MILO_INPUTS" => files.inputs.display().to_string(),
            _ => v.clone(),
        };
        s.push_str(&format!("export {k}={}\n", quote(&v)));
    }
    s.push_str(&format!(": > {}\n", quote(&files.started.display().to_string())));
    let shell: Vec<String> = spec.shell.clone().unwrap_or_else(|| vec!["sh".into(), "-c".into()]);
    let mut line: Vec<String> = shell.iter().map(|w| quote(w)).collect();
    line.push(quote(&spec.command));
    s.push_str(&line.join(" "));
    s.push_str(" </dev/null\n");
    s.push_str(&format!(
        "status=$?\nprintf '%s\\n' \"$status\" > {tmp} && mv -f {tmp} {exit}\nexit \"$status\"\n",
        tmp = quote(&format!("{}.tmp", files.exit.display())),
        exit = quote(&files.exit.display().to_string()),
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_script_sets_env_and_writes_the_exit_file_by_rename() {
        let files = JobFiles::new(Path::new("/shared/run"), 3);
        let spec = CommandSpec::new("echo $GREETING")
            .cwd("/work/x")
            .env("GREETING", "hi 'there'")
            .env("MILO_OUTPUT", "/dev/shm/local.out");
        let s = script(&spec, &files).unwrap();
        assert!(s.contains("cd '/work/x' ||"), "{s}");
        assert!(s.contains(r"export GREETING='hi '\''there'\'''"), "{s}");
        assert!(s.contains("export MILO_OUTPUT='/shared/run/3.result'"), "{s}");
        assert!(s.contains("'sh' '-c' 'echo $GREETING' </dev/null"), "{s}");
        assert!(s.contains("mv -f '/shared/run/3.exit.tmp' '/shared/run/3.exit'"), "{s}");
        let bad = CommandSpec::new("true").env("A-B", "1");
        assert!(script(&bad, &files).is_err());
    }
}
