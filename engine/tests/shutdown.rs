//! Graceful shutdown: what was queued is delivered, then close 1001; new
//! connections are refused; the workers exit in time.

mod common;

use common::*;
use futures_util::StreamExt;
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use uringws_engine::{protocol::OpCode, EngineConfig, Message};

const BURST: usize = 48;
const SIZE: usize = 128 << 10;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

fn burst_message(i: usize) -> Vec<u8> {
    let mut data = vec![(i % 251) as u8; SIZE];
    data[..4].copy_from_slice(&(i as u32).to_be_bytes());
    data
}

fn check_burst_message(i: usize, payload: &[u8]) {
    assert_eq!(payload.len(), SIZE, "message {i} length");
    let index = u32::from_be_bytes(payload[..4].try_into().unwrap()) as usize;
    assert_eq!(index, i, "messages in order");
    assert!(
        payload == burst_message(i).as_slice(),
        "message {i} content"
    );
}

/// A new connection is refused, or answered 503, or ended without a 101.
async fn assert_no_new_connection(addr: SocketAddr) {
    let Ok(Ok(stream)) = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr)).await
    else {
        return; // refused
    };
    let mut client = RawClient::from_stream(stream);
    if tokio::time::timeout(
        WAIT,
        tokio::io::AsyncWriteExt::write_all(&mut client.stream, upgrade_request("/").as_bytes()),
    )
    .await
    .is_ok_and(|r| r.is_err())
    {
        return; // reset
    }
    if let Ok(response) = client.read_http_head().await {
        assert_eq!(
            response.status, 503,
            "a new upgrade during shutdown: {response:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_queued_messages_then_1001() {
    let bursts = Arc::new(AtomicUsize::new(0));
    let counter = bursts.clone();
    let hooks = Hooks {
        message: Some(Arc::new(move |conn, message| {
            if !matches!(message, Message::Text(t) if t.as_str() == "burst") {
                return false;
            }
            for i in 0..BURST {
                conn.send_binary(burst_message(i));
            }
            counter.fetch_add(1, Ordering::SeqCst);
            true
        })),
        ..Hooks::default()
    };
    let config = EngineConfig {
        // Room for the whole burst: this test is about shutdown.
        backpressure_limit: 64 << 20,
        shutdown_timeout: SHUTDOWN_TIMEOUT,
        close_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let mut server = TestServer::start(config, hooks);
    let addr = server.addr;

    // Three tungstenite clients and one raw client ask for a burst and do
    // not read yet; the raw one is also in the middle of a fragmented
    // message.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = ws_connect(addr).await;
        futures_util::SinkExt::send(&mut ws, WsMessage::text("burst"))
            .await
            .unwrap();
        clients.push(ws);
    }
    let mut raw = RawClient::upgrade(addr).await;
    raw.send_frame(OpCode::Text, true, b"burst").await;
    raw.send_frame(OpCode::Text, false, b"the first half of a message")
        .await;
    wait_until(WAIT, "every burst queued", || {
        bursts.load(Ordering::SeqCst) == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        server
            .handle()
            .stats()
            .iter()
            .map(|s| s.connections())
            .sum::<usize>(),
        4
    );

    let shutdown_at = Instant::now();
    server.handle().shutdown();

    // While the connections drain, nobody new gets in.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_no_new_connection(addr).await;

    let mut readers = Vec::new();
    for mut ws in clients {
        readers.push(tokio::spawn(async move {
            for i in 0..BURST {
                match ws_next_data(&mut ws).await {
                    WsMessage::Binary(data) => check_burst_message(i, &data),
                    other => panic!("expected burst message {i}, got {other:?}"),
                }
            }
            match ws_next_data(&mut ws).await {
                WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
                other => panic!("expected close 1001, got {other:?}"),
            }
            // tungstenite answers the close; the server then ends the
            // connection.
            while let Some(Ok(_)) = within(WAIT, "end of the connection", ws.next()).await {}
        }));
    }
    let raw_reader = tokio::spawn(async move {
        let (before, close) = raw.read_until_close(WAIT).await;
        assert_eq!(before.len(), BURST, "every queued message before the close");
        for (i, frame) in before.iter().enumerate() {
            assert_eq!(frame.opcode, 0x2);
            check_burst_message(i, &frame.payload);
        }
        let close = close.expect("a close frame");
        assert_eq!(close.close_code(), Some(1001));
        raw.send_frame(OpCode::Close, true, &1001u16.to_be_bytes())
            .await;
        let (rest, _) = raw.read_to_end(WAIT).await;
        assert!(rest.is_empty());
    });
    for reader in readers {
        within(WAIT, "a websocket client", reader)
            .await
            .expect("client saw everything");
    }
    within(WAIT, "the raw client", raw_reader)
        .await
        .expect("raw client saw everything");

    let joined = server.join(SHUTDOWN_TIMEOUT + Duration::from_secs(5)).await;
    let since_shutdown = shutdown_at.elapsed();
    assert!(
        since_shutdown < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "join returned {since_shutdown:?} after shutdown (join itself {joined:?})"
    );
    assert_no_new_connection(addr).await;

    let closes = server.recorder.closes();
    assert_eq!(closes.len(), 4, "{closes:?}");
    assert!(closes.iter().all(|(code, _)| *code == 1001), "{closes:?}");
    server.recorder.assert_one_close_per_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_clients_that_never_answer() {
    let shutdown_timeout = Duration::from_millis(600);
    let config = EngineConfig {
        shutdown_timeout,
        close_timeout: Duration::from_secs(10),
        ..test_config()
    };
    let mut server = TestServer::echo(config);
    // Clients that neither read nor answer the close.
    let mut mute = RawClient::upgrade(server.addr).await;
    let mut ws = ws_connect(server.addr).await;
    ws_echo(&mut ws, WsMessage::text("hello")).await;
    let start = Instant::now();
    server.handle().shutdown();
    // The mute client gets its close frame at once, and the connection
    // ends when the shutdown timeout passes.
    let frame = mute.read_frame().await.expect("a close frame");
    assert_eq!(frame.close_code(), Some(1001));
    let (rest, _) = mute.read_to_end(WAIT).await;
    assert!(rest.is_empty());
    let ended = start.elapsed();
    let joined = server.join(WAIT).await;
    let elapsed = start.elapsed();
    assert!(
        ended < shutdown_timeout + Duration::from_millis(500),
        "the connection ended {ended:?} after the shutdown, timeout {shutdown_timeout:?}"
    );
    assert!(
        elapsed < shutdown_timeout + Duration::from_millis(1000),
        "join returned {elapsed:?} after the shutdown (join {joined:?}), timeout {shutdown_timeout:?}"
    );
    assert_eq!(server.recorder.closes().len(), 2);
    server.recorder.assert_one_close_per_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_only_answering_clients_is_quick() {
    let shutdown_timeout = Duration::from_secs(3);
    let config = EngineConfig {
        shutdown_timeout,
        ..test_config()
    };
    let mut server = TestServer::echo(config);
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut ws = ws_connect(server.addr).await;
        ws_echo(&mut ws, WsMessage::text("hello")).await;
        clients.push(ws);
    }
    let start = Instant::now();
    server.handle().shutdown();
    for mut ws in clients {
        match ws_next_data(&mut ws).await {
            WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
        while let Some(Ok(_)) = within(WAIT, "end of the connection", ws.next()).await {}
    }
    server.join(WAIT).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "every client answered at once, yet join took {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshake_does_not_hold_up_shutdown() {
    let shutdown_timeout = Duration::from_secs(3);
    let config = EngineConfig {
        shutdown_timeout,
        ..test_config()
    };
    let mut server = TestServer::echo(config);
    // Connected (a browser's preconnect, say), no request head yet.
    let mut pending = RawClient::connect(server.addr).await;
    let mut half = RawClient::connect(server.addr).await;
    half.send(b"GET / HTTP/1.1\r\nHost: a\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    server.handle().shutdown();
    let joined = server.join(shutdown_timeout + Duration::from_secs(5)).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no connection was open, yet join took {joined:?} (shutdown timeout {shutdown_timeout:?})"
    );
    // They were dropped, at most with a 503.
    for client in [&mut pending, &mut half] {
        let (bytes, _) = client.read_to_end(WAIT).await;
        assert!(
            bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 503"),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
