//! Limits that fit the box: the open-files limit an operator's shell or
//! unit gives, the connection capacity that results, and what a client
//! past it gets (a prompt 503, not a wait in the listen backlog), with
//! `uringws-load` as the client.

mod common;

use common::Server;
use std::{
    net::SocketAddr,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};
use uringws_load::{
    client::{run, Live, Outcome, Plan},
    scenarios::Hold,
    target::{SourceRange, Target},
};

/// The load generator needs room for its own sockets, whatever limit this
/// test process was started with.
fn room_for_clients(needed: u64) {
    let raised = rlimit::increase_nofile_limit(u64::MAX).expect("raise the soft limit");
    assert!(
        raised >= needed,
        "this test needs an open-files limit of {needed}; the hard limit allows {raised}"
    );
}

/// Holds `connections` to `/echo` for `seconds`.
fn hold(addr: SocketAddr, connections: usize, seconds: f64) -> (Outcome, Duration) {
    let started = Instant::now();
    let plan = Plan {
        targets: vec![Target::parse(&format!("ws://{addr}/echo")).unwrap()],
        sources: Some(SourceRange::parse("127.0.0.2-127.0.0.3").unwrap()),
        first: 0,
        connections,
        rate: 0.0,
        concurrency: 256,
        timeout: Duration::from_secs(5),
        until: Instant::now() + Duration::from_secs_f64(seconds),
    };
    let (outcome, _) = run(
        plan,
        Hold::new(Duration::from_secs(1)),
        Arc::new(Live::default()),
        Arc::new(AtomicBool::new(false)),
    );
    (outcome, started.elapsed())
}

#[test]
fn a_soft_limit_of_1024_is_raised_and_3000_connections_are_held_by_one_worker() {
    room_for_clients(3000 + 100);
    let server = Server::start_with_open_files(Some(1024), None, &[]);
    let (outcome, _) = hold(server.addr, 3000, 4.0);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.alive_at_end, 3000);
    let capacity = server.logged("connection capacity");
    assert_eq!(capacity.len(), 1, "logged once: {capacity:?}");
    assert!(server.logged("accept failed").is_empty());
}

#[test]
fn past_the_capacity_the_limit_leaves_upgrades_get_503_at_once_and_a_few_log_lines() {
    room_for_clients(1500 + 100);
    // A hard limit of 1,200: the worker's file table has 1,200 entries, of
    // which it keeps 75 for handshakes and refusals.
    let server = Server::start_with_open_files(None, Some(1200), &[]);
    let warning = server.logged("connection capacity");
    assert_eq!(warning.len(), 1, "{warning:?}");
    let warning = &warning[0];
    assert!(warning.contains("WARN"), "{warning}");
    for what in [
        "connection capacity 1125",
        "open-files limit (1200)",
        "LimitNOFILE",
    ] {
        assert!(warning.contains(what), "{what} in {warning}");
    }

    let (outcome, took) = hold(server.addr, 1500, 3.0);
    assert_eq!(outcome.alive_at_end, 1125, "{:?}", outcome.errors);
    assert_eq!(
        outcome.errors.get("bad status 503").copied(),
        Some(375),
        "{:?}",
        outcome.errors
    );
    assert!(took < Duration::from_secs(10), "nobody waited: {took:?}");
    // One line per refusal for the first few, then they are counted.
    let refused = server.logged("request refused");
    assert!(
        (1..=10).contains(&refused.len()),
        "{} lines: {refused:?}",
        refused.len()
    );
    assert!(refused[0].contains("status=503"), "{}", refused[0]);
    assert!(refused[0].contains("peer=127.0.0."), "{}", refused[0]);
}
