//! Fuzzes the MCP server's request handling in process: the input is sent as one message
//! (newline-delimited JSON-RPC, the stdio framing) to `milo_mcp::serve_transport` through
//! `milo mcp`'s line reader (`milo_mcp::CheckedLines`) over a duplex pipe, after a valid `initialize` handshake unless the first byte is odd. The server
//! must answer or ignore it, never panic, and end when the client hangs up.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use milo::pipeline::{Phase, PhaseContext, Pipeline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INITIALIZE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","#,
    r#""capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n"
);

fn pipeline() -> Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE
        .get_or_init(|| {
            let noop = |_: PhaseContext| async { Ok::<_, String>(1) };
            Pipeline::new(
                "fuzz",
                [
                    Phase::new_async("a", noop),
                    Phase::new_async("b", noop).depends_on(["a"]).parallel(true),
                ],
            )
            .expect("valid pipeline")
            .capture_output(true)
        })
        .clone()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let handshake = data.first().is_none_or(|b| b % 2 == 0);
    let body = data.get(1..).unwrap_or_default();
    runtime().block_on(async {
        let hub = milo_mcp::Hub::new(pipeline());
        let (server_io, mut client_io) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_io);
        let transport = milo_mcp::CheckedLines::new(server_read, server_write);
        let server = tokio::spawn(milo_mcp::serve_transport(Arc::clone(&hub), transport));
        let mut input = Vec::with_capacity(INITIALIZE.len() + body.len() + 1);
        if handshake {
            input.extend_from_slice(INITIALIZE.as_bytes());
        }
        input.extend_from_slice(body);
        input.push(b'\n');
        let exchange = async {
            client_io.write_all(&input).await?;
            // Give the server a moment to answer before hanging up.
            tokio::time::sleep(Duration::from_millis(1)).await;
            client_io.shutdown().await?;
            let mut out = Vec::new();
            client_io.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), exchange).await;
        drop(client_io);
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(_)) => {}
            Err(_) => panic!("the MCP server did not end within 5 s after the client hung up"),
        }
        if let Some(run) = hub.current() {
            // A run started by `run_pipeline` ends by itself.
            let _ = hub.cancel_run();
            let _ = run;
        }
    });
});
