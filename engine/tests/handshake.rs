//! The HTTP side: slow and oversized request heads, refused and plain
//! requests.

mod common;

use common::*;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use uringws_engine::{
    protocol::{handshake::Upgrade, http::Response},
    EngineConfig, Reject,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(300);

fn slowloris_config() -> EngineConfig {
    EngineConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        ..test_config()
    }
}

/// Asserts that the server ended the connection, without answering,
/// between `at_least` and `at_most` after `since`.
async fn assert_dropped(
    client: &mut RawClient,
    since: Instant,
    at_least: Duration,
    at_most: Duration,
) {
    let (bytes, _end) = client.read_to_end(at_most + Duration::from_secs(2)).await;
    let elapsed = since.elapsed();
    assert!(
        bytes.is_empty(),
        "no answer to an unfinished head: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(elapsed >= at_least, "dropped too early: {elapsed:?}");
    assert!(elapsed <= at_most, "dropped too late: {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_dropped_after_handshake_timeout_while_others_are_served() {
    let server = TestServer::echo(slowloris_config());
    let addr = server.addr;

    // Half a request head, then silence.
    let start = Instant::now();
    let mut stalled = RawClient::connect(addr).await;
    stalled
        .send(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websock")
        .await;

    // A trickle: a byte every 50 ms does not extend the deadline.
    let trickle = RawClient::connect(addr).await;
    let trickle_start = Instant::now();
    let trickling = tokio::spawn(async move {
        for &byte in upgrade_request("/").as_bytes() {
            if trickle.stream.try_write(&[byte]).is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if trickle_start.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        trickle
    });

    // Meanwhile a normal client connects and echoes.
    let mut ws = ws_connect(addr).await;
    for i in 0..20 {
        ws_echo(&mut ws, WsMessage::text(format!("message {i}"))).await;
    }

    assert_dropped(
        &mut stalled,
        start,
        HANDSHAKE_TIMEOUT - Duration::from_millis(50),
        Duration::from_millis(1500),
    )
    .await;
    let mut trickle = within(WAIT, "trickle", trickling).await.unwrap();
    assert_dropped(
        &mut trickle,
        trickle_start,
        HANDSHAKE_TIMEOUT - Duration::from_millis(50),
        Duration::from_millis(1500),
    )
    .await;

    // The echo client is past its handshake: the timeout is not for it.
    tokio::time::sleep(HANDSHAKE_TIMEOUT).await;
    ws_echo(&mut ws, WsMessage::text("still here")).await;
    ws_close(&mut ws).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_dropped() {
    let server = TestServer::echo(slowloris_config());
    let start = Instant::now();
    let mut silent = RawClient::connect(server.addr).await;
    assert_dropped(
        &mut silent,
        start,
        HANDSHAKE_TIMEOUT - Duration::from_millis(50),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(server.recorder.opens(), 0);
    server.stop().await;
}

/// Sends `request` on a new connection, reads the response, and checks that
/// the server then closes the connection.
async fn refused(server: &TestServer, request: &[u8]) -> HttpResponse {
    let mut client = RawClient::connect(server.addr).await;
    client.send(request).await;
    let response = client.read_http_head().await.expect("an HTTP response");
    let (rest, _) = client.read_to_end(WAIT).await;
    assert!(
        rest.is_empty(),
        "nothing after the response: {:?}",
        String::from_utf8_lossy(&rest)
    );
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_head_gets_431_then_close() {
    let config = EngineConfig {
        max_head: 4096,
        ..test_config()
    };
    let server = TestServer::echo(config);
    // A valid upgrade request made larger than max_head by one header.
    let filler = "x".repeat(5000);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let response = refused(&server, request.as_bytes()).await;
    assert_eq!(response.status, 431, "{response:?}");

    // A head that never ends is refused as soon as it passes the limit,
    // without waiting for the end of the head.
    let mut client = RawClient::connect(server.addr).await;
    client
        .send(format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}").as_bytes())
        .await;
    let response = client.read_http_head().await.expect("an HTTP response");
    assert_eq!(response.status, 431);
    let (rest, _) = client.read_to_end(WAIT).await;
    assert!(rest.is_empty());

    // Just under the limit is fine.
    let filler = "x".repeat(3800);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    assert!(request.len() < 4096);
    let mut client = RawClient::connect(server.addr).await;
    client.send(request.as_bytes()).await;
    assert_eq!(client.read_http_head().await.unwrap().status, 101);
    assert_eq!(server.recorder.opens(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_the_right_status() {
    let hooks = Hooks {
        http: Some(Arc::new(|request, _| {
            (request.path() == "/health").then(|| Response::bytes(200, "text/plain", &b"ok"[..]))
        })),
        upgrade: Some(Arc::new(|upgrade: &Upgrade<'_>| {
            (upgrade.request().path() == "/forbidden")
                .then(|| Reject::new(403, "not for you").header("X-Why", "test"))
        })),
        ..Hooks::default()
    };
    let server = TestServer::start(test_config(), hooks);

    // An old protocol version: 426 telling which version to speak.
    let request =
        upgrade_request("/").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 12");
    let response = refused(&server, request.as_bytes()).await;
    assert_eq!(response.status, 426, "{response:?}");
    assert_eq!(response.header("sec-websocket-version"), Some("13"));

    // Not a GET.
    let request = upgrade_request("/").replacen("GET", "POST", 1);
    let response = refused(&server, request.as_bytes()).await;
    assert_eq!(response.status, 405, "{response:?}");

    // A plain request goes to the handler's `http`, 404 by default.
    let response = refused(&server, b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(response.status, 404, "{response:?}");
    let response = refused(&server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"ok");

    // No key.
    let request = upgrade_request("/").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    let response = refused(&server, request.as_bytes()).await;
    assert_eq!(response.status, 400, "{response:?}");

    // Not HTTP at all.
    let response = refused(&server, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert_eq!(response.status, 400, "{response:?}");

    // The handler refuses: its status, body and header.
    let response = refused(&server, upgrade_request("/forbidden").as_bytes()).await;
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(response.header("x-why"), Some("test"));
    assert_eq!(response.body, b"not for you");

    assert_eq!(
        server.recorder.opens(),
        0,
        "none of these opened a connection"
    );
    ws_check_echo(server.addr, "the server still works").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_get_their_body() {
    // Answers with the body's length and its first and last bytes.
    let hooks = Hooks {
        http: Some(Arc::new(|_, body: &[u8]| {
            let summary = format!(
                "{} {:?} {:?}",
                body.len(),
                body.first().map(|b| *b as char),
                body.last().map(|b| *b as char)
            );
            Some(Response::bytes(200, "text/plain", summary))
        })),
        ..Hooks::default()
    };
    let config = EngineConfig {
        max_body: 100_000,
        ..test_config()
    };
    let server = TestServer::start(config, hooks);

    // No body at all.
    let response = refused(&server, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(response.body, b"0 None None");

    // A body that arrives in pieces, after a 100 Continue.
    let mut client = RawClient::connect(server.addr).await;
    client
        .send(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let head = client.read_http_head().await.unwrap();
    assert_eq!(head.status, 100, "{head:?}");
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for piece in body.chunks(30_000) {
        client.send(piece).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let response = client.read_http_head().await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"100000 Some('a') Some('d')");

    // Too large, chunked, or with lengths that disagree or are not numbers.
    for (request, status) in [
        (
            &b"POST /p HTTP/1.1\r\nContent-Length: 100001\r\n\r\n"[..],
            413,
        ),
        (
            b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            411,
        ),
        (
            b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (b"POST /p HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400),
        (b"POST /p HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc", 400),
    ] {
        let response = refused(&server, request).await;
        assert_eq!(
            response.status,
            status,
            "{:?}: {response:?}",
            String::from_utf8_lossy(request)
        );
    }
    // Repeated equal lengths are one length.
    let response = refused(
        &server,
        b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nxyz",
    )
    .await;
    assert_eq!(response.body, b"3 Some('x') Some('z')");
    server.stop().await;
}
