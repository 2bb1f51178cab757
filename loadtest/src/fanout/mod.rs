//! `fanout`: publishers and subscribers through a pub/sub server; delivery
//! latency, reach, loss, duplicates and reordering.
//!
//! Two modes:
//! - [`Mode::Broadcast`], for any server that sends every message of one
//!   connection to all the others: all connections receive, some publish.
//! - [`Mode::Uringws`], the `uringws.v1` protocol of `docs/protocol.md`:
//!   subscribers send `subscribe` and wait for its `ack`; publishers are
//!   connections of their own and publish binary frames `[n][topic][payload]`
//!   round robin over the topics `t0..t{K-1}`.
//!
//! The run has phases shared by every worker ([`Fanout`]):
//! 1. *Ready*: connections open (and subscribe). Each one that becomes
//!    ready joins; publishing starts when every connection has joined or
//!    given up, or at the ready deadline. A connection ready later is a
//!    failure and is closed: the counted set never changes but by deaths.
//! 2. *Publishing* for the duration, open loop: message `k` of publisher `j`
//!    is due at `start + (j + k·P)/R` and carries that time, so a stall
//!    shows as latency rather than as fewer messages.
//! 3. *Drain*: no more publishes; what has not arrived by its end is lost.
//!
//! Counting across workers: each topic has one atomic word per target
//! (URL) holding the receivers alive on it there (high 24 bits) and the
//! messages published to it (low 40 bits). A publish adds one to each of
//! its topic's words and learns, in the same atomic step, how many
//! receivers it owes on that target; a receiver that dies takes itself off
//! its word and learns, in the same step, how many messages had been
//! published to its topic until then. So "expected" is exact even while
//! receivers die, and what a dead receiver missed is known exactly and
//! reported apart from loss. Everything else (received, duplicates,
//! latency) is counted per worker without sharing and added up at the
//! end. All of it is counted per target, where the receiver is, and the
//! whole run is the sum: with several nodes behind one bus, each node's
//! reach shows on its own.
//!
//! Duplicates and reordering: [`order`]. The payload and frames: [`wire`].

mod config;
pub mod order;
pub mod wire;

pub use config::{topic_name, FanoutConfig, Mode, MAX_CONNECTIONS};

use crate::client::{self, Live, Outcome, Plan, Scenario, Traffic};
use crate::outbox::Outbox;
use crate::report::{FanoutReport, Latency, TargetReport};
use crate::scenarios::Pings;
use order::{Arrival, Pair};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use uringws_protocol::{Message, OpCode};
use wire::{
    answer, filler, read_payload, split_topic_frame, write_payload, write_topic_frame, Answer,
    Stamp,
};

const ALIVE_SHIFT: u32 = 40;
const PUBLISHED: u64 = (1 << ALIVE_SHIFT) - 1;

/// The process's CLOCK_MONOTONIC, read once and then followed through
/// `Instant` (the same clock on Linux), so the times the loop already has
/// convert without a call per message.
#[derive(Clone, Copy)]
struct Clock {
    at: Instant,
    ns: u64,
}

impl Clock {
    fn now() -> Clock {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        Clock {
            at: Instant::now(),
            ns: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        self.ns + t.saturating_duration_since(self.at).as_nanos() as u64
    }
}

/// Who has joined before publishing started.
#[derive(Default)]
struct Gate {
    joined: u64,
    gave_up: u64,
    /// [`StartHold`]s not released yet: publishing waits for them too.
    holds: u64,
    started: bool,
}

/// What the receivers on one target were owed and got, and the
/// connections planned there: one worker's count, added up at the end.
#[derive(Default)]
struct Deliveries {
    receivers: u64,
    publishers: u64,
    expected: u64,
    received: u64,
    duplicates: u64,
    reordered: u64,
    unchecked: u64,
    self_deliveries: u64,
    malformed: u64,
    dead: u64,
    to_dead: u64,
    latency: Latency,
}

impl Deliveries {
    fn merge(&mut self, other: &Deliveries) {
        self.receivers += other.receivers;
        self.publishers += other.publishers;
        self.expected += other.expected;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.unchecked += other.unchecked;
        self.self_deliveries += other.self_deliveries;
        self.malformed += other.malformed;
        self.dead += other.dead;
        self.to_dead += other.to_dead;
        self.latency.merge(&other.latency);
    }

    /// The figures the report gives, for the whole run or one target.
    fn report(&self, target: usize, url: &str) -> TargetReport {
        TargetReport {
            target,
            url: url.to_string(),
            publishers: self.publishers,
            subscribers: self.receivers,
            deliveries_expected: self.expected,
            deliveries_received: self.received,
            reach_percent: (self.expected > 0)
                .then(|| self.received as f64 * 100.0 / self.expected as f64),
            lost: self
                .expected
                .saturating_sub(self.received)
                .saturating_sub(self.to_dead),
            dead_subscribers: self.dead,
            to_dead_subscribers: self.to_dead,
            duplicates: self.duplicates,
            reordered: self.reordered,
            reordered_unchecked: self.unchecked,
            self_deliveries: self.self_deliveries,
            malformed: self.malformed,
            latency: self.latency.percentiles(),
        }
    }
}

/// Per-worker counts, added up at the end.
#[derive(Default)]
struct Tally {
    publishes: u64,
    /// By target index: where each receiver is, not where the publisher
    /// was.
    targets: Vec<Deliveries>,
    errors: BTreeMap<String, u64>,
    /// All of `errors` together, for the per-second series.
    error_count: u64,
    last_delivery_ns: u64,
}

impl Tally {
    fn new(targets: usize) -> Tally {
        Tally {
            targets: (0..targets).map(|_| Deliveries::default()).collect(),
            ..Tally::default()
        }
    }

    fn received(&self) -> u64 {
        self.targets.iter().map(|d| d.received).sum()
    }

    fn error(&mut self, why: &str) {
        self.error_count += 1;
        match self.errors.get_mut(why) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(why.to_string(), 1);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.publishes += other.publishes;
        if self.targets.len() < other.targets.len() {
            self.targets
                .resize_with(other.targets.len(), Deliveries::default);
        }
        for (mine, theirs) in self.targets.iter_mut().zip(&other.targets) {
            mine.merge(theirs);
        }
        self.error_count += other.error_count;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
    }
}

/// The run's targets, fixed by the first worker's plan: their URLs, and
/// the topic words.
struct Layout {
    urls: Vec<String>,
    /// Per topic and target: receivers alive there << 40 | messages
    /// published to the topic. Topic `t`'s words are `t·targets..`, one per
    /// target.
    words: Box<[AtomicU64]>,
}

impl Layout {
    fn new(urls: Vec<String>, topics: usize) -> Layout {
        let targets = urls.len().max(1);
        Layout {
            words: (0..topics * targets).map(|_| AtomicU64::new(0)).collect(),
            urls,
        }
    }

    /// At least 1: a plan without targets (a test without sockets) counts
    /// as one.
    fn targets(&self) -> usize {
        self.urls.len().max(1)
    }

    fn words(&self, topic: usize) -> &[AtomicU64] {
        let n = self.targets();
        &self.words[topic * n..(topic + 1) * n]
    }
}

/// Where the run is, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for connections (and subscriptions): this many ready.
    Ready(u64),
    /// All ready, idle for the configured hold.
    Holding,
    Publishing,
    Draining,
    Over,
}

struct Shared {
    config: FanoutConfig,
    clock: Clock,
    created: Instant,
    gate: Mutex<Gate>,
    /// When publishing began (ns, CLOCK_MONOTONIC); 0 until then.
    start_ns: AtomicU64,
    /// Set by the first worker made ([`Fanout::worker`]).
    layout: OnceLock<Arc<Layout>>,
    topic_names: Vec<Vec<u8>>,
    filler: Vec<u8>,
    /// Deliveries so far, for the progress line (each worker adds its own
    /// once per loop turn, not per message).
    delivered: AtomicU64,
    totals: Mutex<Tally>,
    /// A worker has handed in its tally: the run is over.
    finished: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked leaves counts that are still worth reporting.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn total(&self) -> u64 {
        self.config.connections as u64
    }

    /// Joins connection's receiver (if any, with its topic word) to the
    /// counted set, unless publishing has started.
    fn join(&self, word: Option<&AtomicU64>) -> bool {
        let mut gate = lock(&self.gate);
        if gate.started {
            return false;
        }
        if let Some(word) = word {
            word.fetch_add(1 << ALIVE_SHIFT, Ordering::AcqRel);
        }
        gate.joined += 1;
        self.start_if_settled(&mut gate);
        true
    }

    fn give_up(&self) {
        let mut gate = lock(&self.gate);
        gate.gave_up += 1;
        self.start_if_settled(&mut gate);
    }

    fn start_if_settled(&self, gate: &mut Gate) {
        if gate.holds == 0 && gate.joined + gate.gave_up >= self.total() {
            self.start(gate);
        }
    }

    fn start(&self, gate: &mut Gate) {
        if gate.started {
            return;
        }
        gate.started = true;
        // Joins happened under this lock, before: a publisher that sees the
        // start (acquire) sees every join in the topic words. The schedule
        // counts from the hold's end; nothing is due before it.
        let start = self.clock.ns(Instant::now() + self.config.hold);
        self.start_ns.store(start.max(1), Ordering::Release);
    }
}

/// A fan-out run shared by its workers: build one, give each worker's
/// client [`Fanout::worker`], run them, then read [`Fanout::report`]; or
/// let [`Fanout::run`] do all of it:
///
/// ```no_run
/// use std::sync::{atomic::AtomicBool, Arc};
/// use std::time::{Duration, Instant};
/// use uringws_load::{client::Plan, fanout::{Fanout, FanoutConfig}, target::Target};
///
/// let fanout = Fanout::new(FanoutConfig {
///     rate: 500.0,
///     duration: Duration::from_secs(2),
///     ..FanoutConfig::uringws(2, 100, 4)
/// })?;
/// let plan = Plan {
///     targets: vec![Target::parse("ws://127.0.0.1:9001/ws").map_err(|e| e.to_string())?],
///     sources: None,
///     first: 0,
///     connections: 0,        // from the configuration
///     at_once: 0,
///     rate: 0.0,
///     concurrency: 64,
///     timeout: Duration::from_secs(3),
///     until: Instant::now(), // from the configuration
/// };
/// let (outcome, report) = fanout.run(plan, 2, Arc::new(AtomicBool::new(false)))?;
/// assert!(outcome.errors.is_empty() && report.errors.is_empty());
/// assert_eq!(report.deliveries_received, report.deliveries_expected);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct Fanout {
    shared: Arc<Shared>,
}

impl Fanout {
    pub fn new(config: FanoutConfig) -> Result<Fanout, String> {
        config.validate()?;
        let topic_names = (0..config.topics as u32)
            .map(|t| topic_name(t).into_bytes())
            .collect();
        Ok(Fanout {
            shared: Arc::new(Shared {
                filler: filler(config.size),
                config,
                clock: Clock::now(),
                created: Instant::now(),
                gate: Mutex::new(Gate::default()),
                start_ns: AtomicU64::new(0),
                layout: OnceLock::new(),
                topic_names,
                delivered: AtomicU64::new(0),
                totals: Mutex::new(Tally::default()),
                finished: AtomicBool::new(false),
            }),
        })
    }

    pub fn config(&self) -> &FanoutConfig {
        &self.shared.config
    }

    /// A bound for the plans' `until`: ready deadline, publishing, drain
    /// and a second to spare. Runs normally end before it.
    pub fn until(&self) -> Instant {
        let c = &self.shared.config;
        self.shared.created
            + c.ready_timeout
            + c.hold
            + c.duration
            + c.drain
            + Duration::from_secs(1)
    }

    /// Holds publishing back until the hold is released (or dropped),
    /// even once every connection is ready; the ready deadline still
    /// starts it, held or not. For what a subscribe's ack does not show:
    /// a server that acks before its broker has the subscription, or a
    /// test that checks the broker's own state (every node subscribed)
    /// before anything is published. Take it before the run starts.
    pub fn hold_start(&self) -> StartHold {
        lock(&self.shared.gate).holds += 1;
        StartHold {
            shared: self.shared.clone(),
        }
    }

    /// The scenario for the worker running `plan` (its `first` and
    /// `connections` say which of the run's connections are its own).
    /// Every worker's plan has the same targets; the first one made fixes
    /// them for the run, and they must pass
    /// [`FanoutConfig::validate_targets`] ([`Fanout::run`] checks).
    pub fn worker(&self, plan: &Plan) -> FanoutWorker {
        let config = &self.shared.config;
        let layout = self
            .shared
            .layout
            .get_or_init(|| {
                let urls = plan.targets.iter().map(|t| t.url.clone()).collect();
                Arc::new(Layout::new(urls, config.topics))
            })
            .clone();
        let targets = layout.targets();
        let mut tally = Tally::new(targets);
        let conns = (plan.first..plan.first + plan.connections)
            .map(|g| {
                let local = Local {
                    publisher: config.publisher_of(g),
                    topic: config.topic_of(g),
                    target: config.target_of(g, targets),
                    id: g as u64,
                    state: State::Connecting,
                    sent: 0,
                    seq: Box::default(),
                    pairs: Box::default(),
                    received: 0,
                };
                let planned = &mut tally.targets[local.target];
                planned.receivers += u64::from(local.topic.is_some());
                planned.publishers += u64::from(local.publisher.is_some());
                local
            })
            .collect();
        FanoutWorker {
            shared: self.shared.clone(),
            layout,
            conns,
            tally,
            frame: Vec::with_capacity(config.size + 256),
            recent: Latency::default(),
            start_ns: 0,
            reported: 0,
            pings: Pings::new(config.ping_interval),
        }
    }

    /// Runs the whole fan-out on `workers` client threads (not pinned) and
    /// reports: for tests and embedders; the binary pins its workers and
    /// shows progress instead. `plan` gives targets, sources, handshake
    /// concurrency and timeout for the whole run; its connection count and
    /// end come from the configuration.
    pub fn run(
        &self,
        plan: Plan,
        workers: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<(Outcome, FanoutReport), String> {
        self.shared.config.validate_targets(plan.targets.len())?;
        let whole = Plan {
            connections: self.shared.config.connections,
            at_once: self.shared.config.connections,
            until: self.until(),
            ..plan
        };
        let live = Arc::new(Live::default());
        let threads: Vec<_> = whole
            .split(workers)
            .into_iter()
            .enumerate()
            .map(|(w, plan)| {
                let scenario = self.worker(&plan);
                let (live, stop) = (live.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("fanout-{w}"))
                    .spawn(move || {
                        let (outcome, scenario) = client::run(plan, scenario, live, stop);
                        scenario.measured();
                        outcome
                    })
                    .map_err(|e| format!("spawning a worker: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let mut merged = Outcome::default();
        for thread in threads {
            merged.merge(thread.join().map_err(|_| "a worker panicked")?);
        }
        Ok((merged, self.report()))
    }

    /// Where the run is, and deliveries so far.
    pub fn progress(&self) -> (Phase, u64) {
        let shared = &self.shared;
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let start = shared.start_ns.load(Ordering::Acquire);
        if start == 0 {
            return (Phase::Ready(lock(&shared.gate).joined), delivered);
        }
        let now = shared.clock.ns(Instant::now());
        let publishing = start + shared.config.duration.as_nanos() as u64;
        let phase = if now < start {
            Phase::Holding
        } else if now < publishing {
            Phase::Publishing
        } else if shared.finished.load(Ordering::Relaxed) {
            Phase::Over
        } else {
            Phase::Draining
        };
        (phase, delivered)
    }

    /// What the workers counted, added up: call it after they have all
    /// ended (a worker still running has not handed in its counts).
    pub fn report(&self) -> FanoutReport {
        let shared = &self.shared;
        let c = &shared.config;
        let totals = lock(&shared.totals);
        let start = shared.start_ns.load(Ordering::Acquire);
        let active_s = if start > 0 && totals.last_delivery_ns > start {
            (totals.last_delivery_ns - start) as f64 / 1e9
        } else {
            0.0
        };
        let urls = shared.layout.get().map_or(&[][..], |l| &l.urls[..]);
        let per_target: Vec<TargetReport> = totals
            .targets
            .iter()
            .enumerate()
            .map(|(k, d)| d.report(k, urls.get(k).map_or("", String::as_str)))
            .collect();
        // The whole run is the sum of its targets, counted once.
        let mut sum = Deliveries::default();
        for d in &totals.targets {
            sum.merge(d);
        }
        let all = sum.report(0, "");
        FanoutReport {
            mode: c.mode.to_string(),
            publishers: c.publishers,
            subscribers: c.subscribers(),
            topics: c.topics,
            size: c.size,
            rate: c.rate,
            ready_at_start: lock(&shared.gate).joined,
            publishes_sent: totals.publishes,
            deliveries_expected: all.deliveries_expected,
            deliveries_received: all.deliveries_received,
            reach_percent: all.reach_percent,
            lost: all.lost,
            dead_subscribers: all.dead_subscribers,
            to_dead_subscribers: all.to_dead_subscribers,
            duplicates: all.duplicates,
            reordered: all.reordered,
            reordered_unchecked: all.reordered_unchecked,
            self_deliveries: all.self_deliveries,
            malformed: all.malformed,
            deliveries_per_s: if active_s > 0.0 {
                all.deliveries_received as f64 / active_s
            } else {
                0.0
            },
            latency: all.latency,
            per_target,
            errors: totals.errors.clone(),
        }
    }
}

/// Keeps a [`Fanout`] from publishing ([`Fanout::hold_start`]) until
/// released or dropped.
pub struct StartHold {
    shared: Arc<Shared>,
}

impl StartHold {
    /// Lets publishing start, now if every connection is ready.
    pub fn release(self) {}
}

impl Drop for StartHold {
    fn drop(&mut self) {
        let mut gate = lock(&self.shared.gate);
        gate.holds = gate.holds.saturating_sub(1);
        self.shared.start_if_settled(&mut gate);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Not upgraded yet.
    Connecting,
    /// Uringws subscriber: subscribe sent, no ack yet.
    Subscribing { until: Instant },
    /// Counted: publishes, receives.
    Member,
    /// Ready too late, or gave up: to be closed, not counted.
    Refused,
    /// Was a member and is gone.
    Gone,
}

/// One connection as the scenario sees it.
struct Local {
    publisher: Option<u32>,
    /// The topic it receives on, if it receives.
    topic: Option<u32>,
    /// The index of the target (URL) it connects to.
    target: usize,
    /// Its global index, used as the subscribe request's id.
    id: u64,
    state: State,
    /// Messages published.
    sent: u64,
    /// Publisher: next sequence number per topic.
    seq: Box<[u64]>,
    /// Receiver (member): one per publisher.
    pairs: Box<[Pair]>,
    /// Receiver: first copies received from others.
    received: u64,
}

/// One worker's part of a [`Fanout`] run.
pub struct FanoutWorker {
    shared: Arc<Shared>,
    layout: Arc<Layout>,
    conns: Vec<Local>,
    tally: Tally,
    /// Reused for building each published frame.
    frame: Vec<u8>,
    /// This second's delivery latencies, for the series.
    recent: Latency,
    /// `start_ns` once seen (it never changes after).
    start_ns: u64,
    /// Deliveries already added to `shared.delivered`.
    reported: u64,
    pings: Pings,
}

impl FanoutWorker {
    fn start_ns(&mut self) -> u64 {
        if self.start_ns == 0 {
            self.start_ns = self.shared.start_ns.load(Ordering::Acquire);
        }
        self.start_ns
    }

    fn join(&mut self, id: usize) {
        let Some(local) = self.conns.get_mut(id) else {
            return;
        };
        let word = local
            .topic
            .map(|t| &self.layout.words(t as usize)[local.target]);
        if self.shared.join(word) {
            local.state = State::Member;
            if local.topic.is_some() {
                local.pairs = vec![Pair::default(); self.shared.config.publishers].into();
            }
            if local.publisher.is_some() {
                local.seq = vec![0; self.shared.config.topics].into();
            }
        } else {
            local.state = State::Refused;
            self.tally.error("fanout: ready after publishing started");
        }
    }

    /// Sends every message of publisher `id` that is due by `now_ns`.
    fn publish_due(&mut self, id: usize, now_ns: u64, out: &mut Outbox<'_>) {
        let start = self.start_ns();
        let shared = &*self.shared;
        let config = &shared.config;
        let Some(local) = self.conns.get_mut(id) else {
            return;
        };
        let Some(j) = local.publisher else { return };
        if start == 0 || local.state != State::Member {
            return;
        }
        let end = start + config.duration.as_nanos() as u64;
        loop {
            let due = start + config.due(j, local.sent);
            if due > now_ns || due >= end {
                break;
            }
            let topic = match config.mode {
                Mode::Broadcast => 0,
                Mode::Uringws => ((j as u64 + local.sent) % config.topics as u64) as usize,
            };
            let seq = local.seq[topic];
            local.seq[topic] += 1;
            local.sent += 1;
            // One atomic step per target: count this publish and learn
            // whom it is owed to there, so a receiver dying at the same
            // time is counted on exactly one side.
            for (k, word) in self.layout.words(topic).iter().enumerate() {
                let before = word.fetch_add(1, Ordering::AcqRel);
                let mut alive = before >> ALIVE_SHIFT;
                if config.mode == Mode::Broadcast && k == local.target {
                    // The publisher is a member receiving on this topic too.
                    alive = alive.saturating_sub(1);
                }
                self.tally.targets[k].expected += alive;
            }
            self.tally.publishes += 1;
            self.frame.clear();
            if config.mode == Mode::Uringws {
                write_topic_frame(&mut self.frame, &shared.topic_names[topic]);
            }
            let stamp = Stamp {
                publisher: j,
                seq,
                sent_ns: due,
            };
            write_payload(&mut self.frame, stamp, &shared.filler);
            out.send(OpCode::Binary, &self.frame);
        }
    }

    /// A binary message at receiver `id`.
    fn deliver(&mut self, id: usize, data: &[u8], now_ns: u64) {
        let shared = &*self.shared;
        let Some(local) = self.conns.get_mut(id) else {
            return;
        };
        let Some(topic) = local.topic else {
            self.tally.error("delivery to a publisher");
            return;
        };
        if local.state != State::Member {
            // Not counted (not ready in time, or on its way out).
            return;
        }
        let payload = match shared.config.mode {
            Mode::Broadcast => Ok(data),
            Mode::Uringws => split_topic_frame(data).and_then(|(name, payload)| {
                if name == shared.topic_names[topic as usize] {
                    Ok(payload)
                } else {
                    Err("malformed delivery: wrong topic")
                }
            }),
        };
        let stamp = payload
            .and_then(|p| read_payload(p, &shared.filler))
            .and_then(|s| match (s.publisher as usize) < local.pairs.len() {
                true => Ok(s),
                false => Err("malformed delivery: no such publisher"),
            });
        // Counted where the receiver is: with a bus, that is what each
        // node delivered.
        let Some(here) = self.tally.targets.get_mut(local.target) else {
            return;
        };
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(why) => {
                here.malformed += 1;
                self.tally.error(why);
                return;
            }
        };
        if Some(stamp.publisher) == local.publisher {
            here.self_deliveries += 1;
            return;
        }
        match local.pairs[stamp.publisher as usize].arrive(stamp.seq) {
            Arrival::Duplicate => {
                here.duplicates += 1;
                return;
            }
            Arrival::InOrder => {}
            Arrival::Late => here.reordered += 1,
            Arrival::LateUnchecked => {
                here.reordered += 1;
                here.unchecked += 1;
            }
        }
        local.received += 1;
        here.received += 1;
        let latency = Duration::from_nanos(now_ns.saturating_sub(stamp.sent_ns));
        here.latency.record(latency);
        self.recent.record(latency);
        self.tally.last_delivery_ns = self.tally.last_delivery_ns.max(now_ns);
    }

    /// Connection `id` is gone, by the server's doing or ours: given up if
    /// it was not ready yet, counted dead (with what it was owed) if it was.
    fn leave(&mut self, id: usize) {
        let Some(local) = self.conns.get_mut(id) else {
            return;
        };
        match local.state {
            State::Connecting | State::Subscribing { .. } => {
                local.state = State::Refused;
                self.shared.give_up();
            }
            State::Member => {
                local.state = State::Gone;
                let Some(topic) = local.topic else { return };
                // One atomic step, the mirror of a publish: leave, and
                // learn how many messages had been published to the topic.
                let before = self.layout.words(topic as usize)[local.target]
                    .fetch_sub(1 << ALIVE_SHIFT, Ordering::AcqRel);
                let mut owed = before & PUBLISHED;
                if self.shared.config.mode == Mode::Broadcast {
                    // Its own messages were never owed to it.
                    owed = owed.saturating_sub(local.sent);
                }
                if let Some(here) = self.tally.targets.get_mut(local.target) {
                    here.dead += 1;
                    here.to_dead += owed.saturating_sub(local.received);
                }
            }
            State::Refused | State::Gone => {}
        }
    }
}

impl Scenario for FanoutWorker {
    fn open(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        let ack_timeout = self.shared.config.ack_timeout;
        self.pings.open(id, now);
        let Some(local) = self.conns.get_mut(id) else {
            return;
        };
        match (self.shared.config.mode, local.topic) {
            (Mode::Uringws, Some(topic)) => {
                let request = format!(
                    r#"{{"type":"subscribe","topic":"{}","id":{}}}"#,
                    topic_name(topic),
                    local.id
                );
                out.send(OpCode::Text, request.as_bytes());
                local.state = State::Subscribing {
                    until: now + ack_timeout,
                };
            }
            _ => self.join(id),
        }
    }

    fn message(
        &mut self,
        id: usize,
        message: Message,
        now: Instant,
        _: &mut Outbox<'_>,
    ) -> Result<(), String> {
        match message {
            Message::Binary(data) => {
                let now_ns = self.shared.clock.ns(now);
                self.deliver(id, &data, now_ns);
            }
            Message::Text(text) if self.shared.config.mode == Mode::Uringws => {
                let Some(local) = self.conns.get(id) else {
                    return Ok(());
                };
                let subscribing = matches!(local.state, State::Subscribing { .. });
                match answer(text.as_str(), local.id) {
                    Answer::Ack if subscribing => self.join(id),
                    Answer::Error(code) if subscribing => {
                        // Closing it makes `closed` give it up.
                        return Err(format!("subscribe: error {code}"));
                    }
                    Answer::Error(code) => self.tally.error(&format!("server error: {code}")),
                    Answer::Ack => self.tally.error("unexpected text message: ack"),
                    Answer::Other(why) => self.tally.error(&why),
                }
            }
            Message::Text(_) => self.tally.error("unexpected text message"),
            _ => {}
        }
        Ok(())
    }

    fn tick(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        let now_ns = self.shared.clock.ns(now);
        self.publish_due(id, now_ns, out);
        self.pings.tick(id, now, out);
    }

    fn pong(&mut self, id: usize, now: Instant) {
        self.pings.pong(id, now);
    }

    fn target(&self, id: usize, _: usize) -> Option<usize> {
        self.conns.get(id).map(|c| c.target)
    }

    fn paced(&self, id: usize) -> bool {
        self.conns.get(id).is_some_and(|c| c.publisher.is_some())
    }

    fn done(&mut self, id: usize, now: Instant) -> bool {
        if self.pings.unanswered(id) {
            self.tally.error("ping: no pong within two intervals");
            self.leave(id);
            return true;
        }
        let Some(local) = self.conns.get_mut(id) else {
            return false;
        };
        match local.state {
            State::Refused => true,
            State::Subscribing { until } if now >= until => {
                local.state = State::Refused;
                self.tally.error("subscribe: no ack in time");
                // Given up now, not when the close completes: the gate
                // should not wait on a server that may not answer that
                // either.
                self.shared.give_up();
                true
            }
            _ => false,
        }
    }

    fn closed(&mut self, id: usize) {
        self.leave(id);
    }

    fn finished(&mut self, now: Instant) -> bool {
        let received = self.tally.received();
        if received > self.reported {
            self.shared
                .delivered
                .fetch_add(received - self.reported, Ordering::Relaxed);
            self.reported = received;
        }
        let start = self.start_ns();
        let config = &self.shared.config;
        if start == 0 {
            if now >= self.shared.created + config.ready_timeout {
                self.shared.start(&mut lock(&self.shared.gate));
            }
            return false;
        }
        let over = start + (config.duration + config.drain).as_nanos() as u64;
        self.shared.clock.ns(now) >= over
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            sent: self.tally.publishes,
            received: self.tally.received(),
            errors: self.tally.error_count,
        }
    }

    fn recent(&mut self) -> Option<&mut Latency> {
        Some(&mut self.recent)
    }

    fn measured(self) -> Vec<crate::client::Measured> {
        // The counts only make sense summed over all workers: they go to
        // the shared run, read by `Fanout::report`.
        let shared = self.shared.clone();
        lock(&shared.totals).merge(self.tally);
        shared.finished.store(true, Ordering::Relaxed);
        if shared.config.ping_interval.is_zero() {
            return Vec::new();
        }
        vec![crate::client::Measured {
            name: "ping to pong".into(),
            latency: self.pings.latency,
            count: Some(("pings unanswered".into(), self.pings.missed)),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_word_counts_publishes_and_deaths_exactly() {
        // The bookkeeping without sockets: 3 receivers join, a publisher
        // on another "worker" publishes, one receiver dies in between.
        let fanout = Fanout::new(FanoutConfig::uringws(1, 3, 1)).unwrap();
        let plan = Plan {
            targets: Vec::new(),
            sources: None,
            first: 0,
            connections: 4,
            at_once: 4,
            rate: 0.0,
            concurrency: 1,
            timeout: Duration::from_secs(1),
            until: Instant::now(),
        };
        let mut w = fanout.worker(&plan);
        let now = Instant::now();
        let mut frames = bytes::BytesMut::new();
        let mut out = Outbox::new(&mut frames);
        // Connection 0 publishes; 1..=3 subscribe and are acked.
        w.open(0, now, &mut out);
        for id in 1..=3 {
            w.open(id, now, &mut out);
            let ack = format!(r#"{{"type":"ack","id":{id}}}"#);
            w.message(id, Message::Text(ack.as_str().into()), now, &mut out)
                .unwrap();
        }
        assert!(w.start_ns() > 0, "everyone joined: publishing started");
        let start = w.start_ns;
        let mut sent = bytes::BytesMut::new();
        let mut sent = Outbox::new(&mut sent);
        w.publish_due(0, start + 2_500_000, &mut sent);
        assert_eq!(w.tally.publishes, 3, "due at 0, 1 and 2 ms at 1000/s");
        assert_eq!(w.tally.targets[0].expected, 9);
        w.closed(3);
        w.publish_due(0, start + 3_500_000, &mut sent);
        assert_eq!(w.tally.targets[0].expected, 11);
        assert_eq!(w.tally.targets[0].dead, 1);
        assert_eq!(w.tally.targets[0].to_dead, 3, "it had received none of 3");
        w.measured();
        let report = fanout.report();
        assert_eq!(report.lost, 11 - 3);
        assert_eq!(report.ready_at_start, 4);
    }

    #[test]
    fn each_target_is_owed_what_its_receivers_are_and_a_hold_delays_the_start() {
        // 1 publisher on target 0; 4 subscribers, 2 on each of 2 targets.
        let fanout = Fanout::new(FanoutConfig {
            publish_to: vec![0],
            ..FanoutConfig::uringws(1, 4, 1)
        })
        .unwrap();
        let hold = fanout.hold_start();
        let targets = ["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"]
            .map(|u| crate::target::Target::parse(u).unwrap())
            .to_vec();
        let plan = Plan {
            targets,
            sources: None,
            first: 0,
            connections: 5,
            at_once: 5,
            rate: 0.0,
            concurrency: 1,
            timeout: Duration::from_secs(1),
            until: Instant::now(),
        };
        let mut w = fanout.worker(&plan);
        let placed: Vec<_> = (0..5).map(|id| w.target(id, 2)).collect();
        // The publisher first, then subscribers round robin.
        assert_eq!(placed, [0, 0, 1, 0, 1].map(Some));
        let now = Instant::now();
        let mut frames = bytes::BytesMut::new();
        let mut out = Outbox::new(&mut frames);
        w.open(0, now, &mut out);
        for id in 1..=4 {
            w.open(id, now, &mut out);
            let ack = format!(r#"{{"type":"ack","id":{id}}}"#);
            w.message(id, Message::Text(ack.as_str().into()), now, &mut out)
                .unwrap();
        }
        assert_eq!(w.start_ns(), 0, "all ready, but held");
        hold.release();
        let start = w.start_ns();
        assert!(start > 0, "released: publishing started");
        w.publish_due(0, start + 1_500_000, &mut out);
        assert_eq!(w.tally.publishes, 2);
        // Connection 2 (on target 1) leaves; 1 more publish.
        w.closed(2);
        w.publish_due(0, start + 2_500_000, &mut out);
        let (t0, t1) = (&w.tally.targets[0], &w.tally.targets[1]);
        assert_eq!((t0.publishers, t0.receivers), (1, 2));
        assert_eq!((t1.publishers, t1.receivers), (0, 2));
        assert_eq!(t0.expected, 3 * 2);
        assert_eq!(t1.expected, 2 * 2 + 1);
        assert_eq!((t0.dead, t1.dead, t1.to_dead), (0, 1, 2));
        w.measured();
        let r = fanout.report();
        assert_eq!(r.deliveries_expected, 11);
        assert_eq!(r.per_target.len(), 2);
        assert_eq!(r.per_target[1].url, "ws://127.0.0.1:2/ws");
        assert_eq!((r.per_target[0].lost, r.per_target[1].lost), (6, 3));
        assert_eq!(r.lost, 9);
    }
}
