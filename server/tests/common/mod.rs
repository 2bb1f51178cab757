//! The real `uringws` binary for integration tests, and a WebSocket
//! client's waits, each bounded.

#![allow(dead_code)]

pub mod nginx;
pub mod pki;
pub mod raw;
pub mod redis;

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

/// The binary under test: this build's, or the one `TEST_URINGWS_BIN`
/// names (a release build, for measurements: the debug build's costs are
/// not the server's).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("TEST_URINGWS_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_uringws").into())
}

/// The binary on a free port with two unpinned workers; killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Every line it logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut command = Command::new(binary());
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
        command.args(["-c", &script, "sh"]).arg(binary());
        command.args(["--listen", "127.0.0.1:0", "--workers", "1", "--no-pin"]);
        Server::spawn(command.args(args))
    }

    pub fn spawn(command: &mut Command) -> Server {
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

    /// Its resident set and the peak of it so far, from /proc.
    pub fn rss(&self) -> (usize, usize) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let kib = |field: &str| -> usize {
            let line = status
                .lines()
                .find(|l| l.starts_with(field))
                .unwrap_or_else(|| panic!("{field} in /proc status"));
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (kib("VmRSS:") * 1024, kib("VmHWM:") * 1024)
    }

    /// Starts its peak resident set (VmHWM) afresh from the current one.
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("reset the server's peak RSS");
    }

    /// The CPU time it used so far, user and system.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the server's /proc stat");
        // The fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("a stat line")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on every Linux the engine runs on.
        Duration::from_millis(ticks * 10)
    }

    /// Waits (bounded) until `count` lines containing `text` were logged.
    pub fn wait_logged(&self, text: &str, count: usize) -> Vec<String> {
        let started = std::time::Instant::now();
        loop {
            let lines = self.logged(text);
            if lines.len() >= count {
                return lines;
            }
            assert!(
                started.elapsed() < WAIT,
                "{count} lines with {text:?} not logged; got {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        self.wait_exit(WAIT)
    }

    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// The exit status, if it exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// The exit status, waiting at most `limit` for it.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "uringws did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
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

/// A WebSocket on the server's `/ws`, upgraded in time.
pub async fn connect_ws(addr: SocketAddr) -> Ws {
    tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("connect in time")
    .expect("upgrade")
    .0
}

/// The next text or binary message, skipping pings and pongs.
pub async fn next<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
