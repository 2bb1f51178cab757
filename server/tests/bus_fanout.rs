//! `uringws-load fanout` (its library) across two real nodes joined by a
//! real `redis-server` (Debian's): publishers on node A only, subscribers
//! on both, and the load generator's figures per node. Every publication
//! must reach every subscriber of its topic on both nodes, once and in
//! order: B's only through Redis.

mod common;

use common::{raw, redis::Redis, Server, WAIT};
use std::{
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};
use uringws_load::{
    client::Plan,
    fanout::{Fanout, FanoutConfig, Phase},
    target::Target,
};

fn node(redis: &Redis) -> Server {
    let url = redis.url();
    let server = Server::start(&["--bus", &url, "--anonymous-publish"]);
    raw::wait_health(server.addr, "ok");
    server
}

/// Nodes subscribed to `channel` in Redis.
fn subscribed_nodes(redis: &Redis, channel: &str) -> Option<u64> {
    redis
        .cli(&["PUBSUB", "NUMSUB", channel])
        .lines()
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn publishers_on_one_node_reach_every_subscriber_on_both_once_in_order() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    // 2 publishers on A; 40 subscribers over t0 and t1, 20 on each node
    // (10 a topic); 400 publications in 2 s, 200 a topic.
    let fanout = Fanout::new(FanoutConfig {
        rate: 200.0,
        duration: Duration::from_secs(2),
        drain: Duration::from_millis(1500),
        ready_timeout: WAIT,
        publish_to: vec![0],
        ..FanoutConfig::uringws(2, 40, 2)
    })
    .unwrap();
    // Held until the test has seen in Redis what the acks promise.
    let hold = fanout.hold_start();
    let plan = Plan {
        targets: [a.addr, b.addr]
            .map(|addr| Target::parse(&format!("ws://{addr}/ws")).unwrap())
            .to_vec(),
        sources: None,
        first: 0,
        connections: 0,
        at_once: 0,
        rate: 0.0,
        concurrency: 64,
        timeout: Duration::from_secs(3),
        until: Instant::now(),
    };
    let started = Instant::now();
    let running = {
        let fanout = fanout.clone();
        std::thread::spawn(move || fanout.run(plan, 2, Arc::new(AtomicBool::new(false))))
    };
    // Every connection ready (each subscribe acked), and still held:
    // nothing published yet.
    while fanout.progress().0 != Phase::Ready(42) {
        assert!(
            started.elapsed() < WAIT,
            "never ready: {:?}",
            fanout.progress()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fanout.progress(), (Phase::Ready(42), 0), "held");
    // A node acks a subscribe to a topic new to it once Redis has its
    // subscription, so by now both nodes are on both channels, with no
    // wait; were they not, B would miss the first publications.
    for channel in ["uringws:t0", "uringws:t1"] {
        assert_eq!(subscribed_nodes(&redis, channel), Some(2), "{channel}");
    }
    hold.release();
    let (outcome, r) = running.join().expect("the run").expect("it ran");
    assert!(started.elapsed() < WAIT + Duration::from_secs(5), "bounded");

    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.ready_at_start, 42);
    assert_eq!(r.publishes_sent, 400);
    assert_eq!(r.per_target.len(), 2);
    for (node, t) in ["A", "B"].iter().zip(&r.per_target) {
        println!(
            "node {node}: {} of {} received, p50 {:?} ms, p99 {:?} ms",
            t.deliveries_received,
            t.deliveries_expected,
            t.latency.as_ref().map(|l| l.p50_ms),
            t.latency.as_ref().map(|l| l.p99_ms),
        );
        assert_eq!(t.subscribers, 20, "node {node}");
        assert_eq!(t.deliveries_expected, 200 * 20, "node {node}");
        assert_eq!(t.deliveries_received, 200 * 20, "node {node}");
        assert_eq!(t.reach_percent, Some(100.0), "node {node}");
        assert_eq!(
            (t.lost, t.duplicates, t.reordered, t.malformed),
            (0, 0, 0, 0),
            "node {node}"
        );
        assert_eq!(
            t.latency.as_ref().map(|l| l.count),
            Some(200 * 20),
            "node {node}"
        );
        assert!(t.clean(), "node {node}");
    }
    assert_eq!(
        (r.per_target[0].publishers, r.per_target[1].publishers),
        (2, 0),
        "the publishers were on A"
    );
    assert_eq!(r.deliveries_received, 2 * 200 * 20);
    assert!(r.clean());
    // B's deliveries came through Redis: every publication once.
    assert_eq!(raw::node_metric(a.addr, "uringws_bus_published_total"), 400);
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_received_total"), 400);
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_duplicates_total"), 0);
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_missed_total"), 0);
}
