//! The real `uringws` binary for integration tests, and a WebSocket
//! client's waits, each bounded.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// The bound on any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// The binary on a free port with two unpinned workers; killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uringws"))
            .args(["--listen", "127.0.0.1:0", "--workers", "2", "--no-pin"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("uringws starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("uringws printed its address")
                .expect("stdout readable");
            if let Some(rest) = line.split("listening on ws://").nth(1) {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.parse().expect("a socket address");
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn send(ws: &mut Ws, message: Message) {
    tokio::time::timeout(WAIT, ws.send(message))
        .await
        .expect("send in time")
        .expect("send");
}

/// The next text or binary message, skipping pings and pongs.
pub async fn next(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("not ended")
            .expect("no error");
        if m.is_text() || m.is_binary() {
            return m;
        }
    }
}

pub async fn next_json(ws: &mut Ws) -> Value {
    let m = next(ws).await;
    serde_json::from_str(m.to_text().expect("text")).expect("JSON")
}

/// Sends a JSON request and returns the next message, as JSON.
pub async fn request(ws: &mut Ws, request: Value) -> Value {
    send(ws, Message::text(request.to_string())).await;
    next_json(ws).await
}
