//! Smaller parts of the handler API and the close handshake: sends from
//! `open`, a close started by the handler, the per-worker connection limit,
//! pipelined frames, start-up errors.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use uringws_engine::{
    protocol::{CloseCode, OpCode},
    Engine, EngineConfig, Message, SendStatus,
};

/// Sends "welcome" on open; on "bye" sends "goodbye" and closes with 4001;
/// on "bye, then send" also tries a send after `close` and records its
/// status.
fn closing_server() -> (TestServer, Arc<Mutex<Vec<SendStatus>>>) {
    let after_close = Arc::new(Mutex::new(Vec::new()));
    let record = after_close.clone();
    let hooks = Hooks {
        open: Some(Arc::new(|conn| {
            conn.send_text("welcome");
        })),
        message: Some(Arc::new(move |conn, message| {
            let Message::Text(text) = message else {
                return false;
            };
            if !text.as_str().starts_with("bye") {
                return false;
            }
            conn.send_text("goodbye");
            conn.close(CloseCode(4001), "bye bye");
            if text.as_str() == "bye, then send" {
                let status = conn.send_text("too late");
                record.lock().unwrap().push(status);
            }
            true
        })),
        ..Hooks::default()
    };
    (TestServer::start(test_config(), hooks), after_close)
}

async fn say_bye(server: &TestServer, bye: &str) {
    let mut client = RawClient::upgrade(server.addr).await;
    let welcome = client.read_frame().await.unwrap();
    assert_eq!((welcome.opcode, welcome.text()), (0x1, "welcome"));
    client.send_frame(OpCode::Text, true, b"echo me").await;
    client.send_frame(OpCode::Text, true, bye.as_bytes()).await;
    assert_eq!(client.read_frame().await.unwrap().text(), "echo me");
    assert_eq!(client.read_frame().await.unwrap().text(), "goodbye");
    let close = client.read_frame().await.unwrap();
    assert!(
        close.is_close(),
        "the close frame comes right after what was sent before close(): {close}"
    );
    assert_eq!(close.close_code(), Some(4001));
    assert_eq!(&close.payload[2..], b"bye bye");
    // Messages the client sent before it saw the close are not echoed any
    // more; its close reply ends the connection.
    client.send_frame(OpCode::Text, true, b"late").await;
    client
        .send_frame(OpCode::Close, true, &4001u16.to_be_bytes())
        .await;
    let (rest, _) = client.read_to_end(WAIT).await;
    assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
    wait_until(WAIT, "close callback", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(server.recorder.closes()[0], (4001, "bye bye".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_can_send_and_message_can_close() {
    let (server, _) = closing_server();
    say_bye(&server, "bye").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_after_close_in_the_same_callback_are_refused() {
    let (server, after_close) = closing_server();
    say_bye(&server, "bye, then send").await;
    assert_eq!(
        *after_close.lock().unwrap(),
        [SendStatus::Dropped],
        "a send after close() is refused"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_handshake_variants() {
    let server = TestServer::echo(test_config());

    // A close with a code and reason: the reply carries the code.
    let mut client = RawClient::upgrade(server.addr).await;
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend(b"fine");
    client.send_frame(OpCode::Close, true, &payload).await;
    let reply = client.read_frame().await.unwrap();
    assert_eq!(reply.close_code(), Some(1000));
    assert!(client.read_to_end(WAIT).await.0.is_empty());

    // A close without a code: the handler sees 1005, the reply is a close
    // without a code or with 1000.
    let mut client = RawClient::upgrade(server.addr).await;
    client.send_frame(OpCode::Close, true, &[]).await;
    let reply = client.read_frame().await.unwrap();
    assert!(matches!(reply.close_code(), None | Some(1000)), "{reply:?}");
    assert!(client.read_to_end(WAIT).await.0.is_empty());

    // Codes that must not be sent, and a one-byte payload: 1002.
    for payload in [
        &1005u16.to_be_bytes()[..],
        &999u16.to_be_bytes()[..],
        &[3u8][..],
    ] {
        let mut client = RawClient::upgrade(server.addr).await;
        client.send_frame(OpCode::Close, true, payload).await;
        let reply = client.read_frame().await.unwrap();
        assert_eq!(reply.close_code(), Some(1002), "close payload {payload:?}");
        assert!(client.read_to_end(WAIT).await.0.is_empty());
    }

    wait_until(WAIT, "close callbacks", || {
        server.recorder.closes().len() == 5
    })
    .await;
    let codes: Vec<u16> = server.recorder.closes().iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[..2], [1000, 1005]);
    assert!(codes[2..].iter().all(|&c| c == 1002), "{codes:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_pipelined_frames_in_one_write() {
    let server = TestServer::echo(test_config());
    let mut client = RawClient::upgrade(server.addr).await;
    const COUNT: u32 = 5000;
    let mut wire = Vec::new();
    for i in 0..COUNT {
        wire.extend(client_frame(OpCode::Binary, true, &i.to_be_bytes()));
    }
    client.send(&wire).await;
    for i in 0..COUNT {
        let frame = client.read_frame().await.unwrap();
        assert_eq!(frame.payload, i.to_be_bytes(), "echo {i} in order");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_worker_limit_get_503() {
    let config = EngineConfig {
        max_connections_per_worker: 1,
        ..test_config()
    };
    let server = TestServer::echo(config);
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        let mut client = RawClient::connect(server.addr).await;
        client.send(upgrade_request("/").as_bytes()).await;
        let response = client.read_http_head().await.expect("a response");
        match response.status {
            101 => open.push(client),
            503 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    assert!(
        (1..=2).contains(&open.len()),
        "{} accepted with one per worker",
        open.len()
    );
    assert_eq!(open.len() + refused, 10);
    assert!(server.handle().stats().iter().all(|s| s.connections() <= 1));
    // A closed connection frees its place.
    let mut first = open.remove(0);
    first
        .send_frame(OpCode::Close, true, &1000u16.to_be_bytes())
        .await;
    let _ = first.read_until_close(WAIT).await;
    assert!(first.read_to_end(WAIT).await.0.is_empty());
    wait_until(WAIT, "the counter to drop", || {
        server
            .handle()
            .stats()
            .iter()
            .map(|s| s.connections())
            .sum::<usize>()
            == open.len()
    })
    .await;
    let mut upgraded = false;
    for _ in 0..20 {
        let mut client = RawClient::connect(server.addr).await;
        client.send(upgrade_request("/").as_bytes()).await;
        if client.read_http_head().await.expect("a response").status == 101 {
            upgraded = true;
            break;
        }
    }
    assert!(upgraded, "a place became free");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_sees_the_peer() {
    let server = TestServer::echo(test_config());
    let mut locals = Vec::new();
    for _ in 0..8 {
        let client = RawClient::upgrade(server.addr).await;
        locals.push(client.stream.local_addr().unwrap());
    }
    let peers = server.recorder.peers.lock().unwrap().clone();
    assert_eq!(peers.len(), 8);
    for (i, (worker, peer)) in peers.iter().enumerate() {
        assert_eq!(
            peer.worker, *worker,
            "Peer::worker is the worker whose handler is called"
        );
        assert_eq!(
            peer.addr,
            Some(locals[i]),
            "Peer::addr is the client's address"
        );
    }
    server.stop().await;
}

#[test]
fn start_up_errors_are_reported() {
    let no_address = Engine::builder()
        .workers(2)
        .pin(false)
        .start(|_| unreachable_handler());
    assert_eq!(
        no_address.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
    for (buffers, size) in [(3, 4096), (0, 4096), (4, 0)] {
        let config = EngineConfig {
            recv_buffers: buffers,
            recv_buffer_size: size,
            ..EngineConfig::default()
        };
        let result = Engine::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .workers(2)
            .pin(false)
            .config(config)
            .start(|_| unreachable_handler());
        assert!(
            result.is_err(),
            "recv_buffers {buffers} × {size} must be refused"
        );
    }
}

struct Unreachable;

impl uringws_engine::Handler for Unreachable {
    type State = ();
    fn upgrade(
        &mut self,
        _: &uringws_engine::protocol::handshake::Upgrade<'_>,
        _: uringws_engine::Peer,
    ) -> Result<uringws_engine::Accept<()>, uringws_engine::Reject> {
        unreachable!()
    }
    fn message(&mut self, _: &mut uringws_engine::Conn<'_, ()>, _: Message) {}
}

fn unreachable_handler() -> Unreachable {
    Unreachable
}
