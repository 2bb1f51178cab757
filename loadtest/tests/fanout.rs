//! The fan-out scenario over real sockets, against broadcast servers built
//! on the engine in this test (faithful, lossy, corrupting, one that drops
//! a subscriber) and against a `uringws.v1` server that refuses or ignores
//! some subscribes (the real `/ws` is in server/tests/fanout.rs); and over
//! two such servers with the publishers on one, figures per target (two
//! real nodes on a bus: server/tests/bus_fanout.rs). Every run is bounded
//! by its ready deadline, duration and drain.

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uringws_engine::protocol::{handshake::Upgrade, CloseCode};
use uringws_engine::Message;
use uringws_engine::{Accept, Conn, ConnRef, Engine, EngineConfig, Handler, Peer, Reject};
use uringws_load::client::{Outcome, Plan};
use uringws_load::fanout::{Fanout, FanoutConfig};
use uringws_load::report::FanoutReport;
use uringws_load::target::Target;

type Id = uringws_engine::ConnId;
type Members = Vec<(Id, ConnRef)>;

/// What a broadcast server does with each message it gets.
#[derive(Clone, Copy, PartialEq)]
enum Relay {
    /// To every other connection.
    Others,
    /// To every connection, the sender too.
    Everyone,
    /// Only every other message (by arrival at the server), to the others.
    EveryOther,
    /// To the others, corrupted: alternately in the header and the filler.
    Corrupt,
    /// To the others, but after this many, not to one connection that has
    /// not published, and 50 later close it: it dies owed about 50.
    StarveThenClose(u64),
}

#[derive(Clone)]
struct Room {
    relay: Relay,
    members: Arc<Mutex<Members>>,
    publishers: Arc<Mutex<BTreeSet<Id>>>,
    /// The connection `StarveThenClose` picked.
    victim: Arc<Mutex<Option<Id>>>,
    /// Server workers that had connections.
    workers: Arc<Mutex<BTreeSet<usize>>>,
    /// Messages the server got, and passed on.
    got: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
    /// When the last connection of the run opened, and when the first
    /// message came.
    all_open_at: Arc<Mutex<Option<Instant>>>,
    first_message_at: Arc<Mutex<Option<Instant>>>,
    /// Connections that make the run whole (for `all_open_at`).
    expected: usize,
}

impl Handler for Room {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }

    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        self.workers.lock().unwrap().insert(conn.id().worker());
        let mut members = self.members.lock().unwrap();
        members.push((conn.id(), conn.handle()));
        if members.len() == self.expected {
            *self.all_open_at.lock().unwrap() = Some(Instant::now());
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        let Message::Binary(data) = message else {
            return;
        };
        let me = conn.id();
        self.publishers.lock().unwrap().insert(me);
        self.first_message_at
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        let n = self.got.fetch_add(1, Ordering::SeqCst);
        let data = match self.relay {
            Relay::EveryOther if n % 2 == 1 => return,
            Relay::Corrupt => {
                let mut bad = data.to_vec();
                // Byte 5 is in the sequence number; the last is filler.
                let at = if n % 2 == 0 { 5 } else { bad.len() - 1 };
                bad[at] ^= 0x40;
                Bytes::from(bad)
            }
            _ => data,
        };
        self.passed.fetch_add(1, Ordering::SeqCst);
        let members = self.members.lock().unwrap();
        let mut victim = self.victim.lock().unwrap();
        if let Relay::StarveThenClose(after) = self.relay {
            if n == after {
                let publishers = self.publishers.lock().unwrap();
                *victim = members
                    .iter()
                    .map(|(id, _)| *id)
                    .find(|id| !publishers.contains(id));
            }
            if n == after + 50 {
                if let Some((_, to)) = members.iter().find(|(id, _)| Some(*id) == *victim) {
                    let _ = to.close(CloseCode(4000), "dropped by the test");
                }
            }
        }
        for (id, to) in members.iter() {
            if (*id != me || self.relay == Relay::Everyone) && Some(*id) != *victim {
                let _ = to.send_binary(data.clone());
            }
        }
    }

    fn close(&mut self, conn: &mut Conn<'_, ()>, _: CloseCode, _: &str) {
        let me = conn.id();
        self.members.lock().unwrap().retain(|(id, _)| *id != me);
    }
}

fn room(relay: Relay) -> (Engine, Room) {
    room_with(relay, EngineConfig::default())
}

fn room_with(relay: Relay, config: EngineConfig) -> (Engine, Room) {
    let room = Room {
        all_open_at: Arc::default(),
        first_message_at: Arc::default(),
        expected: broadcast_config().connections,
        relay,
        members: Arc::default(),
        publishers: Arc::default(),
        victim: Arc::default(),
        workers: Arc::default(),
        got: Arc::default(),
        passed: Arc::default(),
    };
    let shared = room.clone();
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .config(config)
        .start(move |_| shared.clone())
        .unwrap();
    (engine, room)
}

fn plan(addr: SocketAddr, path: &str) -> Plan {
    Plan {
        targets: vec![Target::parse(&format!("ws://{addr}{path}")).unwrap()],
        sources: None,
        first: 0,
        connections: 0,
        at_once: 0,
        rate: 0.0,
        concurrency: 64,
        timeout: Duration::from_secs(3),
        until: Instant::now(),
    }
}

/// 20 connections, 4 publishing, 400 messages in 1 s (100 each), over 2
/// client workers.
fn broadcast_config() -> FanoutConfig {
    FanoutConfig {
        rate: 400.0,
        duration: Duration::from_secs(1),
        drain: Duration::from_millis(1500),
        ready_timeout: Duration::from_secs(5),
        ..FanoutConfig::broadcast(20, 4)
    }
}

fn run(config: FanoutConfig, addr: SocketAddr, path: &str) -> (Outcome, FanoutReport) {
    let fanout = Fanout::new(config).unwrap();
    let started = Instant::now();
    let result = fanout
        .run(plan(addr, path), 2, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded: {:?}",
        started.elapsed()
    );
    result
}

fn stop(engine: Engine) {
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn broadcast_reaches_every_other_connection() {
    let (engine, room) = room(Relay::Others);
    let (outcome, r) = run(broadcast_config(), engine.local_addrs()[0], "/");
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.ready_at_start, 20);
    assert_eq!(r.publishes_sent, 400, "4 publishers × 100 on schedule");
    assert_eq!(room.got.load(Ordering::SeqCst), 400);
    assert_eq!(r.deliveries_expected, 400 * 19);
    assert_eq!(r.deliveries_received, 400 * 19);
    assert_eq!(r.reach_percent, Some(100.0));
    assert_eq!(
        (
            r.lost,
            r.duplicates,
            r.reordered,
            r.self_deliveries,
            r.malformed
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!((r.dead_subscribers, r.to_dead_subscribers), (0, 0));
    let latency = r.latency.clone().expect("latency recorded");
    assert_eq!(latency.count, 400 * 19);
    assert!(latency.p50_ms < 100.0, "{latency:?}");
    assert!(r.deliveries_per_s > 1000.0, "{}", r.deliveries_per_s);
    assert!(r.clean());
    assert_eq!(
        *room.workers.lock().unwrap(),
        BTreeSet::from([0, 1]),
        "connections on both server workers"
    );
    stop(engine);
}

#[test]
fn a_server_passing_every_other_message_shows_exactly_that_loss() {
    let (engine, room) = room(Relay::EveryOther);
    let (outcome, r) = run(broadcast_config(), engine.local_addrs()[0], "/");
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(r.publishes_sent, 400);
    assert_eq!(room.passed.load(Ordering::SeqCst), 200);
    assert_eq!(r.deliveries_expected, 400 * 19);
    assert_eq!(r.deliveries_received, 200 * 19);
    assert_eq!(r.lost, 200 * 19);
    assert_eq!(r.reach_percent, Some(50.0));
    // Missing messages are gaps, not reordering.
    assert_eq!(
        (r.duplicates, r.reordered, r.to_dead_subscribers),
        (0, 0, 0)
    );
    assert!(!r.clean());
    stop(engine);
}

#[test]
fn a_server_echoing_to_the_sender_too_counts_self_deliveries_apart() {
    let (engine, _room) = room(Relay::Everyone);
    let (_, r) = run(broadcast_config(), engine.local_addrs()[0], "/");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.self_deliveries, 400);
    assert_eq!(r.deliveries_received, r.deliveries_expected);
    assert_eq!(r.deliveries_expected, 400 * 19);
    assert!(r.clean());
    stop(engine);
}

#[test]
fn corrupted_payloads_are_counted_failures_not_deliveries() {
    let (engine, _room) = room(Relay::Corrupt);
    let (outcome, r) = run(broadcast_config(), engine.local_addrs()[0], "/");
    // Nobody was closed for it: every receiver stays and counts.
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(r.publishes_sent, 400);
    assert_eq!(r.malformed, 400 * 19);
    assert_eq!(r.errors["malformed delivery: bad check word"], 200 * 19);
    assert_eq!(r.errors["malformed delivery: filler corrupted"], 200 * 19);
    assert_eq!(r.deliveries_received, 0);
    assert_eq!(r.lost, 400 * 19);
    assert!(r.latency.is_none());
    stop(engine);
}

#[test]
fn a_subscriber_dropped_mid_run_is_owed_its_misses_apart_from_loss() {
    let (engine, _room) = room(Relay::StarveThenClose(100));
    let (outcome, r) = run(broadcast_config(), engine.local_addrs()[0], "/");
    assert_eq!(
        outcome.errors,
        [("server closed (4000)".to_string(), 1)].into(),
        "{:?}",
        outcome.errors
    );
    assert_eq!(r.publishes_sent, 400, "the dropped one did not publish");
    assert_eq!(r.dead_subscribers, 1);
    // Publishes before its death were owed to 19, after it to 18.
    let before_death = r.deliveries_expected - 400 * 18;
    assert!((150..=250).contains(&before_death), "{before_death}");
    // It got the first ~100, not the ~50 it was starved of, nor those
    // still on their way when the close came: owed, not lost.
    assert!(
        (50..=before_death - 95).contains(&r.to_dead_subscribers),
        "{} of {before_death}",
        r.to_dead_subscribers
    );
    assert_eq!(r.lost, 0);
    assert_eq!(
        r.deliveries_received + r.to_dead_subscribers,
        r.deliveries_expected
    );
    stop(engine);
}

// ---------------------------------------------------------------------------
// A misbehaving `uringws.v1` server: subscribe → ack, binary
// `[n][topic][payload]` → every subscriber of the topic, except for a topic
// whose subscribes it refuses and one whose it never answers (the real
// server always answers). The real `/ws` is driven by
// server/tests/fanout.rs.

#[derive(Clone, Default)]
struct StandIn {
    topics: Arc<Mutex<HashMap<String, Members>>>,
    /// A topic whose subscribe gets `forbidden`, one whose gets no answer.
    refuse: Option<&'static str>,
    ignore: Option<&'static str>,
    /// Publishes it got.
    publishes: Arc<AtomicU64>,
}

impl Handler for StandIn {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        match message {
            Message::Text(text) => {
                let request: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                let (topic, id) = (request["topic"].as_str().unwrap(), &request["id"]);
                if Some(topic) == self.refuse {
                    conn.send_text(format!(
                        r#"{{"type":"error","id":{id},"code":"forbidden","message":"no"}}"#
                    ));
                } else if Some(topic) != self.ignore {
                    self.topics
                        .lock()
                        .unwrap()
                        .entry(topic.to_string())
                        .or_default()
                        .push((conn.id(), conn.handle()));
                    conn.send_text(format!(r#"{{"type":"ack","id":{id}}}"#));
                }
            }
            Message::Binary(frame) => {
                self.publishes.fetch_add(1, Ordering::SeqCst);
                let n = frame[0] as usize;
                let topic = std::str::from_utf8(&frame[1..1 + n]).unwrap();
                if let Some(subscribers) = self.topics.lock().unwrap().get(topic) {
                    for (_, to) in subscribers {
                        let _ = to.send_binary(frame.clone());
                    }
                }
            }
        }
    }
}

/// A run held 1.5 s once all are ready, pinged every 200 ms meanwhile.
fn held_config() -> FanoutConfig {
    FanoutConfig {
        hold: Duration::from_millis(1500),
        ping_interval: Duration::from_millis(200),
        ..broadcast_config()
    }
}

#[test]
fn a_hold_keeps_publishing_back_while_pings_keep_every_connection() {
    let (engine, room) = room(Relay::Others);
    let (outcome, r) = run(held_config(), engine.local_addrs()[0], "/");
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let all_open = room.all_open_at.lock().unwrap().expect("all 20 opened");
    let first = room
        .first_message_at
        .lock()
        .unwrap()
        .expect("something published");
    let waited = first.duration_since(all_open);
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_millis(2500),
        "publishing began {waited:?} after the last connection opened, not after the 1.5 s hold"
    );
    // 20 connections pinged every 200 ms through a hold of 1.5 s and 1 s
    // of publishing: at least 5 rounds each, every one answered.
    let pongs = outcome.counts.get("pongs").copied().unwrap_or(0);
    assert!(pongs >= 20 * 5, "{pongs} pongs");
    assert_eq!(r.deliveries_received, 400 * 19);
    assert_eq!((r.lost, r.dead_subscribers), (0, 0));
    stop(engine);
}

#[test]
fn a_server_that_stops_answering_pings_loses_every_connection_counted() {
    // Without auto-pong the room answers no ping: every connection misses
    // its first pong, during the hold, and is dropped and counted.
    let config = EngineConfig {
        auto_pong: false,
        ..EngineConfig::default()
    };
    let (engine, _room) = room_with(Relay::Others, config);
    let (outcome, r) = run(held_config(), engine.local_addrs()[0], "/");
    assert_eq!(outcome.counts.get("pongs"), None);
    assert_eq!(
        r.errors.get("ping: no pong within two intervals"),
        Some(&20),
        "{:?}",
        r.errors
    );
    assert_eq!(r.dead_subscribers, 20);
    assert_eq!(r.deliveries_received, 0);
    stop(engine);
}

fn stand_in(refuse: Option<&'static str>, ignore: Option<&'static str>) -> Engine {
    stand_in_watched(StandIn {
        refuse,
        ignore,
        ..StandIn::default()
    })
    .0
}

/// A stand-in whose state the test can read (its subscribers, publishes).
fn stand_in_watched(handler: StandIn) -> (Engine, StandIn) {
    let watched = handler.clone();
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .start(move |_| handler.clone())
        .unwrap();
    (engine, watched)
}

impl StandIn {
    fn subscribers(&self) -> usize {
        self.topics.lock().unwrap().values().map(Vec::len).sum()
    }
}

/// 2 publishers, 10 subscribers over t0..t2 (4, 3 and 3 of them), 300
/// messages in 1 s: each publisher sends 150, 50 to each topic.
fn uringws_config() -> FanoutConfig {
    FanoutConfig {
        rate: 300.0,
        duration: Duration::from_secs(1),
        drain: Duration::from_millis(1500),
        ready_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_millis(700),
        ..FanoutConfig::uringws(2, 10, 3)
    }
}

#[test]
fn uringws_refused_and_unanswered_subscribes_fail_by_reason() {
    let engine = stand_in(Some("t1"), Some("t2"));
    let (outcome, r) = run(uringws_config(), engine.local_addrs()[0], "/ws");
    // t1's 3 subscribers get an error, t2's 3 never an ack; publishing
    // waits for both verdicts, then runs with the 2 publishers and t0's 4.
    assert_eq!(outcome.errors["subscribe: error forbidden"], 3);
    assert_eq!(r.errors["subscribe: no ack in time"], 3);
    assert_eq!(r.ready_at_start, 2 + 4);
    assert_eq!(r.publishes_sent, 300);
    assert_eq!(r.deliveries_expected, 100 * 4, "only t0 has subscribers");
    assert_eq!(r.deliveries_received, 100 * 4);
    assert_eq!(r.lost, 0);
    stop(engine);
}

// ---------------------------------------------------------------------------
// Several targets: publishers on chosen ones, receivers on all, figures per
// target.

fn run_over(config: FanoutConfig, urls: &[String]) -> (Outcome, FanoutReport) {
    let plan = Plan {
        targets: urls.iter().map(|u| Target::parse(u).unwrap()).collect(),
        ..plan("127.0.0.1:1".parse().unwrap(), "/ws")
    };
    let started = Instant::now();
    let result = Fanout::new(config)
        .unwrap()
        .run(plan, 2, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(8), "bounded");
    result
}

fn ws_url(engine: &Engine) -> String {
    format!("ws://{}/ws", engine.local_addrs()[0])
}

/// [`uringws_config`] with the publishers on target 0: of the 10
/// subscribers, 5 go to each of two targets (t0, t1, t2: 2, 1, 2 on target
/// 0 and 2, 2, 1 on target 1), so each target is owed 100 × 5.
fn publishing_on_the_first() -> FanoutConfig {
    FanoutConfig {
        publish_to: vec![0],
        ..uringws_config()
    }
}

#[test]
fn publishers_on_one_of_two_unjoined_servers_reach_only_its_subscribers() {
    let (a, on_a) = stand_in_watched(StandIn::default());
    let (b, on_b) = stand_in_watched(StandIn::default());
    let (outcome, r) = run_over(publishing_on_the_first(), &[ws_url(&a), ws_url(&b)]);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.publishes_sent, 300);
    // Where the connections went: the publishers to A only, the
    // subscribers half and half.
    assert_eq!(on_a.publishes.load(Ordering::SeqCst), 300);
    assert_eq!(on_b.publishes.load(Ordering::SeqCst), 0);
    assert_eq!((on_a.subscribers(), on_b.subscribers()), (5, 5));

    assert_eq!(r.per_target.len(), 2);
    let (ta, tb) = (&r.per_target[0], &r.per_target[1]);
    assert_eq!((ta.target, ta.url.as_str()), (0, ws_url(&a).as_str()));
    assert_eq!((tb.target, tb.url.as_str()), (1, ws_url(&b).as_str()));
    assert_eq!((ta.publishers, ta.subscribers), (2, 5));
    assert_eq!((tb.publishers, tb.subscribers), (0, 5));
    // A delivered everything to its own subscribers...
    assert_eq!(ta.deliveries_expected, 500);
    assert_eq!(ta.deliveries_received, 500);
    assert_eq!(ta.reach_percent, Some(100.0));
    assert_eq!((ta.lost, ta.duplicates, ta.reordered), (0, 0, 0));
    assert_eq!(ta.latency.as_ref().map(|l| l.count), Some(500));
    assert!(ta.clean());
    // ...and B, with nothing between them, nothing.
    assert_eq!(tb.deliveries_expected, 500);
    assert_eq!(tb.deliveries_received, 0);
    assert_eq!(tb.reach_percent, Some(0.0));
    assert_eq!(tb.lost, 500);
    assert!(tb.latency.is_none());
    assert!(!tb.clean());
    // The whole run is their sum, and fails.
    assert_eq!(r.deliveries_expected, 1000);
    assert_eq!(r.deliveries_received, 500);
    assert_eq!(r.lost, 500);
    assert!(!r.clean());
    stop(a);
    stop(b);
}

#[test]
fn one_server_named_twice_reaches_both_targets_in_full() {
    let (engine, server) = stand_in_watched(StandIn::default());
    let url = ws_url(&engine);
    let (outcome, r) = run_over(publishing_on_the_first(), &[url.clone(), url]);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(server.publishes.load(Ordering::SeqCst), 300);
    assert_eq!(server.subscribers(), 10);
    for (k, t) in r.per_target.iter().enumerate() {
        assert_eq!(t.target, k);
        assert_eq!(t.subscribers, 5, "target {k}");
        assert_eq!(t.deliveries_expected, 500, "target {k}");
        assert_eq!(t.deliveries_received, 500, "target {k}");
        assert_eq!((t.lost, t.duplicates, t.reordered), (0, 0, 0), "target {k}");
        assert!(t.clean(), "target {k}");
    }
    assert_eq!(r.per_target.len(), 2);
    assert_eq!(r.deliveries_received, 1000);
    assert!(r.clean());
    stop(engine);
}

#[test]
fn publish_targets_out_of_range_are_refused_before_connecting() {
    let config = FanoutConfig {
        publish_to: vec![2],
        ..uringws_config()
    };
    let urls = [
        "ws://127.0.0.1:1/ws".to_string(),
        "ws://127.0.0.1:2/ws".to_string(),
    ];
    let plan = Plan {
        targets: urls.iter().map(|u| Target::parse(u).unwrap()).collect(),
        ..plan("127.0.0.1:1".parse().unwrap(), "/ws")
    };
    let refused = Fanout::new(config)
        .unwrap()
        .run(plan, 2, Arc::new(AtomicBool::new(false)));
    let why = refused.err().expect("refused");
    assert!(why.contains("--publish-to 2: there are 2 URL(s)"), "{why}");
}

/// The binary over two targets: its exit status, its per-target lines and
/// JSON.
fn load_over(urls: &[String], name: &str) -> (bool, String, serde_json::Value) {
    let json =
        std::env::temp_dir().join(format!("uringws-load-{name}-{}.json", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_uringws-load"))
        .args(["--quiet", "--workers", "2", "--timeout", "3", "--json"])
        .arg(&json)
        .arg("fanout")
        .args(urls)
        .args([
            "--mode",
            "uringws",
            "--publishers",
            "2",
            "--subscribers",
            "10",
        ])
        .args(["--topics", "3", "--rate", "300", "--duration", "1s"])
        .args(["--drain", "1500ms", "--publish-to", "0"])
        .output()
        .expect("uringws-load runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let report = std::fs::read_to_string(&json)
        .map(|j| serde_json::from_str(&j).expect("JSON"))
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(json);
    (output.status.success(), text, report)
}

#[test]
fn the_binary_reports_each_target_and_fails_on_the_unreached_one() {
    let (a, b) = (stand_in(None, None), stand_in(None, None));
    let urls = [ws_url(&a), ws_url(&b)];
    let (ok, text, report) = load_over(&urls, "two-targets");
    assert!(!ok, "target 1 got nothing, so the run failed: {text}");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        format!("target 0: {}", urls[0]),
        format!("target 1: {}", urls[1]),
        "target pub sub expected received reach % lost dup reord p50 ms p99 ms max ms".into(),
        "0 2 5 500 500 100.000 0 0 0".into(),
        "1 0 5 500 0 0.000 500 0 0 - - -".into(),
    ] {
        assert!(words(&text).contains(&line), "{line}\n{text}");
    }
    let per_target = report["fanout"]["per_target"]
        .as_array()
        .expect("per_target");
    assert_eq!(per_target.len(), 2);
    assert_eq!(per_target[0]["url"], urls[0].as_str());
    assert_eq!(per_target[0]["deliveries_received"], 500);
    assert_eq!(per_target[0]["reach_percent"], 100.0);
    assert_eq!(per_target[0]["latency"]["count"], 500);
    assert_eq!(per_target[1]["deliveries_received"], 0);
    assert_eq!(per_target[1]["lost"], 500);
    // The whole run's fields stay as they were: the sums.
    assert_eq!(report["fanout"]["deliveries_expected"], 1000);
    assert_eq!(report["fanout"]["lost"], 500);
    assert_eq!(report["options"]["publish_to"], serde_json::json!([0]));

    // The same server twice: both full, and the run passes.
    let twice = [urls[0].clone(), urls[0].clone()];
    let (ok, text, report) = load_over(&twice, "one-target-twice");
    assert!(ok, "{text}");
    for t in report["fanout"]["per_target"]
        .as_array()
        .expect("per_target")
    {
        assert_eq!(t["deliveries_received"], 500, "{t}");
        assert_eq!(t["lost"], 0, "{t}");
    }
    stop(a);
    stop(b);
}

#[test]
fn the_binary_refuses_publish_targets_that_do_not_fit() {
    let refused = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_uringws-load"))
            .args([
                "--quiet",
                "fanout",
                "ws://127.0.0.1:1/ws",
                "ws://127.0.0.1:2/ws",
            ])
            .args(["--mode", "uringws"])
            .args(args)
            .output()
            .expect("uringws-load runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let why = refused(&["--publishers", "2", "--publish-to", "2"]);
    assert!(
        why.contains("--publish-to 2: there are 2 URL(s), numbered from 0 to 1"),
        "{why}"
    );
    let why = refused(&["--publishers", "2", "--publish-to", "1,1"]);
    assert!(why.contains("--publish-to 1 is given twice"), "{why}");
    let why = refused(&["--publish-to", "x"]);
    assert!(
        why.contains("invalid value 'x' for '--publish-to <N>'"),
        "{why}"
    );
    let why = refused(&[
        "--publishers",
        "1",
        "--publish-to",
        "0",
        "--publish-to",
        "1",
    ]);
    assert!(why.contains("names 2 targets for 1 publisher(s)"), "{why}");
}
