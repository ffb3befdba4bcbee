//! [`CheckedLines`]: the newline-delimited JSON-RPC transport of `milo mcp`, which answers
//! what rmcp's own line transport drops or misfiles: a line that is not JSON (malformed, NUL
//! bytes, invalid UTF-8) gets `-32700` (parse error), JSON that is no JSON-RPC message gets
//! `-32600` (invalid request), and a known method with parameters of the wrong shape gets
//! `-32602` (invalid params) instead of rmcp's `-32601` (method not found).

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, CompleteRequest, ConstString, DiscoverRequest,
    GetPromptRequest, InitializeRequest, JsonRpcRequest, ListPromptsRequest, ListResourceTemplatesRequest,
    ListResourcesRequest, ListToolsRequest, PingRequest, ReadResourceRequest, SubscriptionsListenRequest,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// The longest line read; a longer one is skipped and answered with a parse error.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// JSON-RPC 2.0 error codes.
const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
const INVALID_PARAMS: i32 = -32602;

/// A transport over a byte reader and writer, one JSON-RPC message per line, that answers
/// unparsable and malformed input itself (see the module docs).
pub struct CheckedLines<R, W> {
    reader: BufReader<R>,
    writer: Arc<Mutex<W>>,
}

impl<R, W> CheckedLines<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A transport reading `reader` and writing `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            reader: BufReader::new(reader),
            writer: Arc::new(Mutex::new(writer)),
        }
    }

    /// Reads one line (without its newline) into `line`; `false` at the end of the input.
    /// A line longer than [`MAX_LINE_BYTES`] is discarded up to its newline and `too_long`
    /// set.
    async fn read_line(&mut self, line: &mut Vec<u8>, too_long: &mut bool) -> std::io::Result<bool> {
        line.clear();
        *too_long = false;
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok(!line.is_empty() || *too_long);
            }
            let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            if !*too_long {
                if line.len() + chunk.len() > MAX_LINE_BYTES {
                    *too_long = true;
                    line.clear();
                } else {
                    line.extend_from_slice(chunk);
                }
            }
            let used = done.unwrap_or(buf.len());
            self.reader.consume(used);
            if done.is_some() {
                return Ok(true);
            }
        }
    }

    async fn reply(&mut self, reply: Value) {
        if let Err(e) = write_line(&self.writer, &reply).await {
            tracing::warn!("could not answer a malformed MCP message: {e}");
        }
    }
}

async fn write_line<W: AsyncWrite + Unpin>(writer: &Mutex<W>, message: &impl serde::Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message)?;
    bytes.push(b'\n');
    let mut writer = writer.lock().await;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

fn error_reply(id: Value, code: i32, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The `id` of a request-shaped value, when it is a valid JSON-RPC id.
fn request_id(value: &Value) -> Value {
    match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

/// What to do with one line.
enum Verdict {
    /// Hand the message to the server.
    Message(Box<ClientJsonRpcMessage>),
    /// Answer with this error.
    Reply(Value),
    /// A notification or response that cannot be used: there is nobody to answer.
    Drop(String),
}

/// Why a typed request did not parse, when `method` is one rmcp knows but `value` is not a
/// valid request of it.
#[allow(deprecated)] // Older clients still send the legacy methods; they are served.
fn invalid_params(method: &str, value: &Value) -> Option<String> {
    fn check<T: DeserializeOwned>(value: &Value) -> Option<String> {
        let mut request = value.clone();
        if let Some(fields) = request.as_object_mut() {
            fields.remove("jsonrpc");
            fields.remove("id");
        }
        serde_json::from_value::<T>(request).err().map(|e| e.to_string())
    }
    macro_rules! known {
        ($($request:ident => $method:ty),* $(,)?) => {
            $(if method == <$method>::VALUE { return check::<$request>(value); })*
        };
    }
    use rmcp::model::{
        CallToolRequestMethod, CompleteRequestMethod, DiscoverRequestMethod, GetPromptRequestMethod,
        InitializeResultMethod, ListPromptsRequestMethod, ListResourceTemplatesRequestMethod,
        ListResourcesRequestMethod, ListToolsRequestMethod, PingRequestMethod, ReadResourceRequestMethod,
        SetLevelRequestMethod, SubscribeRequestMethod, SubscriptionsListenRequestMethod, UnsubscribeRequestMethod,
    };
    use rmcp::model::{SetLevelRequest, SubscribeRequest, UnsubscribeRequest};
    known!(
        InitializeRequest => InitializeResultMethod,
        PingRequest => PingRequestMethod,
        DiscoverRequest => DiscoverRequestMethod,
        CompleteRequest => CompleteRequestMethod,
        SetLevelRequest => SetLevelRequestMethod,
        GetPromptRequest => GetPromptRequestMethod,
        ListPromptsRequest => ListPromptsRequestMethod,
        ListResourcesRequest => ListResourcesRequestMethod,
        ListResourceTemplatesRequest => ListResourceTemplatesRequestMethod,
        ReadResourceRequest => ReadResourceRequestMethod,
        SubscriptionsListenRequest => SubscriptionsListenRequestMethod,
        SubscribeRequest => SubscribeRequestMethod,
        UnsubscribeRequest => UnsubscribeRequestMethod,
        CallToolRequest => CallToolRequestMethod,
        ListToolsRequest => ListToolsRequestMethod,
    );
    None
}

fn judge(line: &[u8]) -> Verdict {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let why = if std::str::from_utf8(line).is_err() {
                "the line is not valid UTF-8".to_owned()
            } else if line.contains(&0) {
                "the line contains a NUL byte".to_owned()
            } else {
                format!("the line is not valid JSON ({e})")
            };
            return Verdict::Reply(error_reply(
                Value::Null,
                PARSE_ERROR,
                format!("Parse error: {why}; send one JSON-RPC message per line"),
            ));
        }
    };
    if value.is_array() {
        return Verdict::Reply(error_reply(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches are not supported by MCP; send one message per line".into(),
        ));
    }
    let id = request_id(&value);
    let is_request = value.get("method").is_some() && value.get("id").is_some();
    match serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        Ok(ClientJsonRpcMessage::Request(JsonRpcRequest {
            request: ClientRequest::CustomRequest(custom),
            ..
        })) if let Some(why) = invalid_params(&custom.method, &value) => Verdict::Reply(error_reply(
            id,
            INVALID_PARAMS,
            format!("Invalid params for `{}`: {why}", custom.method),
        )),
        Ok(message) => Verdict::Message(Box::new(message)),
        Err(e) if is_request || value.get("method").is_none() && value.get("id").is_some() && !is_response(&value) => {
            Verdict::Reply(error_reply(
                id,
                INVALID_REQUEST,
                format!("Invalid Request: not a JSON-RPC 2.0 request ({e})"),
            ))
        }
        Err(e) if value.get("method").is_some() => Verdict::Drop(format!("an invalid notification ({e})")),
        Err(e) if is_response(&value) => Verdict::Drop(format!("an invalid response ({e})")),
        Err(e) => Verdict::Reply(error_reply(
            id,
            INVALID_REQUEST,
            format!("Invalid Request: not a JSON-RPC 2.0 message ({e})"),
        )),
    }
}

fn is_response(value: &Value) -> bool {
    value.get("result").is_some() || value.get("error").is_some()
}

impl<R, W> Transport<RoleServer> for CheckedLines<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = self.writer.clone();
        async move { write_line(&writer, &item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            match self.read_line(&mut line, &mut too_long).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    tracing::error!("could not read the MCP client's input: {e}");
                    return None;
                }
            }
            if too_long {
                self.reply(error_reply(
                    Value::Null,
                    PARSE_ERROR,
                    format!("Parse error: the line is longer than {MAX_LINE_BYTES} bytes"),
                ))
                .await;
                continue;
            }
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            match judge(trimmed) {
                Verdict::Message(message) => return Some(*message),
                Verdict::Reply(reply) => {
                    tracing::debug!(%reply, "answered a malformed MCP message");
                    self.reply(reply).await;
                }
                Verdict::Drop(what) => tracing::warn!("ignored {what} from the MCP client"),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.writer.lock().await.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(v: &Verdict) -> Option<i64> {
        match v {
            Verdict::Reply(r) => r["error"]["code"].as_i64(),
            _ => None,
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(code(&judge(b"{nope")), Some(-32700));
        assert_eq!(code(&judge(b"\xff\xfe")), Some(-32700));
        assert_eq!(code(&judge(b"{\"a\":\0}")), Some(-32700));
        assert_eq!(code(&judge(b"[]")), Some(-32600));
        assert_eq!(code(&judge(b"3")), Some(-32600));
        let bad = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":42}}"#;
        let v = judge(bad);
        assert_eq!(code(&v), Some(-32602));
        let Verdict::Reply(r) = v else { unreachable!() };
        assert_eq!(r["id"], 4);
        let ok = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x"}}"#;
        assert!(matches!(judge(ok), Verdict::Message(_)));
        let custom = br#"{"jsonrpc":"2.0","id":4,"method":"deploy/now","params":{}}"#;
        assert!(matches!(judge(custom), Verdict::Message(_)));
    }
}
