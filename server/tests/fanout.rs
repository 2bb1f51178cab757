//! `uringws-load fanout` (its library) against the real `/ws`: publishers
//! and subscribers on both server workers, every delivery counted, exactly
//! once and in order, latency measured; a topic the token does not grant
//! fails its subscribers by reason while the rest run.

mod common;

use common::Server;
use std::{
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};
use uringws_load::{
    client::{Outcome, Plan},
    fanout::{Fanout, FanoutConfig},
    report::FanoutReport,
    target::Target,
};

fn run(url: &str, config: FanoutConfig) -> (Outcome, FanoutReport) {
    let plan = Plan {
        targets: vec![Target::parse(url).unwrap()],
        sources: None,
        first: 0,
        connections: 0,
        rate: 0.0,
        concurrency: 64,
        timeout: Duration::from_secs(3),
        until: Instant::now(),
    };
    let started = Instant::now();
    let result = Fanout::new(config)
        .unwrap()
        .run(plan, 2, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
    result
}

/// 3 publishers, 30 subscribers over t0..t2, 600 messages in 1 s.
fn config() -> FanoutConfig {
    FanoutConfig {
        rate: 600.0,
        duration: Duration::from_secs(1),
        drain: Duration::from_millis(1500),
        ready_timeout: Duration::from_secs(5),
        ..FanoutConfig::uringws(3, 30, 3)
    }
}

#[test]
fn every_subscriber_gets_every_publication_of_its_topic_once_in_order() {
    let server = Server::start(&["--anonymous-publish"]);
    let (outcome, r) = run(&format!("ws://{}/ws", server.addr), config());
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.ready_at_start, 33);
    assert_eq!(r.publishes_sent, 600);
    // 200 publications per topic, 10 subscribers each.
    assert_eq!(r.deliveries_expected, 200 * 30);
    assert_eq!(r.deliveries_received, 200 * 30);
    assert_eq!((r.lost, r.duplicates, r.reordered), (0, 0, 0));
    assert_eq!(r.latency.as_ref().map(|l| l.count), Some(6000));
    assert!(r.clean());
}

#[test]
fn subscribers_to_a_topic_the_token_does_not_grant_fail_by_reason() {
    let server = Server::start(&["--auth-required", "--token", "lt:t0,t2|t0,t2"]);
    let (outcome, r) = run(&format!("ws://{}/ws?token=lt", server.addr), config());
    // t1's 10 subscribers are refused, and so are the publishes to t1
    // (200, each answered with an error); the rest run in full.
    assert_eq!(outcome.errors["subscribe: error forbidden"], 10);
    assert_eq!(r.errors["server error: forbidden"], 200);
    assert_eq!(r.ready_at_start, 3 + 20);
    assert_eq!(r.publishes_sent, 600);
    // Only t0 and t2 have subscribers.
    assert_eq!(r.deliveries_expected, 200 * 20);
    assert_eq!(r.deliveries_received, 200 * 20);
    assert_eq!(r.lost, 0);
}
