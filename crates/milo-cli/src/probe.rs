//! The readiness probes of service phases that need the network or a process (`ready = {
//! http = … }`, `{ tcp = … }`, `{ cmd = … }`), as the core's [`Probe`] trait; `log` and a
//! service without `ready` are the core's own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use milo::executor::{CommandSpec, LocalExecutor, run_command};
use milo::pipeline::{Probe, Ready, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::config::{ReadyDef, ServiceDef};

/// How long one try may take.
const TRY: Duration = Duration::from_secs(2);

/// The core's [`Service`] for a service phase of the file; `cmd` runs in `cwd` with `env`.
pub fn service(def: &ServiceDef, cwd: PathBuf, env: Vec<(String, String)>) -> Service {
    let ready = match &def.ready {
        ReadyDef::Started => Ready::Started,
        ReadyDef::Log(text) => Ready::Log(text.clone()),
        ReadyDef::Tcp(addr) => Ready::Probe(Arc::new(Tcp(addr.clone()))),
        ReadyDef::Http(url) => Ready::Probe(Arc::new(Http(url.clone()))),
        ReadyDef::Cmd(command) => Ready::Probe(Arc::new(Cmd {
            command: command.clone(),
            cwd,
            env,
        })),
    };
    Service::new(ready).timeout(def.timeout)
}

/// Ready when a TCP connection to the address is accepted.
#[derive(Debug)]
struct Tcp(String);

impl Probe for Tcp {
    fn describe(&self) -> String {
        format!("tcp {}", self.0)
    }

    fn check(&self) -> BoxFuture<'static, Result<(), String>> {
        let addr = self.0.clone();
        async move {
            match tokio::time::timeout(TRY, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}", milo::format_duration(TRY))),
            }
        }
        .boxed()
    }
}

/// Ready when a GET of the URL is answered with a 2xx or 3xx status (plain HTTP/1.1 over
/// TCP; no TLS).
#[derive(Debug)]
struct Http(String);

impl Http {
    /// `(host:port, host, path)` of an `http://` URL.
    fn parts(&self) -> (String, String, String) {
        let rest = self.0.strip_prefix("http://").unwrap_or(&self.0);
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        (addr, authority.to_owned(), path)
    }
}

impl Probe for Http {
    fn describe(&self) -> String {
        format!("http {}", self.0)
    }

    fn check(&self) -> BoxFuture<'static, Result<(), String>> {
        let (addr, host, path) = self.parts();
        async move {
            let get = async {
                let mut stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
                let request =
                    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: milo\r\n\r\n");
                stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                // The status line is all that is read.
                let mut head = Vec::with_capacity(64);
                let mut buf = [0u8; 256];
                while !head.contains(&b'\n') && head.len() < 4096 {
                    let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let line = String::from_utf8_lossy(&head);
                let line = line.lines().next().unwrap_or("").trim().to_owned();
                let status = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
                match status {
                    Some(code) if (200..400).contains(&code) => Ok(()),
                    Some(_) => Err(format!("answered {line:?}")),
                    None if line.is_empty() => Err("closed the connection without an answer".to_owned()),
                    None => Err(format!("answered {line:?}, which is not HTTP")),
                }
            };
            match tokio::time::timeout(TRY, get).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}", milo::format_duration(TRY))),
            }
        }
        .boxed()
    }
}

/// Ready when the command exits with status 0.
#[derive(Debug)]
struct Cmd {
    command: String,
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

impl Probe for Cmd {
    fn describe(&self) -> String {
        format!("cmd `{}`", self.command)
    }

    fn check(&self) -> BoxFuture<'static, Result<(), String>> {
        let mut spec = CommandSpec::new(self.command.clone());
        spec.cwd = Some(self.cwd.clone());
        spec.env = self.env.clone();
        async move {
            let cancel = CancellationToken::new();
            let ignore = |_, _| {};
            let run = run_command(&LocalExecutor, &spec, &ignore, &cancel, Duration::from_millis(500));
            tokio::pin!(run);
            // A try that hangs is cancelled (its group is killed) and counts as a failure.
            tokio::select! {
                r = &mut run => r.map_err(|e| e.to_string()),
                _ = tokio::time::sleep(TRY * 5) => {
                    cancel.cancel();
                    let _ = run.await;
                    Err(format!("it did not end within {}", milo::format_duration(TRY * 5)))
                }
            }
        }
        .boxed()
    }
}
