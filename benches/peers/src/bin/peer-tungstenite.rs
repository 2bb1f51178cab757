//! tokio-tungstenite echo server: every text and binary message back as it
//! came; tungstenite itself answers pings and closes.

use futures_util::{SinkExt, StreamExt};
use mimalloc::MiMalloc;
use std::process::ExitCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::StatusCode,
    protocol::WebSocketConfig,
    Message,
};
use uringws_peers::{is_echo_path, MAX_FRAME, MAX_MESSAGE};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Answers 404 outside the echo paths, as uringws does.
// The signature is tungstenite's `Callback`; the large error is its type.
#[allow(clippy::result_large_err)]
fn route(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if is_echo_path(request.uri().path()) {
        return Ok(response);
    }
    let mut not_found = ErrorResponse::new(Some("not found".into()));
    *not_found.status_mut() = StatusCode::NOT_FOUND;
    Err(not_found)
}

async fn connection(stream: TcpStream) {
    // Buffer sizes stay at the library's defaults; only the limits are set,
    // to uringws's.
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_FRAME));
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, route, Some(config)).await
    else {
        return;
    };
    // Reading flushes the queued pong or close reply; the stream ends once
    // the close handshake is done or the connection failed.
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(_) | Message::Binary(_) = message {
            if ws.send(message).await.is_err() {
                return;
            }
        }
    }
}

fn main() -> ExitCode {
    uringws_peers::serve(connection)
}
