//! The client runtime: one worker thread with one io_uring ring
//! ([`uringws_engine::ring`]) drives many WebSocket client connections —
//! socket, optional bind to a source address, connect, upgrade, then
//! whatever the scenario does with them. Sockets are direct descriptors, so
//! a worker is not bound by the process's open-files limit.

use crate::report::Latency;
use crate::target::{SourceRange, Target};
use bytes::{Bytes, BytesMut};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uringws_engine::ring::{Completion, Ring, RingConfig, Socket};
use uringws_protocol::{
    encoder::write_client_frame,
    handshake::{ClientHandshake, ClientRequest},
    Decoder, DecoderConfig, Error, Message, OpCode, Role,
};

/// How often scenarios get [`Scenario::tick`] for each open connection.
pub const TICK: Duration = Duration::from_millis(100);

/// What a scenario does with open connections.
pub trait Scenario: Send + 'static {
    /// The connection `id` is upgraded; return the bytes to send (client
    /// frames), if any.
    fn open(&mut self, id: usize, now: Instant, out: &mut BytesMut);
    /// A message arrived; write any reply into `out`. Returning an error
    /// string counts it under that reason and closes the connection.
    fn message(
        &mut self,
        id: usize,
        message: Message,
        now: Instant,
        out: &mut BytesMut,
    ) -> Result<(), String>;
    /// Called every tick for each open connection (pings, timed sends).
    fn tick(&mut self, id: usize, now: Instant, out: &mut BytesMut) {
        let _ = (id, now, out);
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

/// Counters shared with the progress line.
#[derive(Default)]
pub struct Live {
    pub opened: AtomicU64,
    pub failed: AtomicU64,
    pub open_now: AtomicU64,
    pub messages: AtomicU64,
}

/// One worker's share of the run.
pub struct Plan {
    pub targets: Vec<Target>,
    pub sources: Option<SourceRange>,
    /// Global index of this worker's first connection (for spreading
    /// targets and sources evenly).
    pub first: usize,
    pub connections: usize,
    /// New connections per second (0: as fast as `concurrency` allows).
    pub rate: f64,
    /// Handshakes in progress at most.
    pub concurrency: usize,
    pub timeout: Duration,
    /// Until when the run goes on.
    pub until: Instant,
}

/// What a worker measured.
#[derive(Default)]
pub struct Outcome {
    pub counts: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub handshake: Latency,
    pub alive_at_end: u64,
}

impl Outcome {
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
    started: Instant,
    deadline: Instant,
    handshake: Option<ClientHandshake>,
    inbuf: BytesMut,
    out: BytesMut,
    sending: bool,
    recv_armed: bool,
    decoder: Decoder,
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

/// Runs one worker until its plan's end or `stop`.
pub fn run<S: Scenario>(
    plan: Plan,
    mut scenario: S,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> (Outcome, S) {
    let mut outcome = Outcome::default();
    let files = u32::try_from(plan.connections + 64).unwrap_or(u32::MAX);
    let mut ring = match Ring::new(&RingConfig {
        entries: 4096,
        recv_buffers: 1024,
        recv_buffer_size: 16 << 10,
        files,
    }) {
        Ok(ring) => ring,
        Err(e) => {
            *outcome
                .errors
                .entry(format!("io_uring setup: {e}"))
                .or_default() += 1;
            return (outcome, scenario);
        }
    };
    if (ring.files() as usize) < plan.connections {
        *outcome
            .errors
            .entry(format!(
                "open-files limit: this worker can hold {} of {} connections (raise `ulimit -n` or add workers)",
                ring.files(),
                plan.connections
            ))
            .or_default() += (plan.connections - ring.files() as usize) as u64;
    }
    let capacity = plan.connections.min(ring.files() as usize);
    let mut conns: Vec<Option<Conn>> = Vec::with_capacity(capacity);
    let mut deadlines: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut completions = Vec::with_capacity(512);
    let mut rearm = Vec::new();
    let start = Instant::now();
    let mut in_handshake = 0usize;
    let mut last_tick = start;
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= plan.until {
            break;
        }
        // Start new connections within the rate and concurrency limits.
        while conns.len() < capacity && in_handshake < plan.concurrency {
            let due = if plan.rate > 0.0 {
                start + Duration::from_secs_f64(conns.len() as f64 / plan.rate)
            } else {
                start
            };
            if due > now {
                break;
            }
            let id = conns.len();
            let target = (plan.first + id) % plan.targets.len();
            conns.push(Some(Conn {
                step: Step::Socket,
                socket: None,
                target,
                started: now,
                deadline: now + plan.timeout,
                handshake: None,
                inbuf: BytesMut::new(),
                out: BytesMut::new(),
                sending: false,
                recv_armed: false,
                decoder: Decoder::new(Role::Client, DecoderConfig::default()),
            }));
            in_handshake += 1;
            deadlines.push(Reverse((now + plan.timeout, id)));
            if ring
                .tcp_socket(plan.targets[target].addr, user_data(Op::Socket, id))
                .is_err()
            {
                fail(
                    &mut conns,
                    id,
                    &mut ring,
                    &mut outcome,
                    &live,
                    "io_uring submit",
                    &mut in_handshake,
                );
            }
        }
        // Wait in the kernel for completions, but come round regularly for
        // ticks, deadlines and new connections.
        if ring.wait(Duration::from_millis(5)).is_err() {
            outcome.error("io_uring submit");
            break;
        }
        completions.clear();
        ring.drain(&mut completions, 512);
        let now = Instant::now();
        for c in completions.iter() {
            let (op, id) = split(c.user_data);
            handle(
                op,
                id,
                c,
                now,
                &plan,
                &mut conns,
                &mut ring,
                &mut scenario,
                &mut outcome,
                &live,
                &mut in_handshake,
                &mut rearm,
            );
        }
        for id in rearm.drain(..) {
            if let Some(Some(conn)) = conns.get_mut(id) {
                if !conn.recv_armed
                    && matches!(conn.step, Step::Handshake | Step::Open | Step::Closing)
                {
                    if let Some(socket) = conn.socket {
                        conn.recv_armed = ring.recv_multi(socket, user_data(Op::Recv, id)).is_ok();
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
            let timed_out = conns.get(id).and_then(|c| c.as_ref()).is_some_and(|c| {
                c.step != Step::Open && c.step != Step::Closing && c.deadline <= now
            });
            if timed_out {
                fail(
                    &mut conns,
                    id,
                    &mut ring,
                    &mut outcome,
                    &live,
                    "timeout",
                    &mut in_handshake,
                );
            }
        }
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            // Every connection tried and none left: nothing more to do.
            if conns.len() == capacity && in_handshake == 0 && conns.iter().all(Option::is_none) {
                break;
            }
            for (id, conn) in conns.iter_mut().enumerate() {
                let Some(conn) = conn.as_mut() else {
                    continue;
                };
                if conn.step != Step::Open {
                    continue;
                }
                if scenario.done(id, now) {
                    let _ = write_client_frame(
                        &mut conn.out,
                        OpCode::Close,
                        true,
                        &1000u16.to_be_bytes(),
                        rand::random(),
                    );
                    conn.step = Step::Closing;
                    live.open_now.fetch_sub(1, Ordering::Relaxed);
                    outcome.count("connections closed");
                } else {
                    scenario.tick(id, now, &mut conn.out);
                }
                flush(conn, id, &mut ring);
            }
        }
    }
    // The end: count who is still open, then let the sockets go.
    for (id, conn) in conns.iter_mut().enumerate() {
        if let Some(conn) = conn.take() {
            if conn.step == Step::Open {
                outcome.alive_at_end += 1;
            }
            if let Some(socket) = conn.socket {
                let _ = ring.cancel_socket(socket);
                let _ = ring.close(socket, user_data(Op::Close, id));
            }
        }
    }
    let _ = ring.submit();
    // Give the closes a moment to run before the ring goes.
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        completions.clear();
        ring.drain(&mut completions, 512);
        for c in &completions {
            ring.recycle(c);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (outcome, scenario)
}

#[allow(clippy::too_many_arguments)]
fn handle(
    op: u8,
    id: usize,
    c: &Completion,
    now: Instant,
    plan: &Plan,
    conns: &mut [Option<Conn>],
    ring: &mut Ring,
    scenario: &mut impl Scenario,
    outcome: &mut Outcome,
    live: &Live,
    in_handshake: &mut usize,
    rearm: &mut Vec<usize>,
) {
    let Some(Some(conn)) = conns.get_mut(id) else {
        ring.recycle(c);
        return;
    };
    match op {
        x if x == Op::Socket as u8 => {
            let Some(socket) = c.socket() else {
                return fail(
                    conns,
                    id,
                    ring,
                    outcome,
                    live,
                    &reason(c.result),
                    in_handshake,
                );
            };
            conn.socket = Some(socket);
            let target = plan.targets[conn.target].addr;
            let _ = ring.set_nodelay(socket, user_data(Op::NoDelay, id));
            let submitted = match &plan.sources {
                Some(sources) => {
                    conn.step = Step::Bind;
                    let source = SocketAddr::new(sources.pick(plan.first + id), 0);
                    ring.bind(socket, source, user_data(Op::Bind, id))
                }
                None => {
                    conn.step = Step::Connect;
                    ring.connect(socket, target, user_data(Op::Connect, id))
                }
            };
            if submitted.is_err() {
                fail(
                    conns,
                    id,
                    ring,
                    outcome,
                    live,
                    "io_uring submit",
                    in_handshake,
                );
            }
        }
        x if x == Op::Bind as u8 => {
            if c.result < 0 {
                return fail(
                    conns,
                    id,
                    ring,
                    outcome,
                    live,
                    &format!("bind: {}", reason(c.result)),
                    in_handshake,
                );
            }
            conn.step = Step::Connect;
            let (socket, target) = (conn.socket, plan.targets[conn.target].addr);
            if let Some(socket) = socket {
                if ring
                    .connect(socket, target, user_data(Op::Connect, id))
                    .is_err()
                {
                    fail(
                        conns,
                        id,
                        ring,
                        outcome,
                        live,
                        "io_uring submit",
                        in_handshake,
                    );
                }
            }
        }
        x if x == Op::Connect as u8 => {
            if c.result < 0 {
                return fail(
                    conns,
                    id,
                    ring,
                    outcome,
                    live,
                    &reason(c.result),
                    in_handshake,
                );
            }
            let target = &plan.targets[conn.target];
            let request = ClientRequest::new(&target.host, &target.path);
            let Ok((handshake, bytes)) = ClientHandshake::new(&request) else {
                return fail(conns, id, ring, outcome, live, "bad request", in_handshake);
            };
            conn.handshake = Some(handshake);
            conn.step = Step::Handshake;
            conn.out.extend_from_slice(&bytes);
            flush(conn, id, ring);
            if let Some(socket) = conn.socket {
                conn.recv_armed = ring.recv_multi(socket, user_data(Op::Recv, id)).is_ok();
            }
        }
        x if x == Op::Send as u8 => {
            conn.sending = false;
            if c.result < 0 {
                return fail(
                    conns,
                    id,
                    ring,
                    outcome,
                    live,
                    &reason(c.result),
                    in_handshake,
                );
            }
            flush(conn, id, ring);
        }
        x if x == Op::Recv as u8 => {
            if !c.more() {
                conn.recv_armed = false;
            }
            if c.result == -libc::ENOBUFS {
                rearm.push(id);
                return;
            }
            if c.result <= 0 {
                let why = if c.result == 0 {
                    "closed by server".to_string()
                } else {
                    reason(c.result)
                };
                return match conn.step {
                    Step::Closing => finish(conns, id, ring, live),
                    Step::Open => {
                        outcome.error(&why);
                        live.open_now.fetch_sub(1, Ordering::Relaxed);
                        drop_conn(conns, id, ring);
                    }
                    _ => fail(conns, id, ring, outcome, live, &why, in_handshake),
                };
            }
            if let Some(data) = ring.received(c) {
                conn.inbuf.extend_from_slice(data);
            }
            ring.recycle(c);
            if !conn.recv_armed {
                rearm.push(id);
            }
            if conn.step == Step::Handshake {
                let parsed = conn
                    .handshake
                    .as_ref()
                    .map(|h| h.parse_response(&conn.inbuf));
                match parsed {
                    Some(Ok(Some(response))) => {
                        let _ = conn.inbuf.split_to(response.head_len());
                        conn.step = Step::Open;
                        conn.handshake = None;
                        *in_handshake -= 1;
                        outcome.handshake.record(now.duration_since(conn.started));
                        outcome.count("connections opened");
                        live.opened.fetch_add(1, Ordering::Relaxed);
                        live.open_now.fetch_add(1, Ordering::Relaxed);
                        scenario.open(id, now, &mut conn.out);
                        flush(conn, id, ring);
                    }
                    Some(Ok(None)) => return,
                    Some(Err(e)) => {
                        return fail(
                            conns,
                            id,
                            ring,
                            outcome,
                            live,
                            &handshake_reason(&e),
                            in_handshake,
                        )
                    }
                    None => return,
                }
            }
            read_messages(conns, id, ring, scenario, outcome, live, now);
        }
        x if x == Op::Close as u8 => {}
        _ => {}
    }
}

fn read_messages(
    conns: &mut [Option<Conn>],
    id: usize,
    ring: &mut Ring,
    scenario: &mut impl Scenario,
    outcome: &mut Outcome,
    live: &Live,
    now: Instant,
) {
    let Some(Some(conn)) = conns.get_mut(id) else {
        return;
    };
    loop {
        match conn.decoder.decode(&mut conn.inbuf) {
            Ok(None) => break,
            Ok(Some(Message::Ping(payload))) => {
                let _ =
                    write_client_frame(&mut conn.out, OpCode::Pong, true, &payload, rand::random());
            }
            Ok(Some(Message::Pong(_))) => {
                outcome.count("pongs");
                scenario.pong(id, now);
            }
            Ok(Some(Message::Close(close))) => {
                if conn.step == Step::Open {
                    let code = close.map_or(1005, |c| c.code.0);
                    outcome.error(&format!("server closed ({code})"));
                    live.open_now.fetch_sub(1, Ordering::Relaxed);
                    let _ =
                        write_client_frame(&mut conn.out, OpCode::Close, true, &[], rand::random());
                    conn.step = Step::Closing;
                } else {
                    return finish(conns, id, ring, live);
                }
                break;
            }
            Ok(Some(message)) => {
                live.messages.fetch_add(1, Ordering::Relaxed);
                if let Err(why) = scenario.message(id, message, now, &mut conn.out) {
                    outcome.error(&why);
                    live.open_now.fetch_sub(1, Ordering::Relaxed);
                    return drop_conn(conns, id, ring);
                }
            }
            Err(e) => {
                outcome.error(&format!("protocol: {e}"));
                live.open_now.fetch_sub(1, Ordering::Relaxed);
                return drop_conn(conns, id, ring);
            }
        }
    }
    flush(conn, id, ring);
}

/// Sends what is queued, one send at a time per connection (sends on one
/// socket must not overtake each other).
fn flush(conn: &mut Conn, id: usize, ring: &mut Ring) {
    if conn.sending || conn.out.is_empty() {
        return;
    }
    let Some(socket) = conn.socket else { return };
    let bytes: Bytes = conn.out.split().freeze();
    if ring.send(socket, bytes, user_data(Op::Send, id)).is_ok() {
        conn.sending = true;
    }
}

fn fail(
    conns: &mut [Option<Conn>],
    id: usize,
    ring: &mut Ring,
    outcome: &mut Outcome,
    live: &Live,
    why: &str,
    in_handshake: &mut usize,
) {
    if let Some(Some(conn)) = conns.get(id) {
        if matches!(
            conn.step,
            Step::Socket | Step::Bind | Step::Connect | Step::Handshake
        ) {
            *in_handshake -= 1;
        }
    }
    outcome.error(why);
    live.failed.fetch_add(1, Ordering::Relaxed);
    drop_conn(conns, id, ring);
}

/// A close handshake completed.
fn finish(conns: &mut [Option<Conn>], id: usize, ring: &mut Ring, live: &Live) {
    let _ = live;
    drop_conn(conns, id, ring);
}

fn drop_conn(conns: &mut [Option<Conn>], id: usize, ring: &mut Ring) {
    if let Some(conn) = conns.get_mut(id).and_then(Option::take) {
        if let Some(socket) = conn.socket {
            let _ = ring.cancel_socket(socket);
            let _ = ring.close(socket, user_data(Op::Close, id));
        }
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
