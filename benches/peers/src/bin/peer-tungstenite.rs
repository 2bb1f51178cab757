//! tokio-tungstenite echo server: every text and binary message back as it
//! came; tungstenite itself answers pings and closes.

use mimalloc::MiMalloc;
use std::process::ExitCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::StatusCode,
};
use uringws_peers::{is_echo_path, tungstenite_config, tungstenite_echo};

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
    let config = Some(tungstenite_config());
    if let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, route, config).await {
        tungstenite_echo(ws).await;
    }
}

fn main() -> ExitCode {
    uringws_peers::serve(connection)
}
