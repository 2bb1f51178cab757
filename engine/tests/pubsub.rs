//! Pub/sub over real sockets, subscribers on both workers: exactly-once
//! delivery in publisher order, publishing from a handler and from another
//! thread, unsubscribe, cleanup on abrupt disconnect, and slow subscribers
//! under both backpressure policies while the others keep up.
//!
//! The handler speaks a tiny text protocol: `sub T`, `unsub T`, `pub T
//! BODY`, `others T BODY` (publish to everyone but the sender), each
//! answered `ok <request>`.

mod common;

use common::*;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};
use uringws_engine::{
    protocol::OpCode, BackpressurePolicy, Conn, EngineConfig, Message, Publication,
};

fn pubsub_hooks() -> Hooks {
    Hooks {
        message: Some(Arc::new(|conn: &mut Conn<'_, ()>, message: &Message| {
            let Message::Text(text) = message else {
                return true;
            };
            let text = text.as_str();
            let mut parts = text.splitn(3, ' ');
            let (verb, topic, body) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let answer = match verb {
                "sub" => conn.subscribe(topic),
                "unsub" => conn.unsubscribe(topic),
                "pub" => {
                    conn.publish(topic, &Publication::text(body));
                    true
                }
                "others" => {
                    conn.publish_to_others(topic, &Publication::text(body));
                    true
                }
                "big" => {
                    // `big T N`: publish N messages of 64 KiB.
                    for _ in 0..body.parse::<usize>().unwrap_or(0) {
                        conn.publish(topic, &Publication::binary(&[7; 64 << 10]));
                    }
                    true
                }
                _ => return false,
            };
            conn.send_text(format!("ok {text} {answer}"));
            true
        })),
        ..Hooks::default()
    }
}

async fn request(ws: &mut Ws, text: &str) {
    ws_send(ws, WsMessage::text(text)).await;
    let reply = ws_next_data(ws).await;
    assert!(
        reply.to_text().unwrap().starts_with(&format!("ok {text}")),
        "{text} answered {reply:?}"
    );
}

async fn ws_send(ws: &mut Ws, message: WsMessage) {
    use futures_util::SinkExt;
    within(WAIT, "send", ws.send(message)).await.expect("send");
}

/// Subscribers spread over both workers (connecting until each worker has
/// some), each subscribed to `topic`.
async fn subscribers(server: &TestServer, n: usize, topic: &str) -> Vec<Ws> {
    let mut subs = Vec::new();
    while subs.len() < n || server.recorder.opens_on(0) == 0 || server.recorder.opens_on(1) == 0 {
        assert!(
            subs.len() < 10 * n,
            "connections never reached both workers"
        );
        let mut ws = ws_connect(server.addr).await;
        request(&mut ws, &format!("sub {topic}")).await;
        subs.push(ws);
    }
    subs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_each_publication_once_in_order() {
    let server = TestServer::start(test_config(), pubsub_hooks());
    let mut subs = subscribers(&server, 24, "news").await;
    let mut other_topic = ws_connect(server.addr).await;
    request(&mut other_topic, "sub sport").await;

    // Two publishing connections and one thread with a Publisher handle,
    // interleaved.
    const EACH: usize = 200;
    let mut p1 = ws_connect(server.addr).await;
    let mut p2 = ws_connect(server.addr).await;
    let publisher = server.handle().publisher();
    let thread = std::thread::spawn(move || {
        for seq in 0..EACH {
            publisher.publish("news", &Publication::text(&format!("h {seq}")));
        }
    });
    for seq in 0..EACH {
        ws_send(&mut p1, WsMessage::text(format!("pub news a {seq}"))).await;
        ws_send(&mut p2, WsMessage::text(format!("pub news b {seq}"))).await;
    }
    thread.join().unwrap();

    for (i, sub) in subs.iter_mut().enumerate() {
        let mut next: HashMap<String, usize> = HashMap::new();
        for _ in 0..3 * EACH {
            let message = ws_next_data(sub).await;
            let text = message.to_text().unwrap();
            let (who, seq) = text.rsplit_once(' ').unwrap();
            let seq: usize = seq.parse().unwrap();
            let expected = next.entry(who.to_owned()).or_default();
            assert_eq!(seq, *expected, "subscriber {i}: {who} out of order");
            *expected += 1;
        }
        assert_eq!(next.len(), 3, "subscriber {i} heard from {next:?}");
    }
    // Nothing more (no duplicates), and nothing for the other topic.
    ws_send(&mut p1, WsMessage::text("pub news end")).await;
    for sub in subs.iter_mut() {
        assert_eq!(ws_next_data(sub).await.to_text().unwrap(), "end");
    }
    request(&mut other_topic, "pub sport only").await;
    assert_eq!(
        ws_next_data(&mut other_topic).await.to_text().unwrap(),
        "only"
    );

    let stats = server.handle().stats();
    let deliveries: u64 = stats.iter().map(|s| s.deliveries()).sum();
    assert_eq!(deliveries as usize, subs.len() * (3 * EACH + 1) + 1);
    assert!(
        stats.iter().all(|s| s.deliveries() > 0),
        "both workers fanned out"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_others_skips_the_sender_and_unsubscribe_stops_delivery() {
    let server = TestServer::start(test_config(), pubsub_hooks());
    let mut a = ws_connect(server.addr).await;
    let mut b = ws_connect(server.addr).await;
    request(&mut a, "sub room").await;
    request(&mut b, "sub room").await;
    request(&mut a, "sub room").await; // a second subscribe changes nothing

    request(&mut a, "others room from-a").await;
    assert_eq!(ws_next_data(&mut b).await.to_text().unwrap(), "from-a");
    request(&mut a, "pub room to-all").await;
    assert_eq!(ws_next_data(&mut a).await.to_text().unwrap(), "to-all");
    assert_eq!(ws_next_data(&mut b).await.to_text().unwrap(), "to-all");

    request(&mut b, "unsub room").await;
    request(&mut a, "pub room after").await;
    assert_eq!(ws_next_data(&mut a).await.to_text().unwrap(), "after");
    // b hears its own next request's answer first: nothing came between.
    request(&mut b, "unsub room").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_end_with_abruptly_dropped_connections() {
    let server = TestServer::start(test_config(), pubsub_hooks());
    let publisher = server.handle().publisher();
    let subs = subscribers(&server, 8, "gone").await;
    let n = subs.len();
    assert_eq!(publisher.publish("gone", &Publication::text("x")), 2);
    // TCP dropped without a close frame.
    drop(subs);
    wait_until(WAIT, "every close callback", || {
        server.recorder.closes().len() == n
    })
    .await;
    assert!(server
        .recorder
        .closes()
        .iter()
        .all(|(code, _)| *code == 1006));
    // No worker is interested any more: the publish goes nowhere.
    assert_eq!(publisher.publish("gone", &Publication::text("y")), 0);

    // A new subscriber, possibly in a reused slot, hears only what is
    // published after it subscribed.
    let mut fresh = ws_connect(server.addr).await;
    request(&mut fresh, "sub gone").await;
    assert!(publisher.publish("gone", &Publication::text("z")) == 1);
    assert_eq!(ws_next_data(&mut fresh).await.to_text().unwrap(), "z");
    server.stop().await;
}

/// A subscriber that never reads, and one that keeps reading, while 25 MiB
/// are published in 64 KiB messages, a few at a time so a reader that keeps
/// up stays under the limit.
/// Returns the other clients too: dropping them would close them.
async fn slow_subscriber(policy: BackpressurePolicy) -> (TestServer, RawClient, u64, [Ws; 2]) {
    let config = EngineConfig {
        backpressure_limit: 256 << 10,
        backpressure_policy: policy,
        ..test_config()
    };
    let server = TestServer::start(config, pubsub_hooks());
    let mut slow = RawClient::upgrade(server.addr).await;
    slow.send_frame(OpCode::Text, true, b"sub feed").await;
    let ack = slow.read_frame().await.expect("ack");
    assert!(ack.text().starts_with("ok sub feed"));
    let mut fast = ws_connect(server.addr).await;
    request(&mut fast, "sub feed").await;
    let mut publisher = ws_connect(server.addr).await;

    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    const ROUNDS: usize = 400;
    const PER_ROUND: usize = 1;
    let reader = tokio::spawn(async move {
        for _ in 0..ROUNDS * PER_ROUND {
            let m = ws_next_data(&mut fast).await;
            assert_eq!(m.len(), 64 << 10, "{:?}", m.to_text());
            counter.fetch_add(1, Ordering::SeqCst);
        }
        fast
    });
    for round in 1..=ROUNDS {
        request(&mut publisher, &format!("big feed {PER_ROUND}")).await;
        // The fast subscriber keeps up round by round.
        wait_until(WAIT, "the fast subscriber", || {
            received.load(Ordering::SeqCst) == round * PER_ROUND
        })
        .await;
    }
    let fast = within(WAIT, "reader", reader).await.unwrap();
    // Every delivery was either queued or refused, on both workers (under
    // the Close policy the slow one stops being a subscriber instead).
    let stats = server.handle().stats();
    let total = || {
        stats
            .iter()
            .map(|s| s.deliveries() + s.deliveries_dropped())
            .sum::<u64>()
    };
    if policy == BackpressurePolicy::Drop {
        wait_until(WAIT, "all deliveries accounted", || total() == 800).await;
    }
    let dropped = stats.iter().map(|s| s.deliveries_dropped()).sum();
    (server, slow, dropped, [fast, publisher])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_misses_messages_under_drop_policy() {
    let (server, mut slow, dropped, mut others) = slow_subscriber(BackpressurePolicy::Drop).await;
    // It holds at most the limit plus what the socket buffers took.
    // Past the limit and the socket buffers, everything was refused.
    assert!(dropped > 200, "only {dropped} of 400 deliveries dropped");
    let stats = server.handle().stats();
    wait_until(WAIT, "the tallies", || {
        stats.iter().map(|s| s.backpressure_drops()).sum::<u64>() == dropped
    })
    .await;
    assert_eq!(
        stats.iter().map(|s| s.backpressure_closes()).sum::<u64>(),
        0
    );
    assert!(
        server.recorder.closes().is_empty(),
        "nobody was closed: {:?}",
        server.recorder.closes()
    );
    // What was not refused arrives, once; then the subscriber, under the
    // limit again, gets new publications.
    for _ in 0..400 - dropped {
        let frame = slow.read_frame().await.expect("a queued publication");
        assert_eq!(frame.payload.len(), 64 << 10);
    }
    let [fast, _] = &mut others;
    request(fast, "pub feed again").await;
    assert_eq!(slow.read_frame().await.expect("after").text(), "again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_closed_with_1008_under_close_policy() {
    let (server, _slow, dropped, _others) = slow_subscriber(BackpressurePolicy::Close).await;
    assert!(dropped >= 1);
    wait_until(WAIT, "the close", || !server.recorder.closes().is_empty()).await;
    assert_eq!(
        server.recorder.closes(),
        vec![(1008, "backpressure limit".into())]
    );
    server.stop().await;
}
