//! `tls_listen`: the binary serving wss:// beside ws://, certificates from
//! PEM files made at test time, chosen by SNI, reloaded on SIGHUP while
//! connections stay open.

mod common;

use common::{pki::*, *};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    sync::Arc,
};
use tokio::net::TcpStream;
use tokio_rustls::{client::TlsStream, TlsConnector};
use tokio_tungstenite::{tungstenite::Message, WebSocketStream};

/// The TLS listener's address, from the log.
fn tls_addr(server: &Server) -> SocketAddr {
    let line = server.wait_logged("listening on wss://", 1).remove(0);
    let rest = line.split("listening on wss://").nth(1).expect("address");
    rest.split_whitespace()
        .next()
        .expect("address")
        .parse()
        .expect("socket address")
}

fn start(certs: &[(PathBuf, PathBuf)]) -> (Server, SocketAddr) {
    let mut args = vec!["--tls-listen".to_string(), "127.0.0.1:0".to_string()];
    for (cert, key) in certs {
        args.push("--tls-cert".into());
        args.push(cert.display().to_string());
        args.push("--tls-key".into());
        args.push(key.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let addr = tls_addr(&server);
    (server, addr)
}

async fn tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("name");
    TlsConnector::from(config).connect(name, tcp).await
}

async fn wss(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> WebSocketStream<TlsStream<TcpStream>> {
    let stream = tokio::time::timeout(WAIT, tls(addr, config, name))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
    let url = format!("wss://{name}/echo");
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, stream))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    ws
}

async fn echo(ws: &mut WebSocketStream<TlsStream<TcpStream>>, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let got = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("no error");
    assert_eq!(got, Message::text(text));
}

/// `/metrics` over the plain listener.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("read");
    page.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn wss_beside_ws_with_the_certificate_for_each_sni_name() {
    let dir = temp_dir("sni");
    let ca = Ca::new("test CA");
    let a = ca.issue(&["a.test"], &dir, "a");
    let b = ca.issue(&["b.test", "*.b.test"], &dir, "b");
    let (server, addr) = start(&[a, b]);

    // Each name gets the certificate valid for it (the client checks).
    for name in ["a.test", "b.test", "www.b.test"] {
        let mut ws = wss(addr, client(&ca), name).await;
        echo(&mut ws, &format!("hello {name}")).await;
        ws.close(None).await.expect("close");
    }
    // ws:// on the plain listener is still served.
    let (mut plain, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", server.addr))
        .await
        .expect("plain upgrade");
    plain.send(Message::text("plain")).await.expect("send");
    assert_eq!(
        plain.next().await.expect("open").expect("ok"),
        Message::text("plain")
    );

    // A name no certificate has is refused with an alert, and counted.
    let refused = tls(addr, client(&ca), "c.test").await;
    assert!(refused.is_err(), "unknown SNI refused");
    let failures = (0..100)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            metric(server.addr, "uringws_tls_failures_total")
        })
        .find(|&n| n >= 1);
    assert_eq!(failures, Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sighup_reloads_the_certificates_and_open_connections_stay() {
    let dir = temp_dir("reload");
    let old_ca = Ca::new("old CA");
    let files = old_ca.issue(&["localhost"], &dir, "server");
    let (server, addr) = start(std::slice::from_ref(&files));
    let mut open = wss(addr, client(&old_ca), "localhost").await;
    echo(&mut open, "before").await;

    // New files in place, then SIGHUP.
    let new_ca = Ca::new("new CA");
    let fresh = new_ca.issue(&["localhost"], &dir, "fresh");
    std::fs::rename(&fresh.0, &files.0).expect("replace cert");
    std::fs::rename(&fresh.1, &files.1).expect("replace key");
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(hup.success());
    server.wait_logged("TLS certificates reloaded", 1);

    // New handshakes get the new certificate, the old one is gone...
    let mut renewed = wss(addr, client(&new_ca), "localhost").await;
    echo(&mut renewed, "after").await;
    assert!(tls(addr, client(&old_ca), "localhost").await.is_err());
    // ...and the connection opened before goes on.
    echo(&mut open, "still open").await;

    // A broken file on the next SIGHUP keeps the certificates in use.
    std::fs::write(&files.0, "not a certificate").expect("break cert");
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(hup.success());
    server.wait_logged("TLS certificates not reloaded", 1);
    let mut again = wss(addr, client(&new_ca), "localhost").await;
    echo(&mut again, "kept").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_or_mismatched_key_is_refused_at_start() {
    let dir = temp_dir("start");
    let ca = Ca::new("test CA");
    let (cert, _) = ca.issue(&["localhost"], &dir, "one");
    let (_, other_key) = ca.issue(&["localhost"], &dir, "two");
    for (args, expected) in [
        (
            vec!["--tls-listen", "127.0.0.1:0"],
            "tls_listen needs tls_cert",
        ),
        (
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert.to_str().unwrap(),
            ],
            "as many files",
        ),
        (
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                other_key.to_str().unwrap(),
            ],
            "tls_key",
        ),
        (
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.key",
            ],
            "/nonexistent.pem",
        ),
    ] {
        let output = Command::new(binary())
            .args(["--listen", "127.0.0.1:0", "--workers", "1", "--no-pin"])
            .args(&args)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
