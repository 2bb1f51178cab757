//! The client runtime: one worker thread with one io_uring ring
//! ([`uringws_ring`]) drives many WebSocket client connections —
//! socket, optional bind to a source address, connect, upgrade, then
//! whatever the scenario does with them. Sockets are direct descriptors, so
//! a worker is not bound by the process's open-files limit. `wss://`
//! connections add TLS between the socket and the WebSocket codec
//! ([`crate::tls`]), after connect and before the upgrade. A target that
//! offers permessage-deflate ([`crate::deflate`]) has its connections
//! compress what scenarios send ([`Outbox`]) and inflate what they get.

use crate::deflate::{ConnDeflate, SharedDeflate};
use crate::outbox::Outbox;
use crate::report::{ByteCounts, Latency};
use crate::series::{Interval, Series};
use crate::target::{SourceRange, Target};
use crate::tls::TlsConn;
use bytes::{Bytes, BytesMut};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uringws_protocol::{
    encoder::write_client_frame,
    handshake::{ClientHandshake, ClientRequest},
    Decoder, DecoderConfig, Error, Message, OpCode, Role,
};
use uringws_ring::{Completion, Ring, RingConfig, Socket};

/// How often scenarios get [`Scenario::tick`] for each open connection,
/// unless they ask otherwise ([`Scenario::tick_every`]).
pub const TICK: Duration = Duration::from_millis(100);

/// How often connections that send on a schedule ([`Scenario::paced`]) get
/// [`Scenario::tick`]; only those, so a fast schedule on a few connections
/// does not cost a pass over every idle one each millisecond.
pub const PACE: Duration = Duration::from_millis(1);

/// What a scenario does with open connections.
pub trait Scenario: Send + 'static {
    /// The connection `id` is upgraded; send what it starts with, if
    /// anything.
    fn open(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>);
    /// A message arrived (text or binary, inflated if it came compressed);
    /// send any reply through `out`. Returning an error string counts it
    /// under that reason and closes the connection. By default a message
    /// is unexpected: the scenario sends none.
    fn message(
        &mut self,
        id: usize,
        message: Message,
        now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), String> {
        let _ = (id, message, now, out);
        Err("unexpected message".into())
    }
    /// Called every tick for each open connection (pings, timed sends).
    fn tick(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        let _ = (id, now, out);
    }
    /// How often [`tick`](Self::tick) runs.
    fn tick_every(&self) -> Duration {
        TICK
    }
    /// Asked once, before connection `id` connects: which of the plan's
    /// `targets` it goes to. `None` (the default), or an index out of
    /// range: round robin by the connection's global index. A scenario
    /// whose connections have roles answers for itself, so that a role
    /// can be kept to some targets (fan-out publishers on one node).
    fn target(&self, id: usize, targets: usize) -> Option<usize> {
        let _ = (id, targets);
        None
    }
    /// Asked once when connection `id` opens: whether it sends on a
    /// schedule and so also needs [`tick`](Self::tick) every [`PACE`].
    fn paced(&self, id: usize) -> bool {
        let _ = id;
        false
    }
    /// Called once per loop turn, for what the scenario does as a whole
    /// (phases shared with other workers). `true` ends this worker's run as
    /// if the plan's end had come.
    fn finished(&mut self, now: Instant) -> bool {
        let _ = now;
        false
    }
    /// Connection `id` is over before the run is: it never opened, or the
    /// server closed or broke it, or [`message`](Self::message) refused
    /// what it got. Not called for connections the scenario closed itself
    /// ([`done`](Self::done)), nor for those still open when the run ends.
    fn closed(&mut self, id: usize) {
        let _ = id;
    }
    /// A pong arrived on connection `id`.
    fn pong(&mut self, id: usize, now: Instant) {
        let _ = (id, now);
    }
    /// Whether connection `id` is done and should close (politely).
    fn done(&mut self, id: usize, now: Instant) -> bool {
        let _ = (id, now);
        false
    }
    /// What the scenario has sent and received so far, as it counts them,
    /// and the failures it counted itself without closing a connection
    /// (those it closed are the worker's); read once a second for the
    /// per-second series, so plain fields do.
    fn traffic(&self) -> Traffic {
        Traffic::default()
    }
    /// The scenario's own latency samples since the last call (round trip,
    /// ping to pong, delivery), kept apart from its totals: each second the
    /// worker swaps it for an empty one. `None`: the series shows
    /// handshake latency instead.
    fn recent(&mut self) -> Option<&mut Latency> {
        None
    }
    /// What the scenario measured beyond the handshake, for the report.
    fn measured(self) -> Vec<Measured>
    where
        Self: Sized,
    {
        Vec::new()
    }
}

/// A latency distribution a scenario measured, and a counter to report
/// with it.
pub struct Measured {
    pub name: String,
    pub latency: Latency,
    pub count: Option<(String, u64)>,
}

/// A scenario's running totals ([`Scenario::traffic`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
}

/// What the workers share with the progress line and the report: counters
/// bumped once per connection event, and the per-second [`Series`] that
/// each worker adds to once a second.
pub struct Live {
    pub opened: AtomicU64,
    pub failed: AtomicU64,
    pub open_now: AtomicU64,
    series: Mutex<Series>,
}

impl Default for Live {
    fn default() -> Self {
        Live::new(Instant::now())
    }
}

impl Live {
    /// Seconds in the series count from `epoch`, the start of the run.
    pub fn new(epoch: Instant) -> Live {
        Live {
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            open_now: AtomicU64::new(0),
            series: Mutex::new(Series::new(epoch)),
        }
    }

    pub fn series(&self) -> MutexGuard<'_, Series> {
        // A worker that panicked holding it leaves seconds worth reporting.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One worker's count of the current second, handed to the [`Series`]
/// when the second is over: the hot path only bumps plain fields and
/// records into histograms this worker alone owns.
struct Meter {
    slot: usize,
    index: u64,
    /// When the current second ends.
    next: Instant,
    /// Totals when the current second began.
    traffic: Traffic,
    opened: u64,
    errors: u64,
    /// Handshakes this second, for scenarios without a latency of their own.
    handshakes: Latency,
    /// Swapped with the scenario's [`Scenario::recent`] each second.
    spare: Latency,
}

impl Meter {
    fn new(live: &Live) -> Meter {
        let mut series = live.series();
        let (slot, index) = series.join(Instant::now());
        Meter {
            slot,
            index,
            next: series.end_of(index),
            traffic: Traffic::default(),
            opened: 0,
            errors: 0,
            handshakes: Latency::default(),
            spare: Latency::default(),
        }
    }

    /// Hands in the current second, counted up to `now`; `last` for the
    /// worker's final one.
    fn roll<S: Scenario>(
        &mut self,
        now: Instant,
        last: bool,
        scenario: &mut S,
        outcome: &Outcome,
        live: &Live,
    ) {
        let traffic = scenario.traffic();
        // Totals of the worker's own outcome, not a counter per event: a
        // pass over a few map entries once a second.
        let opened = outcome
            .counts
            .get("connections opened")
            .copied()
            .unwrap_or(0);
        let errors = outcome.errors.values().sum::<u64>() + traffic.errors;
        let interval = Interval {
            index: self.index,
            opened: opened.saturating_sub(self.opened),
            sent: traffic.sent.saturating_sub(self.traffic.sent),
            received: traffic.received.saturating_sub(self.traffic.received),
            errors: errors.saturating_sub(self.errors),
        };
        let latency = match scenario.recent() {
            Some(recent) => {
                std::mem::swap(recent, &mut self.spare);
                &mut self.spare
            }
            None => &mut self.handshakes,
        };
        let mut series = live.series();
        let next = (!last).then(|| series.index(now).max(self.index + 1));
        series.add(
            self.slot,
            &interval,
            latency,
            live.open_now.load(Ordering::Relaxed),
            next,
        );
        if let Some(next) = next {
            self.index = next;
            self.next = series.end_of(next);
        }
        drop(series);
        latency.clear();
        self.handshakes.clear();
        self.traffic = traffic;
        self.opened = opened;
        self.errors = errors;
    }
}

/// One worker's share of the run.
#[derive(Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub sources: Option<SourceRange>,
    /// Global index of this worker's first connection (for spreading
    /// targets and sources evenly).
    pub first: usize,
    pub connections: usize,
    /// Connections open at the same time at most, which sizes the ring's
    /// file table: all of them, except in churn, where they come and go.
    pub at_once: usize,
    /// New connections per second (0: as fast as `concurrency` allows).
    pub rate: f64,
    /// Handshakes in progress at most.
    pub concurrency: usize,
    pub timeout: Duration,
    /// Until when the run goes on.
    pub until: Instant,
}

impl Plan {
    /// This plan, taken as the whole run, cut into one plan per worker:
    /// consecutive connections each (so `first` gives every connection one
    /// global index) and an equal share of the connection rate.
    pub fn split(&self, workers: usize) -> Vec<Plan> {
        let workers = workers.max(1);
        let mut first = self.first;
        (0..workers)
            .map(|w| {
                let connections =
                    self.connections / workers + usize::from(w < self.connections % workers);
                let plan = Plan {
                    first,
                    connections,
                    at_once: self.at_once.div_ceil(workers).min(connections),
                    rate: self.rate / workers as f64,
                    ..self.clone()
                };
                first += connections;
                plan
            })
            .collect()
    }
}

/// What a worker measured.
#[derive(Default)]
pub struct Outcome {
    pub counts: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// From socket creation to the 101: connect, TLS, upgrade.
    pub handshake: Latency,
    /// `wss://` only: from connected to TLS established.
    pub tls_handshake: Latency,
    /// `wss://` only: from TLS established to the 101.
    pub upgrade: Latency,
    pub alive_at_end: u64,
    /// Frames and payload, each way, of upgraded connections.
    pub bytes: ByteCounts,
}

impl Outcome {
    /// Adds another worker's outcome.
    pub fn merge(&mut self, other: Outcome) {
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.handshake.merge(&other.handshake);
        self.tls_handshake.merge(&other.tls_handshake);
        self.upgrade.merge(&other.upgrade);
        self.alive_at_end += other.alive_at_end;
        self.bytes.add(&other.bytes);
    }

    fn count(&mut self, name: &str) {
        *self.counts.entry(name.to_string()).or_default() += 1;
    }

    fn error(&mut self, reason: &str) {
        *self.errors.entry(reason.to_string()).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Socket,
    Bind,
    Connect,
    Handshake,
    Open,
    Closing,
}

struct Conn {
    step: Step,
    socket: Option<Socket>,
    target: usize,
    /// Socket creation; its handshake deadline is this plus the plan's
    /// timeout, computed rather than stored.
    started: Instant,
    /// Boxed: only connections in their upgrade need it, and inline it
    /// would be room every idle connection holds.
    handshake: Option<Box<ClientHandshake>>,
    inbuf: BytesMut,
    out: BytesMut,
    sending: bool,
    recv_armed: bool,
    decoder: Decoder,
    /// `wss://` only; boxed, so a plain connection carries one empty
    /// pointer (it fits where the deadline field was).
    tls: Option<Box<TlsConn>>,
    /// Only for connections that agreed to permessage-deflate, and its
    /// streams only once used ([`ConnDeflate`]).
    deflate: Option<Box<ConnDeflate>>,
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Op {
    Socket = 1,
    Bind,
    Connect,
    Send,
    Recv,
    Close,
    NoDelay,
    NoPort,
}

fn user_data(op: Op, id: usize) -> u64 {
    ((op as u64) << 48) | id as u64
}

fn split(user_data: u64) -> (u8, usize) {
    (
        (user_data >> 48) as u8,
        (user_data & ((1 << 48) - 1)) as usize,
    )
}

/// Runs one worker until its plan's end, until every connection is done
/// (`connect`, `churn`), or `stop`.
pub fn run<S: Scenario>(
    plan: Plan,
    scenario: S,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> (Outcome, S) {
    let mut outcome = Outcome::default();
    let mut meter = Meter::new(&live);
    let files = u32::try_from(plan.at_once + 64).unwrap_or(u32::MAX);
    let ring = match Ring::new(&RingConfig {
        entries: 4096,
        recv_buffers: 1024,
        recv_buffer_size: 16 << 10,
        files,
        watched: false,
    }) {
        Ok(ring) => ring,
        Err(e) => {
            outcome.error(&format!("io_uring setup: {e}"));
            let mut scenario = scenario;
            meter.roll(Instant::now(), true, &mut scenario, &outcome, &live);
            return (outcome, scenario);
        }
    };
    let capacity = if (ring.files() as usize) < plan.at_once {
        let capacity = plan.connections.min(ring.files() as usize);
        *outcome
            .errors
            .entry(format!(
                "open-files limit: this worker can hold {} of the {} connections it would have open at once (raise `ulimit -n` or add workers)",
                ring.files(),
                plan.at_once
            ))
            .or_default() += (plan.connections - capacity) as u64;
        capacity
    } else {
        plan.connections
    };
    let mut worker = Worker {
        plan: &plan,
        ring,
        conns: Vec::with_capacity(capacity),
        scenario,
        outcome,
        live: &live,
        in_handshake: 0,
        rearm: Vec::new(),
        paced: Vec::new(),
        meter,
        deflate: SharedDeflate::default(),
    };
    worker.run(capacity, &stop);
    worker.close_all(capacity);
    let Worker {
        mut scenario,
        outcome,
        mut meter,
        ..
    } = worker;
    // What came in since the last second's end goes to that second: the
    // run is over, and a sliver of a second would only show as a dip.
    meter.roll(Instant::now(), true, &mut scenario, &outcome, &live);
    (outcome, scenario)
}

/// One worker's ring and connections.
struct Worker<'p, S> {
    plan: &'p Plan,
    ring: Ring,
    conns: Vec<Option<Conn>>,
    scenario: S,
    outcome: Outcome,
    live: &'p Live,
    /// Connections between socket creation and the 101.
    in_handshake: usize,
    /// Connections whose multishot receive ended and must be re-armed.
    rearm: Vec<usize>,
    /// Connections that get a tick every [`PACE`] ([`Scenario::paced`]).
    paced: Vec<usize>,
    meter: Meter,
    /// Streams for connections that take no context, and the buffer
    /// messages are compressed into.
    deflate: SharedDeflate,
}

impl<S: Scenario> Worker<'_, S> {
    fn run(&mut self, capacity: usize, stop: &AtomicBool) {
        let mut deadlines: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
        let mut completions = Vec::with_capacity(512);
        let start = Instant::now();
        let mut last_tick = start;
        let mut last_pace = start;
        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) || now >= self.plan.until || self.scenario.finished(now)
            {
                break;
            }
            // Start new connections within the rate and concurrency limits.
            while self.conns.len() < capacity && self.in_handshake < self.plan.concurrency {
                let due = if self.plan.rate > 0.0 {
                    start + Duration::from_secs_f64(self.conns.len() as f64 / self.plan.rate)
                } else {
                    start
                };
                if due > now {
                    break;
                }
                let id = self.conns.len();
                let targets = self.plan.targets.len();
                let target = self
                    .scenario
                    .target(id, targets)
                    .filter(|&t| t < targets)
                    .unwrap_or((self.plan.first + id) % targets);
                self.conns.push(Some(Conn {
                    step: Step::Socket,
                    socket: None,
                    target,
                    started: now,
                    handshake: None,
                    inbuf: BytesMut::new(),
                    out: BytesMut::new(),
                    sending: false,
                    recv_armed: false,
                    decoder: Decoder::new(Role::Client, DecoderConfig::default()),
                    tls: None,
                    deflate: None,
                }));
                self.in_handshake += 1;
                deadlines.push(Reverse((now + self.plan.timeout, id)));
                if self
                    .ring
                    .tcp_socket(self.plan.targets[target].addr, user_data(Op::Socket, id))
                    .is_err()
                {
                    self.fail(id, "io_uring submit");
                }
            }
            // Wait in the kernel for completions, but come round regularly for
            // ticks, deadlines and new connections.
            let wait = if self.paced.is_empty() {
                self.scenario.tick_every().min(Duration::from_millis(5))
            } else {
                PACE
            };
            if self.ring.wait(wait).is_err() {
                self.outcome.error("io_uring submit");
                break;
            }
            completions.clear();
            self.ring.drain(&mut completions, 512);
            let now = Instant::now();
            for c in completions.iter_mut() {
                self.handle(c, now);
            }
            for id in std::mem::take(&mut self.rearm) {
                if let Some(Some(conn)) = self.conns.get_mut(id) {
                    if !conn.recv_armed
                        && matches!(conn.step, Step::Handshake | Step::Open | Step::Closing)
                    {
                        if let Some(socket) = conn.socket {
                            conn.recv_armed = self
                                .ring
                                .recv_multi(socket, user_data(Op::Recv, id))
                                .is_ok();
                        }
                    }
                }
            }
            // Handshake deadlines.
            while let Some(&Reverse((at, id))) = deadlines.peek() {
                if at > now {
                    break;
                }
                deadlines.pop();
                let timed_out = self
                    .conns
                    .get(id)
                    .and_then(|c| c.as_ref())
                    .is_some_and(|c| {
                        c.step != Step::Open
                            && c.step != Step::Closing
                            && c.started + self.plan.timeout <= now
                    });
                if timed_out {
                    self.fail(id, "timeout");
                }
            }
            // Not past the plan's end: what is left goes to the second the
            // run ended in, rather than to a sliver of the next.
            if now >= self.meter.next && now < self.plan.until {
                self.meter
                    .roll(now, false, &mut self.scenario, &self.outcome, self.live);
            }
            if !self.paced.is_empty() && now.duration_since(last_pace) >= PACE {
                last_pace = now;
                self.pace(now);
            }
            if now.duration_since(last_tick) >= self.scenario.tick_every() {
                last_tick = now;
                // Every connection tried and none left: nothing more to do.
                if self.conns.len() == capacity
                    && self.in_handshake == 0
                    && self.conns.iter().all(Option::is_none)
                {
                    break;
                }
                for (id, conn) in self.conns.iter_mut().enumerate() {
                    let Some(conn) = conn.as_mut() else {
                        continue;
                    };
                    if conn.step != Step::Open {
                        continue;
                    }
                    if self.scenario.done(id, now) {
                        let _ = write_client_frame(
                            &mut conn.out,
                            OpCode::Close,
                            true,
                            &1000u16.to_be_bytes(),
                            rand::random(),
                        );
                        conn.step = Step::Closing;
                        self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                        self.outcome.count("connections closed");
                    } else {
                        scenario_turn(conn, &mut self.deflate, &mut self.outcome.bytes, |out| {
                            self.scenario.tick(id, now, out)
                        });
                    }
                    flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
                }
            }
        }
    }

    /// Ticks the paced connections, forgetting those that are gone.
    fn pace(&mut self, now: Instant) {
        let mut paced = std::mem::take(&mut self.paced);
        paced.retain(|&id| {
            let Some(Some(conn)) = self.conns.get_mut(id) else {
                return false;
            };
            if conn.step == Step::Open {
                scenario_turn(conn, &mut self.deflate, &mut self.outcome.bytes, |out| {
                    self.scenario.tick(id, now, out)
                });
                flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
            }
            conn.step == Step::Open
        });
        self.paced = paced;
    }

    /// Counts who is still open, and who never got there in time (a run
    /// that ends with connections unopened says so, rather than looking
    /// like a smaller run), then lets the sockets go.
    fn close_all(&mut self, capacity: usize) {
        let mut completions = Vec::new();
        let unstarted = capacity.saturating_sub(self.conns.len()) as u64;
        if unstarted > 0 {
            *self
                .outcome
                .counts
                .entry("connections not started when the run ended".into())
                .or_default() += unstarted;
        }
        for (id, conn) in self.conns.iter_mut().enumerate() {
            if let Some(conn) = conn.take() {
                match conn.step {
                    Step::Open => self.outcome.alive_at_end += 1,
                    Step::Closing => {}
                    _ => self
                        .outcome
                        .count("connections still connecting when the run ended"),
                }
                if let Some(socket) = conn.socket {
                    let _ = self.ring.cancel_socket(socket);
                    let _ = self.ring.close(socket, user_data(Op::Close, id));
                }
            }
        }
        let _ = self.ring.submit();
        // Give the closes a moment to run before the ring goes.
        let settle = Instant::now() + Duration::from_millis(200);
        while Instant::now() < settle {
            completions.clear();
            self.ring.drain(&mut completions, 512);
            // Receive buffers go back as these are dropped.
            completions.clear();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn handle(&mut self, c: &mut Completion, now: Instant) {
        let (op, id) = split(c.user_data);
        let Some(Some(conn)) = self.conns.get_mut(id) else {
            return;
        };
        match op {
            x if x == Op::Socket as u8 => {
                let Some(socket) = c.socket() else {
                    return self.fail(id, &reason(c.result));
                };
                conn.socket = Some(socket);
                let target = self.plan.targets[conn.target].addr;
                let _ = self.ring.set_nodelay(socket, user_data(Op::NoDelay, id));
                let submitted = match &self.plan.sources {
                    Some(_) => {
                        conn.step = Step::Bind;
                        // The port is then chosen at connect, for the whole
                        // 4-tuple: a bind to (address, 0) alone must find a
                        // port free towards every destination, which ports
                        // in TIME_WAIT from earlier runs are not, and the
                        // kernel's search for one slows to a crawl.
                        self.ring.set_int_option(
                            socket,
                            libc::IPPROTO_IP,
                            libc::IP_BIND_ADDRESS_NO_PORT,
                            1,
                            user_data(Op::NoPort, id),
                        )
                    }
                    None => {
                        conn.step = Step::Connect;
                        self.ring
                            .connect(socket, target, user_data(Op::Connect, id))
                    }
                };
                if submitted.is_err() {
                    self.fail(id, "io_uring submit");
                }
            }
            x if x == Op::NoPort as u8 => {
                if c.result < 0 {
                    return self.fail(
                        id,
                        &format!("IP_BIND_ADDRESS_NO_PORT: {}", reason(c.result)),
                    );
                }
                let (Some(socket), Some(sources)) = (conn.socket, &self.plan.sources) else {
                    return;
                };
                let source = SocketAddr::new(sources.pick(self.plan.first + id), 0);
                if self
                    .ring
                    .bind(socket, source, user_data(Op::Bind, id))
                    .is_err()
                {
                    self.fail(id, "io_uring submit");
                }
            }
            x if x == Op::Bind as u8 => {
                if c.result < 0 {
                    return self.fail(id, &format!("bind: {}", reason(c.result)));
                }
                conn.step = Step::Connect;
                let (socket, target) = (conn.socket, self.plan.targets[conn.target].addr);
                if let Some(socket) = socket {
                    if self
                        .ring
                        .connect(socket, target, user_data(Op::Connect, id))
                        .is_err()
                    {
                        self.fail(id, "io_uring submit");
                    }
                }
            }
            x if x == Op::Connect as u8 => {
                if c.result < 0 {
                    return self.fail(id, &reason(c.result));
                }
                let plan = self.plan;
                let target = &plan.targets[conn.target];
                let request = ClientRequest {
                    extensions: target.deflate.as_ref().map(|d| d.header()),
                    ..ClientRequest::new(&target.host, &target.path)
                };
                let Ok((handshake, bytes)) = ClientHandshake::new(&request) else {
                    return self.fail(id, "bad request");
                };
                conn.handshake = Some(Box::new(handshake));
                conn.step = Step::Handshake;
                // Over TLS the request waits in `out` until the handshake
                // lets it be sealed; the ClientHello goes first.
                conn.out.extend_from_slice(&bytes);
                if let Some(secure) = &target.tls {
                    match TlsConn::new(secure, now) {
                        Ok(tls) => conn.tls = Some(Box::new(tls)),
                        Err(e) => return self.fail(id, &secure.config.reason(&e)),
                    }
                }
                flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
                if let Some(socket) = conn.socket {
                    conn.recv_armed = self
                        .ring
                        .recv_multi(socket, user_data(Op::Recv, id))
                        .is_ok();
                }
            }
            x if x == Op::Send as u8 => {
                conn.sending = false;
                if c.result < 0 {
                    return self.fail(id, &reason(c.result));
                }
                flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
            }
            x if x == Op::Recv as u8 => {
                if !c.more() {
                    conn.recv_armed = false;
                }
                if c.result == -libc::ENOBUFS {
                    self.rearm.push(id);
                    return;
                }
                if c.result <= 0 {
                    let why = if c.result == 0 {
                        "closed by server".to_string()
                    } else {
                        reason(c.result)
                    };
                    return match conn.step {
                        Step::Closing => self.drop_conn(id),
                        Step::Open => {
                            self.outcome.error(&why);
                            self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                            self.drop_conn(id);
                        }
                        _ => self.fail(id, &why),
                    };
                }
                if !conn.recv_armed {
                    self.rearm.push(id);
                }
                let before = conn.inbuf.len();
                if let Some(tls) = conn.tls.as_deref_mut() {
                    let Some(mut data) = c.take_received() else {
                        return;
                    };
                    let was_handshaking = tls.handshaking();
                    let received = tls.receive(&mut data, &mut conn.inbuf);
                    drop(data);
                    if was_handshaking && !tls.handshaking() {
                        let took = now.duration_since(tls.since);
                        self.outcome.tls_handshake.record(took);
                        tls.since = now;
                        // So a run against any server shows whether it
                        // resumes the sessions `--resume` offers.
                        if tls.resumed() {
                            self.outcome.count("tls sessions resumed");
                        }
                    }
                    // TLS's answers (the client's Finished, an alert), and
                    // the upgrade request once the handshake lets it go.
                    flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
                    if let Err(e) = received {
                        let plan = self.plan;
                        let why = plan.targets[conn.target]
                            .tls
                            .as_ref()
                            .map_or_else(|| format!("tls: {e}"), |t| t.config.reason(&e));
                        return if conn.step == Step::Open {
                            self.outcome.error(&why);
                            self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                            self.drop_conn(id);
                        } else {
                            self.fail(id, &why)
                        };
                    }
                } else if let Some(data) = c.received() {
                    conn.inbuf.extend_from_slice(data);
                }
                // Frames only: the 101's head is counted off below.
                if matches!(conn.step, Step::Open | Step::Closing) {
                    self.outcome.bytes.wire_received += (conn.inbuf.len() - before) as u64;
                }
                if conn.step == Step::Handshake {
                    let parsed = conn
                        .handshake
                        .as_ref()
                        .map(|h| h.parse_response(&conn.inbuf));
                    match parsed {
                        Some(Ok(Some(response))) => {
                            let plan = self.plan;
                            if let Some(offer) = &plan.targets[conn.target].deflate {
                                match offer.agreed(&response) {
                                    Ok(Some(params)) => {
                                        conn.deflate =
                                            Some(Box::new(ConnDeflate::new(params, offer)));
                                        conn.decoder.set_allow_rsv1(true);
                                        self.outcome.count("deflate agreed");
                                    }
                                    Ok(None) => self.outcome.count("deflate declined"),
                                    Err(e) => return self.fail(id, &e.to_string()),
                                }
                            }
                            let _ = conn.inbuf.split_to(response.head_len());
                            // Frames that came with the head.
                            self.outcome.bytes.wire_received += conn.inbuf.len() as u64;
                            // Emptied, each would still hold its
                            // allocation (the 101's head; the request's
                            // room) for as long as the connection idles,
                            // more with an extension offered and answered.
                            if conn.inbuf.is_empty() {
                                conn.inbuf = BytesMut::new();
                            }
                            if conn.out.is_empty() {
                                conn.out = BytesMut::new();
                            }
                            conn.step = Step::Open;
                            conn.handshake = None;
                            self.in_handshake -= 1;
                            let took = now.duration_since(conn.started);
                            self.outcome.handshake.record(took);
                            self.meter.handshakes.record(took);
                            if let Some(tls) = &conn.tls {
                                self.outcome.upgrade.record(now.duration_since(tls.since));
                            }
                            self.outcome.count("connections opened");
                            self.live.opened.fetch_add(1, Ordering::Relaxed);
                            self.live.open_now.fetch_add(1, Ordering::Relaxed);
                            scenario_turn(
                                conn,
                                &mut self.deflate,
                                &mut self.outcome.bytes,
                                |out| self.scenario.open(id, now, out),
                            );
                            flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
                            if self.scenario.paced(id) {
                                self.paced.push(id);
                            }
                        }
                        Some(Ok(None)) => return,
                        Some(Err(e)) => return self.fail(id, &handshake_reason(&e)),
                        None => return,
                    }
                }
                self.read_messages(id, now);
            }
            x if x == Op::Close as u8 => {}
            _ => {}
        }
    }

    fn read_messages(&mut self, id: usize, now: Instant) {
        let Some(Some(conn)) = self.conns.get_mut(id) else {
            return;
        };
        loop {
            match conn.decoder.decode(&mut conn.inbuf) {
                Ok(None) => break,
                Ok(Some(Message::Ping(payload))) => {
                    let _ = write_client_frame(
                        &mut conn.out,
                        OpCode::Pong,
                        true,
                        &payload,
                        rand::random(),
                    );
                }
                Ok(Some(Message::Pong(_))) => {
                    self.outcome.count("pongs");
                    self.scenario.pong(id, now);
                }
                Ok(Some(Message::Close(close))) => {
                    if conn.step == Step::Open {
                        let code = close.map_or(1005, |c| c.code.0);
                        self.outcome.error(&format!("server closed ({code})"));
                        self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                        self.scenario.closed(id);
                        let _ = write_client_frame(
                            &mut conn.out,
                            OpCode::Close,
                            true,
                            &[],
                            rand::random(),
                        );
                        conn.step = Step::Closing;
                    } else {
                        return self.drop_conn(id);
                    }
                    break;
                }
                Ok(Some(message)) => {
                    let message = match (message, conn.deflate.as_deref_mut()) {
                        (Message::Compressed(compressed), Some(deflate)) => {
                            let limit = conn.decoder.config().max_message_size;
                            match self.deflate.inflate(deflate, &compressed, limit) {
                                Ok(message) => message,
                                Err(e) => {
                                    self.outcome.error(&format!("protocol: {e}"));
                                    self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                                    return self.drop_conn(id);
                                }
                            }
                        }
                        (message, _) => message,
                    };
                    self.outcome.bytes.payload_received += match &message {
                        Message::Text(text) => text.as_bytes().len() as u64,
                        Message::Binary(data) => data.len() as u64,
                        _ => 0,
                    };
                    let answered =
                        scenario_turn(conn, &mut self.deflate, &mut self.outcome.bytes, |out| {
                            self.scenario.message(id, message, now, out)
                        });
                    if let Err(why) = answered {
                        self.outcome.error(&why);
                        self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                        return self.drop_conn(id);
                    }
                }
                Err(e) => {
                    self.outcome.error(&format!("protocol: {e}"));
                    self.live.open_now.fetch_sub(1, Ordering::Relaxed);
                    return self.drop_conn(id);
                }
            }
        }
        flush(conn, id, &mut self.ring, &mut self.outcome.bytes);
    }

    fn fail(&mut self, id: usize, why: &str) {
        if let Some(Some(conn)) = self.conns.get(id) {
            if matches!(
                conn.step,
                Step::Socket | Step::Bind | Step::Connect | Step::Handshake
            ) {
                self.in_handshake -= 1;
            }
        }
        self.outcome.error(why);
        self.live.failed.fetch_add(1, Ordering::Relaxed);
        self.drop_conn(id);
    }

    fn drop_conn(&mut self, id: usize) {
        if let Some(conn) = self.conns.get_mut(id).and_then(Option::take) {
            // A closing connection was either closed by the scenario or
            // already reported when the server's close frame came.
            if conn.step != Step::Closing {
                self.scenario.closed(id);
            }
            if let Some(socket) = conn.socket {
                let _ = self.ring.cancel_socket(socket);
                let _ = self.ring.close(socket, user_data(Op::Close, id));
            }
        }
    }
}

/// A scenario's callback for `conn`, with an outbox that compresses where
/// the connection agreed, counting the payload it queued.
fn scenario_turn<R>(
    conn: &mut Conn,
    shared: &mut SharedDeflate,
    bytes: &mut ByteCounts,
    turn: impl FnOnce(&mut Outbox<'_>) -> R,
) -> R {
    let mut out = Outbox::compressing(&mut conn.out, conn.deflate.as_deref_mut(), shared);
    let result = turn(&mut out);
    bytes.payload_sent += out.payload_bytes();
    result
}

/// Sends what is queued, one send at a time per connection (sends on one
/// socket must not overtake each other), counting the frames in `bytes`.
fn flush(conn: &mut Conn, id: usize, ring: &mut Ring, bytes: &mut ByteCounts) {
    if conn.sending {
        return;
    }
    let Some(socket) = conn.socket else { return };
    let queued = conn.out.len();
    let wire: Bytes = match conn.tls.as_deref_mut() {
        None if conn.out.is_empty() => return,
        None => conn.out.split().freeze(),
        Some(tls) => match tls.seal(&mut conn.out) {
            Some(wire) => wire,
            None => return,
        },
    };
    // Before the 101 what goes out is the request, not frames.
    if matches!(conn.step, Step::Open | Step::Closing) {
        bytes.wire_sent += (queued - conn.out.len()) as u64;
    }
    if ring.send(socket, wire, user_data(Op::Send, id)).is_ok() {
        conn.sending = true;
    }
}

/// A failure's reason as the report names it.
fn reason(result: i32) -> String {
    match -result {
        libc::ECONNREFUSED => "refused".into(),
        libc::ETIMEDOUT => "timeout".into(),
        libc::ECONNRESET => "reset".into(),
        libc::EADDRNOTAVAIL => "no free local port (EADDRNOTAVAIL): add source addresses".into(),
        libc::ENFILE | libc::EMFILE => "open-files limit".into(),
        libc::ECANCELED => "cancelled".into(),
        errno => std::io::Error::from_raw_os_error(errno).to_string(),
    }
}

fn handshake_reason(error: &Error) -> String {
    match error {
        Error::UnexpectedStatus(code) => format!("bad status {code}"),
        Error::AcceptMismatch => "bad accept".into(),
        Error::MalformedHttp(_) | Error::HeadTooLarge { .. } => "not HTTP".into(),
        other => format!("bad handshake: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_stays_small() {
        // Held for every connection, hundreds of thousands in `hold`: TLS
        // and permessage-deflate state are one pointer each, boxed only
        // for connections that use them, and the upgrade's state is boxed
        // for its few milliseconds.
        let size = std::mem::size_of::<Option<Conn>>();
        eprintln!(
            "Option<Conn>: {size} B; TlsConn (boxed, wss:// only): {} B; \
             ConnDeflate (boxed, deflate agreed only; streams apart): {} B",
            std::mem::size_of::<TlsConn>(),
            std::mem::size_of::<ConnDeflate>(),
        );
        assert!(size <= 152, "{size} B per connection");
        assert!(std::mem::size_of::<ConnDeflate>() <= 24);
    }
}
