//! Behind a proxy: Debian's nginx terminating TLS in front of two nodes
//! (the README's snippet), `trusted_proxies` with `X-Forwarded-For`, and
//! PROXY protocol v2 headers over ws:// and wss://.

mod common;

use common::{nginx::Nginx, pki::*, raw, redis::Redis, Server, WAIT};
use futures_util::SinkExt;
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use std::{
    io::Write,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::{client::TlsStream, TlsConnector};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    WebSocketStream,
};

type Wss = WebSocketStream<TlsStream<TcpStream>>;

fn certificate(name: &str) -> (Ca, PathBuf, PathBuf) {
    let ca = Ca::new("uringws proxy test CA");
    let (cert, key) = ca.issue(&["localhost"], &temp_dir(name), "nginx");
    (ca, cert, key)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// TLS to `addr` from `source`, maybe after `before` (a PROXY header).
async fn tls_from(
    source: IpAddr,
    addr: SocketAddr,
    ca: &Ca,
    before: &[u8],
) -> TlsStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut tcp = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, before)
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, TlsConnector::from(client(ca)).connect(name, tcp))
        .await
        .expect("TLS in time")
        .expect("TLS")
}

/// A wss:// upgrade on `path`: the connection, or the refusal's status.
async fn wss(
    stream: TlsStream<TcpStream>,
    path: &str,
    forwarded: Option<&str>,
) -> Result<Wss, u16> {
    let mut request = format!("wss://localhost{path}")
        .into_client_request()
        .unwrap();
    if let Some(xff) = forwarded {
        request
            .headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("an answer in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("upgrade: {e}"),
    }
}

async fn next_text(ws: &mut Wss) -> String {
    common::next(ws)
        .await
        .into_text()
        .expect("text")
        .to_string()
}

async fn ask(ws: &mut Wss, request: Value) {
    ws.send(Message::text(request.to_string())).await.unwrap();
    let ack: Value = serde_json::from_str(&next_text(ws).await).unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
}

fn connections(addr: SocketAddr) -> u64 {
    raw::open_connections(addr)
}

#[tokio::test]
async fn nginx_terminating_tls_in_front_of_two_nodes_serves_them_as_one() {
    let redis = Redis::start();
    let url = redis.url();
    let args = [
        "--bus",
        &url,
        "--trusted-proxies",
        "127.0.0.1",
        "--anonymous-publish",
    ];
    let (a, b) = (Server::start(&args), Server::start(&args));
    let (ca, cert, key) = certificate("two-nodes");
    let nginx = Nginx::start(&[a.addr, b.addr], &cert, &key);
    let mut subscribers = Vec::new();
    for _ in 0..4 {
        let stream = tls_from(ip("127.0.0.1"), nginx.addr, &ca, b"").await;
        let mut ws = wss(stream, "/ws", None)
            .await
            .expect("upgraded through nginx");
        ask(&mut ws, json!({"type":"subscribe","topic":"t","id":1})).await;
        subscribers.push(ws);
    }
    // nginx took turns: each node holds some.
    assert_eq!((connections(a.addr), connections(b.addr)), (2, 2));
    let started = Instant::now();
    while redis.cli(&["PUBSUB", "NUMSUB", "uringws:t"]).lines().nth(1) != Some("2") {
        assert!(started.elapsed() < WAIT, "both nodes never subscribed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stream = tls_from(ip("127.0.0.1"), nginx.addr, &ca, b"").await;
    let mut publisher = wss(stream, "/ws", None).await.unwrap();
    ask(
        &mut publisher,
        json!({"type":"publish","topic":"t","data":"through nginx","id":2}),
    )
    .await;
    for ws in subscribers.iter_mut() {
        let m: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        assert_eq!(m["data"], "through nginx");
    }
    // Echo through it too.
    let stream = tls_from(ip("127.0.0.1"), nginx.addr, &ca, b"").await;
    let mut echo = wss(stream, "/echo", None).await.unwrap();
    echo.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_text(&mut echo).await, "hello");
}

#[tokio::test]
async fn behind_nginx_per_ip_limits_see_the_client_and_a_forged_header_does_not_help() {
    let (ca, cert, key) = certificate("per-ip");
    let trusting = Server::start(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--max-connections-per-ip",
        "1",
    ]);
    let nginx = Nginx::start(&[trusting.addr], &cert, &key);
    let connect = |source: &'static str, forged: Option<&'static str>| {
        let (ca, addr) = (&ca, nginx.addr);
        async move {
            let stream = tls_from(ip(source), addr, ca, b"").await;
            wss(stream, "/echo", forged).await
        }
    };
    let _first = connect("127.0.0.20", None)
        .await
        .expect("the first from .20");
    assert_eq!(connect("127.0.0.20", None).await.err(), Some(429));
    let _other = connect("127.0.0.21", None)
        .await
        .expect("the first from .21");
    // What a client writes in the header is to the left of what nginx
    // appends: the rightmost untrusted hop is still the client.
    assert_eq!(
        connect("127.0.0.20", Some("198.51.100.1")).await.err(),
        Some(429)
    );
    let refused = trusting.wait_logged("too many connections from this address", 1);
    assert!(refused[0].contains("peer=127.0.0.20:0"), "{refused:?}");

    // Not trusting nginx: every client is nginx's address.
    let plain = Server::start(&["--max-connections-per-ip", "1"]);
    let nginx = Nginx::start(&[plain.addr], &cert, &key);
    let stream = tls_from(ip("127.0.0.20"), nginx.addr, &ca, b"").await;
    let _one = wss(stream, "/echo", None).await.expect("the first");
    let stream = tls_from(ip("127.0.0.21"), nginx.addr, &ca, b"").await;
    assert_eq!(wss(stream, "/echo", None).await.err(), Some(429));
}

/// A PROXY protocol v2 header: TCP over IPv4 from `source` to 10.0.0.1:443.
fn proxy_v2(source: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(source) = source else {
        panic!("IPv4 only here");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&source.ip().octets());
    h.extend_from_slice(&[10, 0, 0, 1]);
    h.extend_from_slice(&source.port().to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

/// A plain upgrade after `before`: the status.
fn upgrade_after(addr: SocketAddr, before: &[u8]) -> (u16, std::net::TcpStream) {
    let mut stream = raw::tcp(addr);
    stream.write_all(before).unwrap();
    stream
        .write_all(raw::upgrade_request("/echo").as_bytes())
        .unwrap();
    let (status, ..) = raw::read_head(&mut stream).expect("an answer");
    (status, stream)
}

fn tls_addr(server: &Server) -> SocketAddr {
    let line = server.wait_logged("listening on wss://", 1).remove(0);
    line.split("listening on wss://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn proxy_v2_headers_from_a_trusted_peer_name_the_client_on_ws_and_wss() {
    let (ca, cert, key) = certificate("proxy-v2");
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--max-connections-per-ip",
        "1",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
    ]);
    let one: SocketAddr = "203.0.113.5:4000".parse().unwrap();
    let two: SocketAddr = "203.0.113.6:4000".parse().unwrap();
    let (status, _held) = upgrade_after(server.addr, &proxy_v2(one));
    assert_eq!(status, 101);
    // Same client behind the proxy: over its limit, on either listener.
    assert_eq!(upgrade_after(server.addr, &proxy_v2(one)).0, 429);
    let wss_addr = tls_addr(&server);
    let stream = tls_from(ip("127.0.0.1"), wss_addr, &ca, &proxy_v2(one)).await;
    assert_eq!(wss(stream, "/echo", None).await.err(), Some(429));
    // Another client, over wss: the header came before the TLS handshake.
    let stream = tls_from(ip("127.0.0.1"), wss_addr, &ca, &proxy_v2(two)).await;
    let mut ws = wss(stream, "/echo", None).await.expect("a second client");
    ws.send(Message::text("via proxy v2")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "via proxy v2");
    let refused = server.wait_logged("too many connections from this address", 2);
    assert!(
        refused.iter().all(|l| l.contains("peer=203.0.113.5:4000")),
        "{refused:?}"
    );
    // No header from a trusted peer: the socket's address, as before.
    let (status, _plain) = upgrade_after(server.addr, b"");
    assert_eq!(status, 101);
    // A header that is not PROXY v2 after all.
    let mut broken = proxy_v2(two);
    broken[12] = 0x2f;
    assert_eq!(upgrade_after(server.addr, &broken).0, 400);

    // From a peer it does not trust, the header is a bad request.
    let wary = Server::start(&["--trusted-proxies", "10.0.0.0/8"]);
    assert_eq!(upgrade_after(wary.addr, &proxy_v2(one)).0, 400);
}
