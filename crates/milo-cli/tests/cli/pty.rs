//! [`Pty`]: the `milo` binary run to its end in a pseudo-terminal of a given size, with
//! everything it wrote kept as bytes and played into a vt100 screen of the same size, to
//! check what a user's terminal would show (and what it would have been told to do).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// The longest a run in a pty may take.
const WAIT: Duration = Duration::from_secs(60);

/// What `milo` wrote to the terminal, and its exit status.
pub struct Pty {
    /// Every byte written to the terminal.
    pub raw: Vec<u8>,
    /// The terminal's screen afterwards.
    pub screen: vt100::Parser,
    pub code: u32,
}

impl Pty {
    /// Runs `milo args…` in `dir`, in a `cols`×`rows` terminal, with `env` set (and
    /// `COLUMNS`, `NO_COLOR`, `CLICOLOR_FORCE` removed unless `env` sets them).
    pub fn run(dir: &Path, args: &[&str], cols: u16, rows: u16, env: &[(&str, &str)]) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_milo"));
        cmd.args(args);
        cmd.cwd(dir);
        cmd.env("TERM", "xterm-256color");
        for var in ["COLUMNS", "NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR", "MILO_LOG"] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = pair.slave.spawn_command(cmd).expect("spawn milo in the pty");
        // Only the child holds the slave now: reads end when it exits.
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let collect = std::thread::spawn(move || {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break raw,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let code = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status.exit_code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("milo {args:?} did not end within {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(pair.master);
        let raw = collect.join().expect("the reader thread");
        let mut screen = vt100::Parser::new(rows, cols, 0);
        screen.process(&raw);
        Pty { raw, screen, code }
    }

    /// The screen's rows, trailing spaces trimmed.
    pub fn rows(&self) -> Vec<String> {
        let (_, cols) = self.screen.screen().size();
        self.screen
            .screen()
            .rows(0, cols)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// The screen, numbered, plus the tail of the raw bytes, for failure messages.
    pub fn dump(&self) -> String {
        let rows: String = self
            .rows()
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{i:>2}|{r}\n"))
            .collect();
        let tail = &self.raw[self.raw.len().saturating_sub(3000)..];
        format!(
            "exit {}\n{rows}raw tail: {:?}",
            self.code,
            String::from_utf8_lossy(tail)
        )
    }

    /// Whether the raw bytes hold `needle`.
    pub fn wrote(&self, needle: &[u8]) -> bool {
        self.raw.windows(needle.len()).any(|w| w == needle)
    }
}

/// `milo args…` in a `from`-sized terminal that is resized to `to` (the kernel sends milo
/// SIGWINCH) once milo has written `marker`; returns everything written, and how much of it
/// had been written when the terminal was resized.
pub fn run_resized(dir: &Path, args: &[&str], from: (u16, u16), marker: &[u8], to: (u16, u16)) -> (Vec<u8>, usize) {
    use std::sync::{Arc, Mutex};
    let size = |(cols, rows): (u16, u16)| PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    };
    let pair = native_pty_system().openpty(size(from)).expect("open a pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_milo"));
    cmd.args(args);
    cmd.cwd(dir);
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("COLUMNS");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn milo in the pty");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let raw = Arc::new(Mutex::new(Vec::new()));
    let collect = std::thread::spawn({
        let raw = raw.clone();
        move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                raw.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let written = |raw: &Mutex<Vec<u8>>| raw.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let resized_at = loop {
        let now = written(&raw);
        if now.windows(marker.len()).any(|w| w == marker) {
            pair.master.resize(size(to)).expect("resize the pty");
            break now.len();
        }
        assert!(Instant::now() < deadline, "milo never wrote {marker:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("milo {args:?} did not end within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(pair.master);
    collect.join().expect("the reader thread");
    (written(&raw), resized_at)
}

/// `milo args…` running in a pseudo-terminal that a test types into while it runs.
pub struct Live {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    writer: Box<dyn std::io::Write + Send>,
    raw: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    cols: u16,
    rows: u16,
}

impl Live {
    /// Starts `milo args…` in `dir`, in a `cols`×`rows` terminal, with `NO_COLOR` set.
    pub fn start(dir: &Path, args: &[&str], cols: u16, rows: u16) -> Live {
        use std::sync::{Arc, Mutex};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_milo"));
        cmd.args(args);
        cmd.cwd(dir);
        cmd.env("TERM", "xterm-256color");
        cmd.env("NO_COLOR", "1");
        for var in ["COLUMNS", "CLICOLOR_FORCE", "CLICOLOR", "MILO_LOG"] {
            cmd.env_remove(var);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn milo in the pty");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = pair.master.take_writer().expect("pty writer");
        let raw = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let raw = raw.clone();
            move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    raw.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            }
        });
        Live {
            child,
            master: pair.master,
            writer,
            raw,
            cols,
            rows,
        }
    }

    /// Everything written to the terminal so far.
    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The terminal's screen now, one string a row, trailing spaces trimmed.
    pub fn rows(&self) -> Vec<String> {
        let mut screen = vt100::Parser::new(self.rows, self.cols, 0);
        screen.process(&self.raw());
        screen
            .screen()
            .rows(0, self.cols)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// The screen, numbered, and the raw tail, for failure messages.
    pub fn dump(&self) -> String {
        let rows: String = self
            .rows()
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{i:>2}|{r}\n"))
            .collect();
        let raw = self.raw();
        let tail = &raw[raw.len().saturating_sub(3000)..];
        format!("{rows}raw tail: {:?}", String::from_utf8_lossy(tail))
    }

    /// Waits until `needle` has been written `n` times or `limit` passes.
    pub fn wait_for(&self, needle: &[u8], n: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.raw().windows(needle.len()).filter(|w| *w == needle).count() >= n {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `bytes` (as they are: no newline is added).
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.writer.write_all(bytes).expect("write to the pty");
        self.writer.flush().expect("flush the pty");
    }

    /// Waits up to `limit` for milo to exit: its exit code, or `None` if it is still running.
    pub fn exit_within(&mut self, limit: Duration) -> Option<u32> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.exit_code());
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pty's local and output mode flags now (as milo left them, once it exited).
    pub fn modes(&self) -> Option<(libc::tcflag_t, libc::tcflag_t)> {
        let t = self.master.get_termios()?;
        Some((t.local_flags.bits(), t.output_flags.bits()))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
