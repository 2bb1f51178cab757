//! `POST /publish?topic=T` of the real binary: a backend pushes to
//! subscribers of `/ws` (docs/protocol.md, "HTTP publish").

mod common;

use common::{next, Server, Ws, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::{
    io::{Read, Write},
    net::SocketAddr,
};
use tokio_tungstenite::tungstenite::Message;

/// Target, headers, body, expected status.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

const KEY: &str = "backend-publish-key";

/// One request over a raw socket: (status, head, body).
fn post(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head[9..12].parse().unwrap(),
        head.to_owned(),
        body.to_owned(),
    )
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

async fn subscriber(addr: SocketAddr, topic: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type":"subscribe","topic":topic,"id":1}).to_string(),
    ))
    .await
    .unwrap();
    let ack = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ack.to_text().unwrap(), r#"{"type":"ack","id":1}"#);
    ws
}

#[tokio::test]
async fn a_backend_publishes_json_text_and_binary() {
    let server = Server::start(&["--publish-key", KEY, "--max-body", "1000"]);
    let mut subs = Vec::new();
    for _ in 0..6 {
        subs.push(subscriber(server.addr, "alerts/eu").await);
    }
    let auth = bearer();
    let (status, _, body) = post(
        server.addr,
        "/publish?topic=alerts%2Feu",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"level": "high"}"#,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"topic":"alerts/eu"})
    );
    let (status, ..) = post(
        server.addr,
        "/publish?topic=alerts/eu",
        &[("Authorization", &auth)],
        "plain \"text\"".as_bytes(),
    );
    assert_eq!(status, 202);
    let (status, ..) = post(
        server.addr,
        "/publish?topic=alerts/eu",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        &[0, 1, 255],
    );
    assert_eq!(status, 202);
    for ws in subs.iter_mut() {
        assert_eq!(
            next(ws).await.to_text().unwrap(),
            r#"{"type":"message","topic":"alerts/eu","data":{"level": "high"}}"#
        );
        let text: Value = serde_json::from_str(next(ws).await.to_text().unwrap()).unwrap();
        assert_eq!(text["data"], "plain \"text\"");
        let binary = next(ws).await.into_data();
        assert_eq!(
            &binary[..],
            &[&[9u8][..], b"alerts/eu", &[0, 1, 255]].concat()[..]
        );
    }
}

#[test]
fn bad_publishes_get_the_right_status() {
    let server = Server::start(&["--publish-key", KEY, "--max-body", "1000"]);
    let auth = bearer();
    let json = ("Content-Type", "application/json");
    let cases: Vec<Case> = vec![
        ("/publish?topic=t", vec![], b"x".to_vec(), 401),
        (
            "/publish?topic=t",
            vec![("Authorization", "Bearer wrong")],
            b"x".to_vec(),
            401,
        ),
        (
            "/publish?topic=t",
            vec![("Authorization", KEY)],
            b"x".to_vec(),
            401,
        ),
        (
            "/publish",
            vec![("Authorization", &auth)],
            b"x".to_vec(),
            400,
        ),
        (
            "/publish?topic=",
            vec![("Authorization", &auth)],
            b"x".to_vec(),
            400,
        ),
        (
            "/publish?topic=t",
            vec![("Authorization", &auth), json],
            b"{not json".to_vec(),
            400,
        ),
        (
            "/publish?topic=t",
            vec![("Authorization", &auth)],
            vec![0xff, 0xfe],
            400,
        ),
        (
            "/publish?topic=t",
            vec![("Authorization", &auth)],
            vec![b'x'; 1001],
            413,
        ),
    ];
    for (target, headers, body, status) in cases {
        let (got, head, text) = post(server.addr, target, &headers, &body);
        assert_eq!(got, status, "{target} {headers:?}: {head}\r\n\r\n{text}");
        if status == 401 {
            assert!(
                head.to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{head}"
            );
        }
    }
    // Not POST.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /publish?topic=t HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    assert!(response.contains("Allow: POST\r\n"), "{response}");
    assert_eq!(response.matches("Allow:").count(), 1, "{response}");

    // Without a configured key, HTTP publishing is off.
    let closed = Server::start(&[]);
    let (status, ..) = post(
        closed.addr,
        "/publish?topic=t",
        &[("Authorization", &auth)],
        b"x",
    );
    assert_eq!(status, 401);
}
