//! tokio-websockets echo server: every text and binary message back as it
//! came; the library answers pings and closes itself.

use futures_util::{SinkExt, StreamExt};
use mimalloc::MiMalloc;
use std::process::ExitCode;
use tokio::net::TcpStream;
use tokio_websockets::{CloseCode, Config, Limits, Message, ServerBuilder};
use uringws_peers::{is_echo_path, MAX_MESSAGE};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

async fn connection(stream: TcpStream) {
    let server = ServerBuilder::new()
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        // Outgoing messages are split into frames of this size (4 MiB by
        // default); one frame per message, as the other servers send.
        .config(Config::default().frame_size(MAX_MESSAGE));
    let Ok((request, mut ws)) = server.accept(stream).await else {
        return;
    };
    // The library has answered 101 by now, so another path cannot get a
    // 404 as from uringws: close it with 1008 instead.
    if !is_echo_path(request.uri().path()) {
        let _ = ws
            .send(Message::close(
                Some(CloseCode::POLICY_VIOLATION),
                "not found",
            ))
            .await;
        return;
    }
    // The stream ends once the close handshake is done or the connection
    // failed.
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

fn main() -> ExitCode {
    uringws_peers::serve(connection)
}
