//! The `/ws` protocol (docs/protocol.md) against the real `uringws` binary,
//! two workers, over real sockets with tokio-tungstenite.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const WAIT: Duration = Duration::from_secs(10);

/// The binary on a free port; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uringws"))
            .args(["--listen", "127.0.0.1:0", "--workers", "2", "--no-pin"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("uringws starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("uringws printed its address")
                .expect("stdout readable");
            if let Some(rest) = line.split("listening on ws://").nth(1) {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.parse().expect("a socket address");
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(server: &Server, protocols: Option<&str>) -> (Ws, Option<String>) {
    let mut request = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    if let Some(p) = protocols {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("handshake");
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, protocol)
}

async fn send(ws: &mut Ws, message: Message) {
    tokio::time::timeout(WAIT, ws.send(message))
        .await
        .expect("send in time")
        .expect("send");
}

async fn next(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("not ended")
            .expect("no error");
        if m.is_text() || m.is_binary() {
            return m;
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    let m = next(ws).await;
    serde_json::from_str(m.to_text().expect("text")).expect("JSON")
}

async fn request(ws: &mut Ws, request: Value) -> Value {
    send(ws, Message::text(request.to_string())).await;
    next_json(ws).await
}

#[tokio::test]
async fn subprotocol_is_confirmed_only_when_offered() {
    let server = Server::start(&[]);
    let (_, p) = connect(&server, Some("other, uringws.v1")).await;
    assert_eq!(p.as_deref(), Some("uringws.v1"));
    let (_, p) = connect(&server, None).await;
    assert_eq!(p, None);
}

#[tokio::test]
async fn json_publish_reaches_every_subscriber_with_data_verbatim() {
    let server = Server::start(&[]);
    let mut subs = Vec::new();
    for i in 0..8 {
        let (mut ws, _) = connect(&server, Some("uringws.v1")).await;
        let ack = request(&mut ws, json!({"type":"subscribe","topic":"news","id":i})).await;
        assert_eq!(ack, json!({"type":"ack","id":i}));
        subs.push(ws);
    }
    let (mut publisher, _) = connect(&server, None).await;
    // Exactly as written, spacing included; the ack comes to the publisher.
    let text = r#"{"type":"publish","topic":"news","id":"p1","data":{"a": [1, 2.50]}}"#;
    send(&mut publisher, Message::text(text)).await;
    assert_eq!(
        next_json(&mut publisher).await,
        json!({"type":"ack","id":"p1"})
    );
    for _ in 0..50 {
        send(
            &mut publisher,
            Message::text(json!({"type":"publish","topic":"news","data":"x"}).to_string()),
        )
        .await;
    }
    for ws in subs.iter_mut() {
        let m = next(ws).await;
        assert_eq!(
            m.to_text().unwrap(),
            r#"{"type":"message","topic":"news","data":{"a": [1, 2.50]}}"#
        );
        for _ in 0..50 {
            assert_eq!(
                next_json(ws).await,
                json!({"type":"message","topic":"news","data":"x"})
            );
        }
    }
    // Unsubscribed: the next thing is the ack of a later request.
    let ws = &mut subs[0];
    let ack = request(ws, json!({"type":"unsubscribe","topic":"news","id":9})).await;
    assert_eq!(ack["type"], "ack");
    send(
        &mut publisher,
        Message::text(json!({"type":"publish","topic":"news","data":1,"id":2}).to_string()),
    )
    .await;
    assert_eq!(next_json(&mut publisher).await["type"], "ack");
    assert_eq!(next_json(&mut subs[1]).await["data"], 1);
    let ack = request(
        &mut subs[0],
        json!({"type":"subscribe","topic":"z","id":10}),
    )
    .await;
    assert_eq!(ack, json!({"type":"ack","id":10}));
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_stays() {
    let server = Server::start(&["--max-subscriptions", "2"]);
    let (mut ws, _) = connect(&server, None).await;
    let cases = [
        ("not json", None, "bad_request"),
        ("[1]", None, "bad_request"),
        (r#"{"type":"dance","id":1}"#, Some(json!(1)), "unknown_type"),
        (
            r#"{"type":"subscribe","id":2}"#,
            Some(json!(2)),
            "bad_request",
        ),
        (
            r#"{"type":"subscribe","topic":"","id":3}"#,
            Some(json!(3)),
            "bad_request",
        ),
        (
            r#"{"type":"subscribe","topic":"a\nb","id":4}"#,
            Some(json!(4)),
            "bad_request",
        ),
        (
            r#"{"type":"subscribe","topic":"t","id":1.5}"#,
            None,
            "bad_request",
        ),
        (
            r#"{"type":"publish","topic":"t","id":5}"#,
            Some(json!(5)),
            "bad_request",
        ),
    ];
    for (text, id, code) in cases {
        send(&mut ws, Message::text(text)).await;
        let e = next_json(&mut ws).await;
        assert_eq!(e["type"], "error", "{text}: {e}");
        assert_eq!(e["code"], code, "{text}: {e}");
        assert_eq!(e.get("id").cloned(), id, "{text}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let long = "x".repeat(256);
    let e = request(&mut ws, json!({"type":"subscribe","topic":long,"id":6})).await;
    assert_eq!(e["code"], "bad_request");
    for (i, t) in ["a", "b"].iter().enumerate() {
        let ack = request(&mut ws, json!({"type":"subscribe","topic":t,"id":i})).await;
        assert_eq!(ack["type"], "ack");
    }
    let e = request(&mut ws, json!({"type":"subscribe","topic":"c","id":7})).await;
    assert_eq!(e["code"], "too_many_subscriptions");
    // The limit counts topics held: unsubscribing makes room.
    request(&mut ws, json!({"type":"unsubscribe","topic":"a","id":8})).await;
    let ack = request(&mut ws, json!({"type":"subscribe","topic":"c","id":9})).await;
    assert_eq!(ack, json!({"type":"ack","id":9}));
}

#[tokio::test]
async fn binary_frames_carry_raw_payloads_with_their_topic() {
    let server = Server::start(&[]);
    let (mut sub, _) = connect(&server, None).await;
    let (mut publisher, _) = connect(&server, None).await;
    request(&mut sub, json!({"type":"subscribe","topic":"bin","id":1})).await;

    // A binary frame without a topic before choosing one: an error.
    send(&mut publisher, Message::binary(vec![0u8, 1, 2])).await;
    let e = next_json(&mut publisher).await;
    assert_eq!(e["code"], "bad_request");
    for bad in [vec![], vec![5u8, b'a'], vec![2u8, 0xff, 0xfe, 1]] {
        send(&mut publisher, Message::binary(bad)).await;
        assert_eq!(next_json(&mut publisher).await["code"], "bad_request");
    }

    // With the topic in the frame.
    let mut frame = vec![3u8];
    frame.extend_from_slice(b"bin");
    frame.extend_from_slice(&[0, 1, 2, 255]);
    send(&mut publisher, Message::binary(frame.clone())).await;
    assert_eq!(next(&mut sub).await.into_data().as_ref(), &frame[..]);

    // With the topic chosen at subscribe time: delivered with it spelled out.
    let ack = request(
        &mut publisher,
        json!({"type":"subscribe","topic":"bin","binary":true,"id":2}),
    )
    .await;
    assert_eq!(ack["type"], "ack");
    send(&mut publisher, Message::binary(vec![0u8, 9, 9])).await;
    let want = [&[3u8][..], b"bin", &[9, 9]].concat();
    assert_eq!(next(&mut sub).await.into_data().as_ref(), &want[..]);
    assert_eq!(next(&mut publisher).await.into_data().as_ref(), &want[..]);
}
