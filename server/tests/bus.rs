//! `bus`: two real nodes and a real `redis-server` (Debian's, which the
//! README's test command installs), on loopback.

mod common;

use common::{connect_ws, next, raw, redis::Redis, send, Server, Ws, WAIT};
use serde_json::{json, Value};
use std::{
    io::{Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "bus-test-publish-key";

fn node(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--bus", &url, "--anonymous-publish", "--publish-key", KEY];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    raw::wait_health(server.addr, "ok");
    server
}

fn post(addr: SocketAddr, topic: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST /publish?topic={topic} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (
        head[9..12].parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

async fn request(ws: &mut Ws, request: Value) {
    let id = request["id"].clone();
    send(ws, Message::text(request.to_string())).await;
    let answer: Value = serde_json::from_str(next(ws).await.to_text().unwrap()).unwrap();
    assert_eq!(answer, json!({"type":"ack","id":id}));
}

async fn subscriber(addr: SocketAddr, topic: &str) -> Ws {
    let mut ws = connect_ws(addr).await;
    request(&mut ws, json!({"type":"subscribe","topic":topic,"id":1})).await;
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    next(ws).await.into_text().expect("text").to_string()
}

/// Nothing (but pings) comes within `within`.
async fn quiet(ws: &mut Ws, within: Duration) {
    if let Ok(m) = tokio::time::timeout(within, next(ws)).await {
        panic!("expected nothing, got {m:?}");
    }
}

#[tokio::test]
async fn a_publish_on_one_node_reaches_the_other_once_by_http_and_by_ws() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut on_b = subscriber(b.addr, "news").await;
    let mut on_a = subscriber(a.addr, "news").await;
    redis.wait_channels("uringws:*", |c| c == ["uringws:news"]);
    // Both nodes subscribed: two subscribers of the one channel.
    let started = Instant::now();
    while redis
        .cli(&["PUBSUB", "NUMSUB", "uringws:news"])
        .lines()
        .nth(1)
        != Some("2")
    {
        assert!(started.elapsed() < WAIT, "both nodes never subscribed");
        std::thread::sleep(Duration::from_millis(10));
    }

    let (status, answer) = post(a.addr, "news", "application/json", br#"{"n": 1}"#);
    assert_eq!(status, 202);
    assert_eq!(answer, json!({"topic":"news","bus":"queued"}));
    let want = r#"{"type":"message","topic":"news","data":{"n": 1}}"#;
    assert_eq!(next_text(&mut on_b).await, want);
    assert_eq!(next_text(&mut on_a).await, want);

    // From a /ws client on A: text, then binary with the topic named.
    let mut publisher = connect_ws(a.addr).await;
    request(
        &mut publisher,
        json!({"type":"publish","topic":"news","data":[2],"id":2}),
    )
    .await;
    let mut frame = vec![4];
    frame.extend_from_slice(b"news");
    frame.extend_from_slice(&[0, 1, 2, 255]);
    send(&mut publisher, Message::binary(frame.clone())).await;
    let want = r#"{"type":"message","topic":"news","data":[2]}"#;
    for ws in [&mut on_b, &mut on_a] {
        assert_eq!(next_text(ws).await, want);
        assert_eq!(next(ws).await.into_data().to_vec(), frame);
    }
    // A's own messages came back from Redis to A too: dropped there, so
    // A's subscriber had each once. And B's publishes reach A.
    let (status, _) = post(b.addr, "news", "text/plain", b"last");
    assert_eq!(status, 202);
    for ws in [&mut on_a, &mut on_b] {
        let last: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        assert_eq!(last["data"], "last");
        quiet(ws, Duration::from_millis(200)).await;
    }
    for node in [&a, &b] {
        assert_eq!(
            raw::node_metric(node.addr, "uringws_bus_duplicates_total"),
            0
        );
        assert_eq!(raw::node_metric(node.addr, "uringws_bus_missed_total"), 0);
        assert_eq!(
            raw::node_metric(node.addr, "uringws_bus_publish_failed_total"),
            0
        );
    }
    assert_eq!(raw::node_metric(a.addr, "uringws_bus_published_total"), 3);
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_received_total"), 3);
    assert_eq!(raw::node_metric(a.addr, "uringws_bus_received_total"), 1);
}

#[tokio::test]
async fn a_quiet_bus_stays_up_past_its_pings() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut on_b = subscriber(b.addr, "quiet").await;
    // The subscribed connection is pinged every 5 s; each answer must be
    // taken as one, not as a lost connection.
    tokio::time::sleep(Duration::from_millis(11_500)).await;
    for node in [&a, &b] {
        assert_eq!(
            raw::node_metric(node.addr, "uringws_bus_reconnects_total"),
            0
        );
        assert_eq!(raw::health(node.addr)["status"], "ok");
    }
    let (status, _) = post(a.addr, "quiet", "text/plain", b"still here");
    assert_eq!(status, 202);
    let got: Value = serde_json::from_str(&next_text(&mut on_b).await).unwrap();
    assert_eq!(got["data"], "still here");
}

#[tokio::test]
async fn once_a_subscribe_is_acked_what_other_nodes_publish_arrives() {
    let redis = Redis::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let mut publisher = connect_ws(a.addr).await;
    let mut on_b = connect_ws(b.addr).await;
    // Each topic new to B: its ack must wait for B's SUBSCRIBE in Redis,
    // or a publish on A right after it would reach nobody on B.
    for i in 0..30 {
        let topic = format!("fresh/{i}");
        request(&mut on_b, json!({"type":"subscribe","topic":topic,"id":i})).await;
        request(
            &mut publisher,
            json!({"type":"publish","topic":topic,"data":i,"id":i}),
        )
        .await;
        let got: Value = serde_json::from_str(&next_text(&mut on_b).await).unwrap();
        assert_eq!(
            (got["topic"].as_str(), got["data"].as_i64()),
            (Some(&*topic), Some(i))
        );
    }
}

#[tokio::test]
async fn a_node_subscribes_while_it_has_local_interest_and_not_per_subscriber() {
    let redis = Redis::start();
    let b = node(&redis, &[]);
    // Two workers: enough connections that both have some.
    let mut subs = Vec::new();
    for _ in 0..8 {
        subs.push(subscriber(b.addr, "room/1").await);
    }
    let mut other = subscriber(b.addr, "room/2").await;
    redis.wait_channels("uringws:*", |c| c == ["uringws:room/1", "uringws:room/2"]);
    assert_eq!(
        redis
            .cli(&["PUBSUB", "NUMSUB", "uringws:room/1"])
            .lines()
            .nth(1),
        Some("1"),
        "one Redis subscription per node, whatever its subscribers"
    );
    // All but the last leave, by closing or by unsubscribing.
    let last = subs.pop().unwrap();
    for (i, mut ws) in subs.into_iter().enumerate() {
        if i % 2 == 0 {
            ws.close(None).await.unwrap();
        } else {
            request(
                &mut ws,
                json!({"type":"unsubscribe","topic":"room/1","id":3}),
            )
            .await;
        }
    }
    request(
        &mut other,
        json!({"type":"unsubscribe","topic":"room/2","id":4}),
    )
    .await;
    redis.wait_channels("uringws:*", |c| c == ["uringws:room/1"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(redis.channels("uringws:*"), ["uringws:room/1"]);
    drop(last);
    redis.wait_channels("uringws:*", |c| c.is_empty());
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_channels"), 0);
}

#[tokio::test]
async fn redis_restarted_mid_stream_delivery_resumes_nothing_twice_every_loss_counted() {
    let mut redis = Redis::start();
    let a = node(&redis, &[]);
    let b = node(&redis, &[]);
    let on_a = subscriber(a.addr, "feed").await;
    let on_b = subscriber(b.addr, "feed").await;
    let started = Instant::now();
    while redis
        .cli(&["PUBSUB", "NUMSUB", "uringws:feed"])
        .lines()
        .nth(1)
        != Some("2")
    {
        assert!(started.elapsed() < WAIT, "both nodes never subscribed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut feed = Feed {
        publisher: connect_ws(a.addr).await,
        on_a,
        on_b,
        sent: 0,
        got_a: Vec::new(),
        got_b: Vec::new(),
    };
    for _ in 0..100 {
        feed.step().await;
    }
    redis.kill();
    raw::wait_health(a.addr, "degraded");
    let down = raw::health(b.addr);
    assert_eq!(down["bus"]["subscribe"], "down", "{down}");
    // While Redis is down: local delivery goes on; HTTP says so.
    for _ in 0..100 {
        feed.step().await;
    }
    let (status, answer) = post(a.addr, "other", "text/plain", b"x");
    assert_eq!((status, answer["bus"].as_str()), (202, Some("down")));
    redis.restart();
    // Publishing on while the nodes find Redis again, until B hears A.
    let before = feed.got_b.len();
    let resumed = Instant::now();
    while feed.got_b.len() == before
        || raw::health(a.addr)["status"] != "ok"
        || raw::health(b.addr)["status"] != "ok"
    {
        assert!(
            resumed.elapsed() < WAIT,
            "delivery across nodes did not resume"
        );
        feed.step().await;
    }
    for _ in 0..100 {
        feed.step().await;
    }
    // Until B has the last one.
    let tail = Instant::now();
    while feed.got_b.last() != Some(&feed.sent) {
        assert!(tail.elapsed() < WAIT, "B never got the last one");
        tokio::time::sleep(Duration::from_millis(10)).await;
        drain(&mut feed.on_b, &mut feed.got_b).await;
    }
    drain(&mut feed.on_a, &mut feed.got_a).await;
    let Feed {
        sent, got_a, got_b, ..
    } = feed;
    // A's own subscriber: everything, once, in order, outage or not.
    assert_eq!(got_a, (1..=sent).collect::<Vec<_>>());
    // B: in order, nothing twice, and what is missing is what B counted.
    assert!(got_b.windows(2).all(|w| w[0] < w[1]), "{got_b:?}");
    let missed = raw::node_metric(b.addr, "uringws_bus_missed_total");
    println!(
        "B received {} of {sent} and counted {missed} missed; A counted {} failed",
        got_b.len(),
        raw::node_metric(a.addr, "uringws_bus_publish_failed_total")
    );
    assert_eq!(got_b.len() as u64 + missed, sent);
    assert!(
        missed >= 100,
        "the outage's publishes were missed: {missed}"
    );
    assert_eq!(
        raw::node_metric(b.addr, "uringws_bus_received_total"),
        got_b.len() as u64
    );
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_duplicates_total"), 0);
    // A counted what it could not hand to Redis: the outage's at least.
    let failed = raw::node_metric(a.addr, "uringws_bus_publish_failed_total");
    assert!(failed >= 100, "publish failures counted: {failed}");
    assert!(raw::node_metric(a.addr, "uringws_bus_reconnects_total") >= 1);
    // Subscribed again after the restart.
    assert_eq!(redis.channels("uringws:*"), ["uringws:feed"]);
}

/// One publisher on A, a subscriber on each node, and what each got.
struct Feed {
    publisher: Ws,
    on_a: Ws,
    on_b: Ws,
    sent: u64,
    got_a: Vec<u64>,
    got_b: Vec<u64>,
}

impl Feed {
    /// Publishes the next number, then reads what came.
    async fn step(&mut self) {
        self.sent += 1;
        let message = json!({"type":"publish","topic":"feed","data":self.sent});
        send(&mut self.publisher, Message::text(message.to_string())).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        drain(&mut self.on_a, &mut self.got_a).await;
        drain(&mut self.on_b, &mut self.got_b).await;
    }
}

/// What came so far, without waiting for more.
async fn drain(ws: &mut Ws, into: &mut Vec<u64>) {
    while let Ok(m) = tokio::time::timeout(Duration::from_millis(1), next(ws)).await {
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        into.push(v["data"].as_u64().unwrap());
    }
}
