//! fastwebsockets echo server. Its server handshake is the `upgrade`
//! feature on hyper 1, as in its own echo example: hyper reads the HTTP
//! request, then the upgraded stream is handed to a WebSocket task.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::{
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use mimalloc::MiMalloc;
use std::process::ExitCode;
use tokio::net::TcpStream;
use uringws_peers::{is_echo_path, MAX_MESSAGE};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

async fn echo(upgraded: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = upgraded.await?;
    // Both are on by default; set so the echo does not depend on that.
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    // The library checks frames against this; uringws's message limit.
    ws.set_max_message_size(MAX_MESSAGE);
    // Without the collector fragments would come back as separate frames;
    // with it every message is echoed whole, as the other servers do.
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // The reply to the close was already sent by auto-close.
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade(mut request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    if !is_echo_path(request.uri().path()) || !upgrade::is_upgrade_request(&request) {
        let mut not_found = Response::new(Empty::new());
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return Ok(not_found);
    }
    let (response, upgraded) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        // Errors are the peer's protocol violations or a reset: the
        // connection just ends.
        let _ = echo(upgraded).await;
    });
    Ok(response)
}

async fn connection(stream: TcpStream) {
    // The HTTP task ends once the connection is upgraded; the WebSocket task
    // spawned above carries on, so there is still one task per connection.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(upgrade))
        .with_upgrades()
        .await;
}

fn main() -> ExitCode {
    uringws_peers::serve(connection)
}
