//! The real `uringws` binary for integration tests, and a WebSocket
//! client's waits, each bounded.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
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
    /// Every line it logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_uringws"));
        command.args(["--listen", "127.0.0.1:0", "--workers", "2", "--no-pin"]);
        Server::spawn(command.args(args))
    }

    /// One worker, started by a shell that first sets the open-files
    /// limits (`ulimit -H`/`-S`; None leaves one as it is).
    pub fn start_with_open_files(soft: Option<u64>, hard: Option<u64>, args: &[&str]) -> Server {
        // The soft limit first: a hard one below the soft one is refused.
        let mut script = String::new();
        if let Some(soft) = soft.or(hard) {
            script += &format!("ulimit -Sn {soft} && ");
        }
        if let Some(hard) = hard {
            script += &format!("ulimit -Hn {hard} && ");
        }
        script += "exec \"$@\"";
        let mut command = Command::new("sh");
        command.args(["-c", &script, "sh", env!("CARGO_BIN_EXE_uringws")]);
        command.args(["--listen", "127.0.0.1:0", "--workers", "1", "--no-pin"]);
        Server::spawn(command.args(args))
    }

    fn spawn(command: &mut Command) -> Server {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("uringws starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines
                .next()
                .expect("uringws printed its address")
                .expect("stdout readable");
            let addr = line.split("listening on ws://").nth(1).map(|rest| {
                let addr = rest.split_whitespace().next().expect("address");
                addr.parse().expect("a socket address")
            });
            log.lock().unwrap().push(line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Server { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines logged so far that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(text)).cloned().collect()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < WAIT,
                "uringws did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
