//! Clients that vanish without a close handshake.

mod common;

use common::*;
use std::time::Duration;
use uringws_engine::protocol::OpCode;

/// A partial frame: the header of a 1000-byte binary frame and 10 bytes.
fn partial_frame() -> Vec<u8> {
    let frame = client_frame(OpCode::Binary, true, &[7u8; 1000]);
    frame[..8 + 10].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_mid_frame_is_closed_with_1006() {
    let server = TestServer::echo(test_config());

    // Ended with FIN.
    let mut client = RawClient::upgrade(server.addr).await;
    client.send(&partial_frame()).await;
    drop(client);
    wait_until(WAIT, "close callback after FIN", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(
        server.recorder.closes()[0].0,
        1006,
        "{:?}",
        server.recorder.closes()
    );

    // Ended with RST.
    let client = RawClient::upgrade(server.addr).await;
    let mut client = client;
    client.send(&partial_frame()).await;
    socket2::SockRef::from(&client.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    wait_until(WAIT, "close callback after RST", || {
        server.recorder.closes().len() == 2
    })
    .await;
    assert_eq!(
        server.recorder.closes()[1].0,
        1006,
        "{:?}",
        server.recorder.closes()
    );

    // Ended between two frames, right after a message.
    let mut client = RawClient::upgrade(server.addr).await;
    client.send_frame(OpCode::Text, true, b"hello").await;
    let echo = client.read_frame().await.unwrap();
    assert_eq!(echo.payload, b"hello");
    drop(client);
    wait_until(WAIT, "close callback", || {
        server.recorder.closes().len() == 3
    })
    .await;
    assert_eq!(server.recorder.closes()[2].0, 1006);

    // Gone during the handshake: no connection was opened, no callback.
    let mut client = RawClient::connect(server.addr).await;
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n").await;
    drop(client);

    // The server keeps serving, and its counters are right.
    for i in 0..3 {
        ws_check_echo(server.addr, &format!("still serving {i}")).await;
    }
    wait_until(WAIT, "no connection open", || {
        server.handle().stats().iter().all(|s| s.connections() == 0)
    })
    .await;
    wait_until(WAIT, "all closes", || server.recorder.closes().len() == 6).await;
    assert_eq!(server.recorder.opens(), 6);
    server.recorder.assert_one_close_per_open();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_abrupt_disconnects_while_others_echo() {
    let server = TestServer::echo(test_config());
    let addr = server.addr;
    let echo = tokio::spawn(async move {
        let mut ws = ws_connect(addr).await;
        for i in 0..200 {
            ws_echo(&mut ws, WsMessage::binary(vec![i as u8; 3000])).await;
        }
        ws_close(&mut ws).await;
    });
    for i in 0..50 {
        let mut client = RawClient::upgrade(addr).await;
        client.send(&partial_frame()).await;
        if i % 2 == 0 {
            socket2::SockRef::from(&client.stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(client);
    }
    within(WAIT, "echo client", echo).await.unwrap();
    wait_until(WAIT, "every close", || server.recorder.closes().len() == 51).await;
    let abnormal = server
        .recorder
        .closes()
        .iter()
        .filter(|(code, _)| *code == 1006)
        .count();
    assert_eq!(abnormal, 50);
    server.recorder.assert_one_close_per_open();
    server.stop().await;
}
