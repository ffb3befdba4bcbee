//! `milo mcp`: the pipeline's MCP server on stdio, for AI agents (see the `milo-mcp` crate).

use crate::cli::FileArg;
use crate::error::CliError;
use crate::{build, config};

pub fn serve(args: &FileArg) -> Result<u8, CliError> {
    let file = config::load(&args.file)?;
    let pipeline = build::pipeline(&file, &[])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("could not start the async runtime: {e}")))?;
    runtime
        .block_on(milo_mcp::serve_stdio(milo_mcp::Hub::new(pipeline)))
        .map_err(|e| CliError::Internal(format!("MCP server: {e}")))?;
    Ok(0)
}
