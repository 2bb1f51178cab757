//! Clients that half-close (shutdown(SHUT_WR)): they can send nothing
//! more but still read. What the server owes them is what it had to say
//! about what they sent before the FIN, then the end of the connection.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use uringws_engine::{protocol::OpCode, EngineConfig};

/// Long enough that a test ending in time shows the server did not wait
/// for a timeout to end the connection.
const TIMEOUT: Duration = Duration::from_secs(5);

fn config() -> EngineConfig {
    EngineConfig {
        close_timeout: TIMEOUT,
        idle_timeout: TIMEOUT,
        ..test_config()
    }
}

/// The server ends the connection (FIN) soon, not at a timeout.
async fn assert_ended_promptly(client: &mut RawClient, since: Instant) {
    let (rest, end) = client.read_to_end(WAIT).await;
    assert!(rest.is_empty(), "nothing more: {rest:?}");
    assert_eq!(end, End::Eof, "an orderly end, not a reset");
    assert!(
        since.elapsed() < Duration::from_secs(1),
        "the server ended the connection {:?} after the FIN (timeouts are {TIMEOUT:?})",
        since.elapsed()
    );
}

async fn no_connection_left(server: &TestServer) {
    wait_until(WAIT, "no connection open", || {
        server.handle().stats().iter().all(|s| s.connections() == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_close_then_half_close_get_the_echo_and_the_close_reply() {
    let server = TestServer::echo(config());
    let mut client = RawClient::upgrade(server.addr).await;
    let mut wire = client_frame(OpCode::Text, true, b"before the close");
    wire.extend(client_frame(OpCode::Close, true, &1000u16.to_be_bytes()));
    client.send(&wire).await;
    client.stream.shutdown().await.expect("SHUT_WR");
    let fin = Instant::now();

    // RFC 6455 5.5.1: the close is answered, after what was already sent.
    let (before, close) = client.read_until_close(WAIT).await;
    assert_eq!(before.len(), 1, "the echo, then the close: {before:?}");
    assert_eq!(before[0].text(), "before the close");
    assert_eq!(close.expect("a close reply").close_code(), Some(1000));
    // 7.1.1: the server closes the TCP connection first.
    assert_ended_promptly(&mut client, fin).await;

    wait_until(WAIT, "the close callback", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(server.recorder.closes()[0].0, 1000);
    no_connection_left(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_then_half_close_without_a_close_get_their_echoes_then_the_end() {
    let server = TestServer::echo(config());
    // Several rounds: the FIN comes in the same read as the last message
    // or in a read of its own, depending on timing; either way the echoes
    // go out before the end.
    for round in 0..20 {
        let mut client = RawClient::upgrade(server.addr).await;
        let mut wire = Vec::new();
        for i in 0..3 {
            wire.extend(client_frame(
                OpCode::Binary,
                true,
                &vec![i as u8; 100 + round * 1000],
            ));
        }
        client.send(&wire).await;
        client.stream.shutdown().await.expect("SHUT_WR");
        let fin = Instant::now();
        for i in 0..3 {
            let frame = client
                .read_frame()
                .await
                .unwrap_or_else(|end| panic!("round {round}: echo {i} lost: {end:?}"));
            assert_eq!(frame.opcode, 0x2, "round {round}: {frame}");
            assert_eq!(frame.payload, vec![i as u8; 100 + round * 1000]);
        }
        // No close frame: the peer cannot answer one (and 1006, what the
        // connection ended with, is never sent on the wire, RFC 6455 7.4.1).
        assert_ended_promptly(&mut client, fin).await;
    }
    wait_until(WAIT, "every close callback", || {
        server.recorder.closes().len() == 20
    })
    .await;
    assert!(
        server
            .recorder
            .closes()
            .iter()
            .all(|(code, _)| *code == 1006),
        "{:?}",
        server.recorder.closes()
    );
    server.recorder.assert_one_close_per_open();
    no_connection_left(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_right_after_the_upgrade_ends_the_connection_quietly() {
    let server = TestServer::echo(config());
    let mut client = RawClient::upgrade(server.addr).await;
    client.stream.shutdown().await.expect("SHUT_WR");
    let fin = Instant::now();
    assert_ended_promptly(&mut client, fin).await;
    wait_until(WAIT, "the close callback", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(server.recorder.closes()[0].0, 1006);

    // A plain request whose client half-closes after it still gets its
    // answer (HTTP/1.0 clients and `nc -N` do this).
    let mut client = RawClient::connect(server.addr).await;
    client
        .send(b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    client.stream.shutdown().await.expect("SHUT_WR");
    let fin = Instant::now();
    assert_eq!(
        client.read_http_head().await.expect("an answer").status,
        404
    );
    assert_ended_promptly(&mut client, fin).await;

    ws_check_echo(server.addr, "others are served").await;
    no_connection_left(&server).await;
    server.stop().await;
}
