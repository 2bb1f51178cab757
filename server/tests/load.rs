//! Every `uringws-load` scenario against the real binary's `/echo` (the
//! fan-out scenario is in fanout.rs): the load generator and the server
//! checked against each other, short and bounded.

mod common;

use common::Server;
use std::{
    net::SocketAddr,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};
use uringws_load::{
    client::{run, Live, Outcome, Plan, Scenario},
    scenarios::{Churn, Connect, Echo, Hold},
    target::{SourceRange, Target},
};

fn plan(addr: SocketAddr, connections: usize, rate: f64, seconds: f64) -> Plan {
    Plan {
        targets: vec![Target::parse(&format!("ws://{addr}/echo")).unwrap()],
        // Both source-address code paths run: bind first, then connect.
        sources: Some(SourceRange::parse("127.0.0.2-127.0.0.3").unwrap()),
        first: 0,
        connections,
        at_once: connections,
        rate,
        concurrency: 64,
        timeout: Duration::from_secs(3),
        until: Instant::now() + Duration::from_secs_f64(seconds),
    }
}

fn go<S: Scenario>(plan: Plan, scenario: S) -> (Outcome, S) {
    let started = Instant::now();
    let result = run(
        plan,
        scenario,
        Arc::new(Live::default()),
        Arc::new(AtomicBool::new(false)),
    );
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
    result
}

fn count(outcome: &Outcome, name: &str) -> u64 {
    outcome.counts.get(name).copied().unwrap_or(0)
}

#[test]
fn connect_hold_echo_and_churn_against_the_binary() {
    let server = Server::start(&[]);
    let addr = server.addr;

    let (outcome, _) = go(plan(addr, 200, 0.0, 3.0), Connect);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(count(&outcome, "connections opened"), 200);
    assert_eq!(outcome.handshake.count(), 200);

    let (outcome, hold) = go(
        plan(addr, 100, 0.0, 1.5),
        Hold::new(Duration::from_millis(300)),
    );
    assert_eq!(outcome.alive_at_end, 100, "{:?}", outcome.errors);
    assert_eq!(hold.pings.missed, 0);

    let (outcome, echo) = go(plan(addr, 20, 0.0, 1.0), Echo::new(1000, true, 4));
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(echo.echoed > 100, "{}", echo.echoed);
    let (outcome, echo) = go(plan(addr, 10, 0.0, 1.2), Echo::open_loop(64, false, 100.0));
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(echo.echoed > 500, "{}", echo.echoed);

    let (outcome, _) = go(
        plan(addr, 30, 30.0, 3.0),
        Churn::new(Duration::from_millis(200)),
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(count(&outcome, "connections opened"), 30);
    assert_eq!(count(&outcome, "connections closed"), 30);
}
