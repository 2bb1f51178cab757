//! Every scenario against the project's own engine, and every kind of bad
//! server the issue names, over real sockets. Each run is bounded by its
//! plan's end and handshake timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uringws_engine::Engine;
use uringws_load::client::{run, Live, Outcome, Plan, Scenario};
use uringws_load::scenarios::{Connect, Echo, Hold};
use uringws_load::target::{SourceRange, Target};

mod common;
use common::EchoHandler;

fn server() -> Engine {
    Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .start(|_| EchoHandler)
        .unwrap()
}

fn plan(addr: SocketAddr, connections: usize, seconds: f64) -> Plan {
    Plan {
        targets: vec![Target::parse(&format!("ws://{addr}/echo")).unwrap()],
        sources: None,
        first: 0,
        connections,
        at_once: connections,
        rate: 0.0,
        concurrency: 64,
        timeout: Duration::from_secs(2),
        until: Instant::now() + Duration::from_secs_f64(seconds),
    }
}

fn go<S: Scenario>(plan: Plan, scenario: S) -> (Outcome, S) {
    run(
        plan,
        scenario,
        Arc::new(Live::default()),
        Arc::new(AtomicBool::new(false)),
    )
}

fn count(outcome: &Outcome, name: &str) -> u64 {
    outcome.counts.get(name).copied().unwrap_or(0)
}

#[test]
fn connect_storm_upgrades_and_closes_every_connection() {
    let engine = server();
    let (outcome, _) = go(plan(engine.local_addrs()[0], 300, 3.0), Connect);
    assert_eq!(
        count(&outcome, "connections opened"),
        300,
        "{:?}",
        outcome.errors
    );
    assert_eq!(count(&outcome, "connections closed"), 300);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.handshake.count(), 300);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn hold_keeps_connections_alive_and_answered() {
    let engine = server();
    let (outcome, hold) = go(
        plan(engine.local_addrs()[0], 200, 1.5),
        Hold::new(Duration::from_millis(300)),
    );
    assert_eq!(outcome.alive_at_end, 200, "{:?}", outcome.errors);
    assert!(count(&outcome, "pongs") >= 200, "{:?}", outcome.counts);
    assert_eq!(hold.pings.missed, 0);
    let stats: usize = engine
        .handle()
        .stats()
        .iter()
        .map(|s| s.connections())
        .sum();
    assert_eq!(stats, 0, "the worker closed its sockets when it ended");
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn echo_checks_every_message() {
    let engine = server();
    let addr = engine.local_addrs()[0];
    let (outcome, echo) = go(plan(addr, 20, 1.0), Echo::new(1000, true, 4));
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(echo.echoed > 100, "{}", echo.echoed);
    assert_eq!(echo.round_trip.count(), echo.echoed);
    let (outcome, echo) = go(plan(addr, 5, 0.5), Echo::new(70_000, false, 1));
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(echo.echoed > 0);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn source_addresses_are_used() {
    let engine = server();
    let mut p = plan(engine.local_addrs()[0], 30, 2.0);
    p.sources = Some(SourceRange::parse("127.0.0.2-127.0.0.4").unwrap());
    let (outcome, _) = go(p, Connect);
    assert_eq!(
        count(&outcome, "connections opened"),
        30,
        "{:?}",
        outcome.errors
    );
    engine.shutdown();
    engine.join().unwrap();
}

/// A TCP server that answers every connection with `reply` and keeps it
/// open (or closes it at once when `reply` is empty), on its own thread,
/// for `lifetime`.
fn fake_server(reply: impl Fn(&str) -> Vec<u8> + Send + 'static, lifetime: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + lifetime;
        let mut held = Vec::new();
        while Instant::now() < end {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(1)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let n = stream.read(&mut buf).unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    let answer = reply(&request);
                    if !answer.is_empty() {
                        let _ = stream.write_all(&answer);
                        held.push(stream);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

fn only_error(outcome: &Outcome) -> String {
    assert_eq!(
        count(outcome, "connections opened"),
        0,
        "{:?}",
        outcome.counts
    );
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    outcome.errors.keys().next().unwrap().clone()
}

#[test]
fn unreachable_server_is_refused() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (outcome, _) = go(plan(addr, 3, 3.0), Connect);
    assert_eq!(only_error(&outcome), "refused");
    assert_eq!(outcome.errors["refused"], 3);
}

#[test]
fn plain_http_server_is_a_bad_status() {
    let addr = fake_server(
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
        Duration::from_secs(3),
    );
    let (outcome, _) = go(plan(addr, 2, 3.0), Connect);
    assert_eq!(only_error(&outcome), "bad status 200");
}

#[test]
fn server_that_closes_at_once() {
    let addr = fake_server(|_| Vec::new(), Duration::from_secs(3));
    let (outcome, _) = go(plan(addr, 2, 3.0), Connect);
    let why = only_error(&outcome);
    assert!(why == "closed by server" || why == "reset", "{why}");
}

#[test]
fn wrong_accept_value() {
    let addr = fake_server(
        |_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .to_vec()
        },
        Duration::from_secs(3),
    );
    let (outcome, _) = go(plan(addr, 2, 3.0), Connect);
    assert_eq!(only_error(&outcome), "bad accept");
}

#[test]
fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut p = plan(addr, 2, 3.0);
    p.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let (outcome, _) = go(p, Connect);
    assert_eq!(only_error(&outcome), "timeout");
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(listener);
}

#[test]
fn churn_opens_and_closes_at_the_rate() {
    let engine = server();
    let mut p = plan(engine.local_addrs()[0], 40, 2.0);
    p.rate = 40.0;
    let started = Instant::now();
    let (outcome, _) = go(
        p,
        uringws_load::scenarios::Churn::new(Duration::from_millis(200)),
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(count(&outcome, "connections opened"), 40);
    assert_eq!(count(&outcome, "connections closed"), 40);
    // 40 at 40/s take about a second: the rate is kept, not exceeded.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn open_loop_echo_keeps_its_schedule() {
    let engine = server();
    // 10 connections × 100 messages/s for about 1 s: ~1000 messages sent
    // on schedule, each answered and checked.
    let (outcome, echo) = go(
        plan(engine.local_addrs()[0], 10, 1.2),
        Echo::open_loop(64, false, 100.0),
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    // Fewer if connecting was slow on a busy machine, never more than
    // the schedule allows.
    assert!((500..=1300).contains(&echo.echoed), "{}", echo.echoed);
    let p = echo.round_trip.percentiles().unwrap();
    assert!(p.p50_ms < 50.0, "{p:?}");
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn hold_drops_connections_that_stop_answering_pings() {
    // Upgrades properly, then never answers anything.
    let addr = fake_server(
        |request| {
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or("")
                .trim()
                .to_string();
            let accept = uringws_engine::protocol::handshake::accept_key(key.as_bytes());
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: {}\r\n\r\n",
                std::str::from_utf8(&accept).unwrap()
            )
            .into_bytes()
        },
        Duration::from_secs(4),
    );
    let (outcome, hold) = go(plan(addr, 3, 1.5), Hold::new(Duration::from_millis(100)));
    assert_eq!(
        count(&outcome, "connections opened"),
        3,
        "{:?}",
        outcome.errors
    );
    assert_eq!(hold.pings.missed, 3);
    assert_eq!(outcome.alive_at_end, 0);
}
