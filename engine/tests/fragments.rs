//! Fragmented messages with control frames between the fragments, sent as
//! hand-crafted masked frames, whole and split at every kind of boundary.

mod common;

use common::*;
use std::time::Duration;
use uringws_engine::protocol::OpCode;

/// Text in three fragments with two pings between them, then binary in
/// four fragments (one empty) with a ping, then a close.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let binary: Vec<u8> = (0..150_000u32).map(|i| (i * 13 + i / 256) as u8).collect();
    let mut wire = Vec::new();
    wire.extend(client_frame(OpCode::Text, false, "Hello, ".as_bytes()));
    wire.extend(client_frame(OpCode::Ping, true, b"p1"));
    wire.extend(client_frame(
        OpCode::Continuation,
        false,
        "wörld".as_bytes(),
    ));
    wire.extend(client_frame(OpCode::Ping, true, b"second ping"));
    wire.extend(client_frame(OpCode::Continuation, true, "!".as_bytes()));
    wire.extend(client_frame(OpCode::Binary, false, &binary[..70_000]));
    wire.extend(client_frame(OpCode::Continuation, false, &[]));
    wire.extend(client_frame(OpCode::Ping, true, &[0xff; 125]));
    wire.extend(client_frame(
        OpCode::Continuation,
        false,
        &binary[70_000..70_001],
    ));
    wire.extend(client_frame(OpCode::Continuation, true, &binary[70_001..]));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    wire.extend(client_frame(OpCode::Close, true, &close));
    (wire, binary)
}

async fn check_answers(client: &mut RawClient, binary: &[u8]) {
    let expect = |frame: RawFrame, opcode: u8, payload: &[u8]| {
        assert_eq!(frame.opcode, opcode, "opcode of {frame}");
        assert!(frame.fin, "the server sends whole messages: {frame}");
        assert_eq!(frame.rsv, 0);
        assert!(frame.payload == payload, "payload of {frame}");
    };
    expect(client.read_frame().await.unwrap(), 0xA, b"p1");
    expect(client.read_frame().await.unwrap(), 0xA, b"second ping");
    expect(
        client.read_frame().await.unwrap(),
        0x1,
        "Hello, wörld!".as_bytes(),
    );
    expect(client.read_frame().await.unwrap(), 0xA, &[0xff; 125]);
    expect(client.read_frame().await.unwrap(), 0x2, binary);
    let close = client.read_frame().await.unwrap();
    assert!(close.is_close(), "then the close reply: {close}");
    assert_eq!(close.close_code(), Some(1000));
    // After the close handshake the server ends the transport.
    let (rest, _) = client.read_to_end(WAIT).await;
    assert!(rest.is_empty(), "nothing after the close frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_with_interleaved_pings_in_one_write() {
    let server = TestServer::echo(test_config());
    let (wire, binary) = conversation();
    let mut client = RawClient::upgrade(server.addr).await;
    client.send(&wire).await;
    check_answers(&mut client, &binary).await;
    wait_until(WAIT, "close callback", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(server.recorder.closes()[0], (1000, "done".to_owned()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_split_at_odd_places() {
    let server = TestServer::echo(test_config());
    let (wire, binary) = conversation();
    let mut client = RawClient::upgrade(server.addr).await;
    // Pieces of 1, 2, 3, … bytes for the small frames at the start (every
    // header split), then larger pieces, each a separate segment.
    let mut at = 0;
    let mut step = 1;
    while at < wire.len() {
        let end = (at + step).min(wire.len());
        client.send(&wire[at..end]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        at = end;
        step = if at < 64 { step % 5 + 1 } else { step * 2 + 1 };
    }
    check_answers(&mut client, &binary).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_and_first_frames_in_one_segment() {
    // Frames that arrive with the request head are not lost.
    let server = TestServer::echo(test_config());
    let mut client = RawClient::connect(server.addr).await;
    let mut wire = upgrade_request("/").into_bytes();
    wire.extend(client_frame(OpCode::Text, false, b"ab"));
    wire.extend(client_frame(OpCode::Continuation, true, b"cd"));
    client.send(&wire).await;
    let response = client.read_http_head().await.unwrap();
    assert_eq!(response.status, 101);
    let frame = client.read_frame().await.unwrap();
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (0x1, &b"abcd"[..])
    );
    server.stop().await;
}
