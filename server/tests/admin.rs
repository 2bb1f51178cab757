//! `/health` and `/metrics` on the main listener or, with `admin_listen`,
//! on their own; `/health` turns 503 as soon as a shutdown begins.

mod common;

use common::{Server, WAIT};
use serde_json::Value;
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(WAIT))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let status = response[9..12].parse().expect("a status");
    let body = response
        .split_once("\r\n\r\n")
        .expect("a head")
        .1
        .to_owned();
    Ok((status, body))
}

fn admin_addr(server: &Server) -> SocketAddr {
    let started = Instant::now();
    let line = loop {
        // Logged just after the address the helper waits for.
        if let Some(line) = server.logged("admin listener on http://").pop() {
            break line;
        }
        assert!(started.elapsed() < WAIT, "no admin listener logged");
        std::thread::sleep(Duration::from_millis(10));
    };
    let rest = line.split("admin listener on http://").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// A WebSocket client that never answers: the server's close 1001 waits
/// for it until `shutdown_timeout`.
fn silent_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    s
}

#[test]
fn health_says_version_uptime_and_capacity() {
    let server = Server::start(&[]);
    let (status, body) = get(server.addr, "/health").unwrap();
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_s"].as_u64().is_some(), "{health}");
    assert_eq!(health["workers"], 2);
    assert!(health["capacity"].as_u64().unwrap() > 0, "{health}");
}

#[test]
fn with_admin_listen_health_and_metrics_move_and_health_is_503_while_draining() {
    let mut server = Server::start(&["--admin-listen", "127.0.0.1:0", "--shutdown-timeout", "3"]);
    let admin = admin_addr(&server);
    assert_eq!(get(server.addr, "/health").unwrap().0, 404);
    assert_eq!(get(server.addr, "/metrics").unwrap().0, 404);
    let (status, page) = get(admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("# TYPE uringws_connections gauge"), "{page}");
    assert_eq!(get(admin, "/health").unwrap().0, 200);
    assert_eq!(get(admin, "/nope").unwrap().0, 404);
    // Clients that send nothing, or trickle a head, do not hold up a
    // health check.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(admin).unwrap()).collect();
    let mut trickle = TcpStream::connect(admin).unwrap();
    trickle.write_all(b"GET /hea").unwrap();
    let asked = Instant::now();
    assert_eq!(get(admin, "/health").unwrap().0, 200);
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    // And are let go of at the deadline.
    let mut buf = [0u8; 1];
    trickle.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(trickle.read(&mut buf).unwrap_or(0), 0, "closed unanswered");
    drop(idle);

    let _silent = silent_client(server.addr);
    let started = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status();
    // Draining: the silent client keeps it so for up to 3 s.
    let draining = loop {
        let (status, body) = get(admin, "/health").unwrap();
        if status == 503 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "never 503");
        std::thread::sleep(Duration::from_millis(20));
    };
    let health: Value = serde_json::from_str(&draining).unwrap();
    assert_eq!(health["status"], "draining");
    let status = server.terminate();
    assert!(status.success(), "{status}");
    // The silent client held the drain to its timeout, and no longer.
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(2500) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
