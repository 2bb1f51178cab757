//! Protocol errors on an open connection end it with the right close code:
//! 1009 past the size limits, 1007 for invalid UTF-8, 1002 for an unmasked
//! frame; the handler's `close` gets the same code.

mod common;

use common::*;
use uringws_engine::{
    protocol::{DecoderConfig, OpCode},
    EngineConfig,
};

const MAX_FRAME: usize = 32 << 10;
const MAX_MESSAGE: usize = 64 << 10;

fn limits_config() -> EngineConfig {
    EngineConfig {
        decoder: DecoderConfig {
            max_frame_size: MAX_FRAME,
            max_message_size: MAX_MESSAGE,
            ..DecoderConfig::default()
        },
        ..test_config()
    }
}

/// Sends `wire` after the upgrade and expects a close frame with `code`
/// (after nothing else), then the end of the connection.
async fn expect_close(server: &TestServer, wire: &[u8], code: u16) {
    let closes_before = server.recorder.closes().len();
    let mut client = RawClient::upgrade(server.addr).await;
    client.send(wire).await;
    let (before, close) = client.read_until_close(WAIT).await;
    assert!(before.is_empty(), "no message before the close: {before:?}");
    let close = close.expect("a close frame, not the end of the connection");
    assert_eq!(close.close_code(), Some(code), "close frame {close}");
    let (rest, _) = client.read_to_end(WAIT).await;
    assert!(
        rest.is_empty(),
        "the server ends the connection after its close frame"
    );
    wait_until(WAIT, "the close callback", || {
        server.recorder.closes().len() > closes_before
    })
    .await;
    assert_eq!(server.recorder.closes().last().unwrap().0, code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_message_size_is_closed_with_1009() {
    let server = TestServer::echo(limits_config());
    // Three frames each under the frame limit, together over the message
    // limit.
    let piece = vec![b'a'; MAX_FRAME - 1];
    let mut wire = client_frame(OpCode::Binary, false, &piece);
    wire.extend(client_frame(OpCode::Continuation, false, &piece));
    wire.extend(client_frame(OpCode::Continuation, true, &piece));
    expect_close(&server, &wire, 1009).await;

    // A message exactly at the limit is echoed.
    let mut client = RawClient::upgrade(server.addr).await;
    let whole = vec![b'z'; MAX_MESSAGE];
    client
        .send_frame(OpCode::Text, false, &whole[..MAX_FRAME])
        .await;
    client
        .send_frame(OpCode::Continuation, true, &whole[MAX_FRAME..])
        .await;
    let echo = client.read_frame().await.unwrap();
    assert_eq!((echo.opcode, echo.payload.len()), (1, MAX_MESSAGE));
    assert!(echo.payload == whole);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_max_frame_size_is_closed_with_1009_on_its_header() {
    let server = TestServer::echo(limits_config());
    // Only the header of a frame one byte too large: the server must not
    // wait for the payload.
    let frame = client_frame(OpCode::Binary, true, &vec![0u8; MAX_FRAME + 1]);
    expect_close(&server, &frame[..8], 1009).await;
    // A whole one, and a huge announced length.
    expect_close(&server, &frame, 1009).await;
    let mut huge = vec![0x82, 0xff];
    huge.extend((1u64 << 40).to_be_bytes());
    huge.extend([1, 2, 3, 4]);
    expect_close(&server, &huge, 1009).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tungstenite_client_sees_1009() {
    let server = TestServer::echo(limits_config());
    let mut ws = ws_connect(server.addr).await;
    ws_echo(&mut ws, WsMessage::binary(vec![1u8; 1000])).await;
    use futures_util::{SinkExt, StreamExt};
    within(
        WAIT,
        "send",
        ws.send(WsMessage::binary(vec![2u8; MAX_MESSAGE + 1])),
    )
    .await
    .unwrap();
    let message = within(WAIT, "close", ws.next())
        .await
        .expect("a message")
        .expect("no error");
    match message {
        WsMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_closed_with_1007() {
    let server = TestServer::echo(limits_config());
    // In one frame.
    expect_close(&server, &client_frame(OpCode::Text, true, b"abc\xff"), 1007).await;
    // Over fragments: an overlong encoding begun in one, ended in the next.
    let mut wire = client_frame(OpCode::Text, false, b"ok \xc0");
    wire.extend(client_frame(OpCode::Continuation, true, b"\x80"));
    expect_close(&server, &wire, 1007).await;
    // Fail fast: the first fragment is already invalid, the message never
    // finishes.
    expect_close(
        &server,
        &client_frame(OpCode::Text, false, b"\xed\xa0\x80"),
        1007,
    )
    .await;
    // A sequence cut at the end of the message.
    expect_close(
        &server,
        &client_frame(OpCode::Text, true, "é".as_bytes().split_at(1).0),
        1007,
    )
    .await;
    // Invalid UTF-8 in a close reason.
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend(b"\xff");
    expect_close(&server, &client_frame(OpCode::Close, true, &close), 1007).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_closed_with_1002() {
    let server = TestServer::echo(limits_config());
    // Unmasked client frame.
    expect_close(&server, &[0x81, 0x02, b'h', b'i'], 1002).await;
    // Reserved bits without an extension.
    let mut rsv = client_frame(OpCode::Text, true, b"hi");
    rsv[0] |= 0x40;
    expect_close(&server, &rsv, 1002).await;
    // Continuation with nothing to continue.
    expect_close(
        &server,
        &client_frame(OpCode::Continuation, true, b"x"),
        1002,
    )
    .await;
    // A new message in the middle of a fragmented one.
    let mut wire = client_frame(OpCode::Text, false, b"a");
    wire.extend(client_frame(OpCode::Binary, true, b"b"));
    expect_close(&server, &wire, 1002).await;
    // Reserved opcode.
    let mut reserved = client_frame(OpCode::Binary, true, b"x");
    reserved[0] = (reserved[0] & 0xf0) | 0x3;
    expect_close(&server, &reserved, 1002).await;
    server.stop().await;
}
