//! The `/ws` protocol (docs/protocol.md) against the real `uringws` binary,
//! two workers, over real sockets with tokio-tungstenite.

mod common;

use common::*;

use serde_json::json;
use std::{net::SocketAddr, time::Duration};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

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

#[tokio::test]
async fn subprotocol_is_confirmed_only_when_offered() {
    let server = Server::start(&["--anonymous-publish"]);
    let (_, p) = connect(&server, Some("other, uringws.v1")).await;
    assert_eq!(p.as_deref(), Some("uringws.v1"));
    let (_, p) = connect(&server, None).await;
    assert_eq!(p, None);
}

#[tokio::test]
async fn json_publish_reaches_every_subscriber_with_data_verbatim() {
    let server = Server::start(&["--anonymous-publish"]);
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
    let server = Server::start(&["--max-subscriptions", "2", "--anonymous-publish"]);
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
    let server = Server::start(&["--anonymous-publish"]);
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

/// A plain GET over a raw socket: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

/// The sum over workers of one series of a Prometheus text page.
fn metric(page: &str, name: &str, labels: &str) -> u64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let server = Server::start(&["--anonymous-publish"]);
    let (mut a, _) = connect(&server, None).await;
    let (mut b, _) = connect(&server, None).await;
    request(&mut a, json!({"type":"subscribe","topic":"m","id":1})).await;
    request(&mut b, json!({"type":"subscribe","topic":"m","id":1})).await;
    request(
        &mut b,
        json!({"type":"publish","topic":"m","data":"hi","id":2}),
    )
    .await;
    assert_eq!(next_json(&mut a).await["data"], "hi");
    assert_eq!(next_json(&mut b).await["data"], "hi");
    assert_eq!(http_get(server.addr, "/nope").0, 404);

    // The workers publish their tallies once per loop turn.
    let mut page = String::new();
    for _ in 0..100 {
        let (status, body) = http_get(server.addr, "/metrics");
        assert_eq!(status, 200);
        page = body;
        if metric(&page, "uringws_messages_received_total", "") == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&page, "uringws_connections", ""), 2, "{page}");
    assert_eq!(
        metric(&page, "uringws_messages_received_total", ""),
        3,
        "{page}"
    );
    // 3 acks + 2 deliveries.
    assert_eq!(
        metric(&page, "uringws_messages_sent_total", ""),
        5,
        "{page}"
    );
    assert_eq!(metric(&page, "uringws_deliveries_total", ""), 2, "{page}");
    assert!(metric(&page, "uringws_publishes_total", "") >= 1, "{page}");
    assert_eq!(
        metric(&page, "uringws_handshakes_total", "result=\"101\""),
        2,
        "{page}"
    );
    assert_eq!(
        metric(&page, "uringws_http_requests_total", "status=\"404\""),
        1,
        "{page}"
    );
    assert!(page.contains("# TYPE uringws_connections gauge"));
    assert_eq!(metric(&page, "uringws_subscriptions", ""), 2, "{page}");
    // Everything was sent: nothing left queued.
    assert_eq!(metric(&page, "uringws_queued_bytes", ""), 0, "{page}");
    assert!(metric(&page, "uringws_topics", "") >= 1, "{page}");
    assert_eq!(
        metric(&page, "uringws_handshake_duration_seconds_count", ""),
        2,
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "uringws_handshake_duration_seconds_bucket",
            "le=\"+Inf\""
        ),
        2,
        "{page}"
    );
    assert!(page.contains("# TYPE uringws_publish_delay_seconds histogram"));
    assert!(page.contains(&format!(
        "uringws_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(page.contains(&format!("\n{family} ")), "{family}: {page}");
    }
    // What the log said at start.
    let capacity = metric(&page, "uringws_connection_capacity", "");
    let logged = server.logged("connection capacity");
    assert!(
        logged[0].contains(&format!("connection capacity {capacity}")),
        "{capacity} vs {logged:?}"
    );
    assert!(metric(&page, "uringws_bytes_sent_total", "") > 0);
}
