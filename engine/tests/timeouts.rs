//! Automatic pings and the idle timeout.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use uringws_engine::{protocol::OpCode, EngineConfig};

const INTERVAL: Duration = Duration::from_millis(200);
/// Timers are checked once per loop turn; allow for a loaded test machine.
const SLACK: Duration = Duration::from_millis(400);

fn ping_config() -> EngineConfig {
    EngineConfig {
        ping_interval: INTERVAL,
        idle_timeout: Duration::ZERO,
        close_timeout: Duration::from_secs(1),
        ..test_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_pings_is_closed() {
    let server = TestServer::echo(ping_config());
    let start = Instant::now();
    let mut mute = RawClient::upgrade(server.addr).await;

    let ping = mute.read_frame().await.expect("a ping");
    let pinged_at = start.elapsed();
    assert_eq!(ping.opcode, 0x9, "the first frame is a ping: {ping}");
    assert!(
        pinged_at >= INTERVAL - Duration::from_millis(20),
        "pinged after {pinged_at:?}"
    );
    assert!(pinged_at <= INTERVAL + SLACK, "pinged after {pinged_at:?}");

    // No pong: a close frame (1001) or the end of the connection, within
    // about three intervals of the upgrade.
    let (others, close) = mute.read_until_close(WAIT).await;
    let closed_at = start.elapsed();
    assert!(others.is_empty(), "nothing but the close: {others:?}");
    if let Ok(close) = close {
        assert_eq!(close.close_code(), Some(1001), "{close}");
    }
    assert!(
        closed_at >= 2 * INTERVAL - Duration::from_millis(20),
        "closed after {closed_at:?}"
    );
    assert!(
        closed_at <= 3 * INTERVAL + SLACK,
        "closed after {closed_at:?}"
    );
    wait_until(WAIT, "close callback", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(server.recorder.closes()[0].0, 1001);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_pings_stays() {
    let server = TestServer::echo(ping_config());
    let mut ws = ws_connect(server.addr).await;
    // Keep reading (tungstenite answers pings as it reads) for six
    // intervals without sending anything ourselves.
    let until = tokio::time::Instant::now() + 6 * INTERVAL;
    let mut pings = 0;
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(WsMessage::Ping(payload))) => {
                    pings += 1;
                    assert!(payload.len() <= 125);
                }
                other => panic!("only pings expected while idle, got {other:?}"),
            },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    assert!(pings >= 3, "the server pings every interval: {pings} pings");
    ws_echo(&mut ws, WsMessage::text("still connected")).await;
    assert!(server.recorder.closes().is_empty());
    ws_close(&mut ws).await;

    // A raw client answering by hand stays as well.
    let mut raw = RawClient::upgrade(server.addr).await;
    let start = Instant::now();
    while start.elapsed() < 5 * INTERVAL {
        let frame = raw.read_frame().await.expect("open");
        assert_eq!(frame.opcode, 0x9);
        raw.send_frame(OpCode::Pong, true, &frame.payload).await;
    }
    raw.send_frame(OpCode::Text, true, b"alive").await;
    loop {
        let frame = raw.read_frame().await.expect("open");
        if frame.opcode == 0x9 {
            raw.send_frame(OpCode::Pong, true, &frame.payload).await;
            continue;
        }
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (0x1, &b"alive"[..])
        );
        break;
    }
    assert_eq!(
        server.recorder.closes().len(),
        1,
        "only the tungstenite client's own close"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_silent_clients_only() {
    let idle = Duration::from_millis(300);
    let config = EngineConfig {
        idle_timeout: idle,
        ping_interval: Duration::ZERO,
        ..test_config()
    };
    let server = TestServer::echo(config);
    let start = Instant::now();
    let mut silent = RawClient::upgrade(server.addr).await;
    let mut chatty = ws_connect(server.addr).await;
    let chatter = tokio::spawn(async move {
        for i in 0..12 {
            ws_echo(&mut chatty, WsMessage::text(format!("{i}"))).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        chatty.send(WsMessage::text("done")).await.unwrap();
        chatty
    });
    let (others, close) = silent.read_until_close(WAIT).await;
    let closed_at = start.elapsed();
    assert!(others.is_empty(), "no automatic pings: {others:?}");
    let close = close.expect("a close frame");
    assert_eq!(close.close_code(), Some(1001));
    assert!(
        closed_at >= idle - Duration::from_millis(20),
        "closed after {closed_at:?}"
    );
    assert!(closed_at <= idle + SLACK, "closed after {closed_at:?}");
    // The chatty one outlived several idle timeouts.
    let mut chatty = within(WAIT, "chatty client", chatter).await.unwrap();
    assert!(start.elapsed() > 3 * idle);
    assert_eq!(ws_next_data(&mut chatty).await, WsMessage::text("done"));
    assert_eq!(server.recorder.closes().len(), 1);
    server.stop().await;
}

/// The worker sleeps on its next deadline, and moves that one timer only
/// when the deadline moves. A connection whose deadline comes before the
/// one it sleeps on must still be served on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_earlier_than_the_one_armed_is_kept() {
    let idle = Duration::from_secs(3);
    let handshake = Duration::from_millis(300);
    let config = EngineConfig {
        idle_timeout: idle,
        handshake_timeout: handshake,
        ping_interval: Duration::ZERO,
        ..test_config()
    };
    // One worker, so that both connections are its.
    let server = TestServer::start_with_workers(config, Hooks::default(), 1);
    // Armed, once its own handshake deadline is past: this one's idle
    // deadline, 3 s away.
    let mut idler = RawClient::upgrade(server.addr).await;
    tokio::time::sleep(2 * handshake).await;
    // Then a connection that never sends its request: its handshake
    // deadline, 300 ms away, is now the worker's next.
    let start = Instant::now();
    let mut mute = RawClient::connect(server.addr).await;
    let (bytes, _end) = mute.read_to_end(WAIT).await;
    let dropped_at = start.elapsed();
    assert!(bytes.is_empty(), "no answer to a request never sent");
    assert!(
        dropped_at >= handshake - Duration::from_millis(20),
        "dropped after {dropped_at:?}"
    );
    assert!(
        dropped_at <= handshake + SLACK,
        "dropped after {dropped_at:?}, not at its own deadline"
    );
    // And the later deadline still holds once it is the next again.
    let (others, close) = idler.read_until_close(WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(close.expect("a close frame").close_code(), Some(1001));
    server.stop().await;
}
