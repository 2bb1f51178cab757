//! One worker: a thread pinned to a core, owning its ring, its listeners,
//! its connections and its handler. Nothing here is shared with other
//! workers; they reach it only through its command channel.
//!
//! The worker moves bytes between the ring and each connection's sans-IO
//! state machine ([`Connection`]) and turns what the connection reports
//! into handler callbacks. By concern: `accept`, `input` (receives and the
//! HTTP request), `events` (callbacks and fan-out), `output` (sends),
//! `timers`, `commands` (other threads, shutdown), and `wait` (where the
//! loop sleeps between turns).

mod accept;
pub(crate) use accept::Listener;
mod commands;
mod events;
mod input;
mod log;
mod output;
mod timers;
mod wait;

use crate::{
    config::EngineConfig,
    conn::Ctx,
    connection::{Connection, Incoming, Outbox},
    handler::Handler,
    pubsub::{Publisher, TopicTable},
    remote::{Command, Mailbox},
    stats::WorkerStats,
};
use slab::Slab;
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    io,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::mpsc::UnboundedReceiver;
use uringws_ring::{Completion, Ring, RingConfig, Socket, Token};

/// Completions taken off the queue per batch.
const BATCH: usize = 512;
/// Longest the loop runs without letting other tasks of the worker run:
/// under constant load, and while it waits in its ring between messages
/// (tokio's tasks, timers and I/O on this thread wait that long, plus up
/// to a scheduler tick).
const YIELD_EVERY_MS: u64 = 2;

/// What a completion belongs to ([`Token::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    /// The mailbox's bell: a command arrived while the worker waited in
    /// its ring.
    Bell = 5,
}

impl Kind {
    fn of(token: Token) -> Option<Kind> {
        match token.kind {
            1 => Some(Kind::Accept),
            2 => Some(Kind::Recv),
            3 => Some(Kind::Send),
            4 => Some(Kind::Close),
            5 => Some(Kind::Bell),
            _ => None,
        }
    }

    fn token(self, gen: u32, slot: u32) -> u64 {
        Token::new(self as u8, gen, slot).encode()
    }
}

/// The ring operations of a slot that are in flight or due: the worker's
/// I/O bookkeeping (the connection's own life is in [`Connection`]).
mod ops {
    pub const RECV_ARMED: u8 = 1;
    /// Re-arm the multishot receive at the end of this turn.
    pub const REARM: u8 = 1 << 1;
    /// The transport is shut: the close is submitted or done.
    pub const SHUT: u8 = 1 << 2;
    pub const CLOSING_FD: u8 = 1 << 3;
}

/// A connection in the worker's slab.
struct Slot<S> {
    conn: Connection,
    /// The handler's state for it, from the upgrade on.
    state: Option<S>,
    socket: Socket,
    ops: u8,
    /// The deadline this slot has in the timer heap (0: none).
    timer_at: u64,
}

impl<S> Slot<S> {
    fn has(&self, op: u8) -> bool {
        self.ops & op != 0
    }
}

pub(crate) struct Worker<H: Handler> {
    id: usize,
    ring: Ring,
    slots: Slab<Slot<H::State>>,
    handler: H,
    accept: accept::Accepts,
    ctx: Ctx,
    rx: UnboundedReceiver<Command>,
    timers: BinaryHeap<Reverse<timers::Timer>>,
    rearm: Vec<u32>,
    next_gen: u32,
    /// Upgraded connections not yet reported closed.
    open: usize,
    /// Upgraded connections held at most; the rest of the file table is
    /// for handshakes, so a client past it gets a 503, not a wait.
    capacity: usize,
    /// When each connection still in its handshake was accepted: a side
    /// table, so an upgraded connection carries no timestamp.
    accepted_at: HashMap<u32, Instant>,
    started: Instant,
    shutdown: commands::Shutdown,
    stats: Arc<WorkerStats>,
    logs: log::Logs,
}

/// File-table entries kept beyond the upgraded connections, at most: for
/// connections in their handshake or closing, and for answering 503 when
/// the worker is full rather than leaving clients in the listen backlog.
/// A few hundred answer a storm of refusals; more would only cost
/// capacity (19,000 held connections need 19,256 of a 20,000 limit).
pub(crate) const MAX_RESERVE: u32 = 256;

/// Upgraded connections a ring of `files` direct descriptors holds, and
/// the entries kept beyond them. The reserve has room for what accepts in
/// flight take three times over, so that accepts paused near a full table
/// (`Accepts::size_for`) resume while the worker is at its capacity.
fn capacity(files: u32, max_connections: usize, in_flight: u32) -> (usize, u32) {
    let reserve = (files / 16)
        .clamp(8, MAX_RESERVE)
        .max(in_flight.saturating_mul(3))
        .min(files / 2);
    (((files - reserve) as usize).min(max_connections), reserve)
}

impl<H: Handler> Worker<H> {
    pub(crate) fn new(
        id: usize,
        handler: H,
        listeners: Vec<Listener>,
        config: Arc<EngineConfig>,
        (commands, rx): (Mailbox, UnboundedReceiver<Command>),
        publisher: Publisher,
        stats: Arc<WorkerStats>,
    ) -> io::Result<Self> {
        // Room for every allowed connection plus some still in their
        // handshake or closing; the ring caps it at the open-files limit.
        let files = config
            .max_connections_per_worker
            .saturating_add(MAX_RESERVE as usize)
            .min(u32::MAX as usize) as u32;
        let ring = Ring::new(&RingConfig {
            entries: config.ring_entries,
            recv_buffers: config.recv_buffers,
            recv_buffer_size: config.recv_buffer_size,
            files,
            watched: true,
        })?;
        let mut accept = accept::Accepts::new(listeners, config.peer_addresses, config.backlog);
        let (capacity, reserve) = capacity(
            ring.files(),
            config.max_connections_per_worker,
            accept.in_flight(),
        );
        accept.size_for(ring.files(), reserve);
        stats.set_capacity(capacity);
        tracing::debug!(
            worker = id,
            files = ring.files(),
            capacity,
            slot_bytes = std::mem::size_of::<Slot<H::State>>(),
            "ring ready"
        );
        // Reserved, not touched: pages become resident only as slots fill,
        // and the slab never moves (a doubling copy would leave the old
        // block resident in the allocator). The same for the tables with
        // an entry per connection.
        let files = ring.files() as usize;
        let slots = Slab::with_capacity(files);
        Ok(Worker {
            id,
            ring,
            slots,
            handler,
            accept,
            ctx: Ctx {
                worker: id,
                out: Outbox::new(config),
                commands,
                topics: TopicTable::new(id, publisher.interest(), files),
                publisher,
                to_publish: Vec::new(),
            },
            rx,
            timers: BinaryHeap::with_capacity(files),
            rearm: Vec::new(),
            next_gen: 0,
            open: 0,
            capacity,
            accepted_at: HashMap::new(),
            started: Instant::now(),
            shutdown: commands::Shutdown::default(),
            stats,
            logs: log::Logs::default(),
        })
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn config(&self) -> &EngineConfig {
        &self.ctx.out.config
    }

    pub(crate) async fn run(mut self) -> io::Result<()> {
        let doorbell = self.ring.watch()?;
        self.arm_accepts()?;
        self.arm_bell();
        let mut completions = Vec::with_capacity(BATCH);
        let mut last_wait = 0;
        // One timer for the worker's whole life, moved only when the next
        // deadline moves: a connection's deadlines are seconds away, so
        // most waits keep it where it is, where a new sleep per wait would
        // register with tokio's timer wheel and leave it every time.
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            self.ctx.out.now = self.now();
            // Before the submit: a forced end of a shutdown queues cancels
            // and closes that must go out now, not after the next wake.
            if self.finished() {
                break;
            }
            self.flush()?;
            self.ring.submit()?;
            let ring_time = self.ctx.out.now < last_wait + YIELD_EVERY_MS;
            if ring_time && self.wait_in_ring(last_wait + YIELD_EVERY_MS)? {
                // Work came within tokio's patience.
            } else if self.ring.may_sleep() {
                self.trim();
                let deadline = self
                    .next_deadline()
                    .map(|ms| self.started + Duration::from_millis(ms));
                if deadline != armed {
                    if let Some(at) = deadline {
                        sleep.as_mut().reset(at.into());
                    }
                    armed = deadline;
                }
                // Woken by the ring's doorbell, a command from another thread, or
                // the next deadline.
                let command = tokio::select! {
                    biased;
                    guard = doorbell.readable() => {
                        guard?.clear_ready();
                        None
                    }
                    Some(command) = self.rx.recv() => Some(command),
                    _ = &mut sleep, if deadline.is_some() => None,
                };
                self.ring.woke();
                // Runs the completion work the kernel left for this thread.
                self.ring.submit()?;
                self.ctx.out.now = self.now();
                if let Some(command) = command {
                    self.command(command);
                }
                last_wait = self.ctx.out.now;
            } else if self.ctx.out.now >= last_wait + YIELD_EVERY_MS {
                // Under constant load the loop never waits: let the
                // handlers' own tasks (spawn_local) run now and then. Not
                // every turn: a yield costs tokio a poll of its driver.
                tokio::task::yield_now().await;
                last_wait = self.now();
                self.ctx.out.now = last_wait;
            }
            // Otherwise the time read at the top of this turn stands (it is
            // in milliseconds): at one connection, clock reads were a tenth
            // of the worker's user time.
            loop {
                completions.clear();
                self.ring.drain(&mut completions, BATCH);
                if completions.is_empty() {
                    break;
                }
                for completion in completions.drain(..) {
                    self.complete(completion);
                }
            }
            while let Ok(command) = self.rx.try_recv() {
                self.command(command);
            }
            self.run_timers();
            self.wake_all();
            self.rearm_recvs();
            self.stats.sync(&self.ctx.out.counters);
            self.stats.set_topics(self.ctx.topics.sizes());
        }
        Ok(())
    }

    /// About to sleep: what the last burst grew beyond everyday needs goes
    /// back, so an idle server's memory does not stay at its largest
    /// fan-out's (the allocator returns freed large blocks to the system).
    fn trim(&mut self) {
        const KEEP: usize = 4096;
        self.ring.trim(KEEP);
        // A connection storm's handshakes are over.
        if self.accepted_at.capacity() > KEEP && self.accepted_at.len() < KEEP / 4 {
            self.accepted_at.shrink_to(KEEP / 4);
        }
        let direct = &mut self.ctx.out.direct;
        if direct.is_empty() && direct.capacity() > KEEP {
            *direct = Vec::with_capacity(KEEP);
        }
    }

    fn complete(&mut self, mut c: Completion) {
        let Some(token) = Token::decode(c.user_data) else {
            // Cancellations (`uringws_ring::IGNORED`).
            return;
        };
        match Kind::of(token) {
            Some(Kind::Accept) => self.on_accept(token, &c),
            Some(Kind::Recv) => {
                let data = c.take_received();
                self.on_recv(token, c.result, c.more(), data);
            }
            Some(Kind::Send) => {
                let returned = c.take_vectored();
                self.on_send(token, c.result, returned);
            }
            Some(Kind::Close) => {
                if let Some(slot) = live_token(&mut self.slots, token) {
                    slot.ops &= !ops::CLOSING_FD;
                    self.try_free(token.slot);
                }
            }
            // The commands themselves are taken every turn; a poll that
            // ended is armed again.
            Some(Kind::Bell) if !c.more() => self.arm_bell(),
            Some(Kind::Bell) | None => {}
        }
    }

    /// After anything happened to a connection: hands what it reports to
    /// the handler, then shuts its transport if it is done, or schedules
    /// its next deadline.
    fn drive(&mut self, slot: u32) {
        let mut nothing: &mut [u8] = &mut [];
        self.drive_input(slot, &mut nothing);
    }

    /// [`drive`](Self::drive), reading `input` (bytes just received) as it
    /// goes: frames whole in it are read from it without going through the
    /// connection's buffer.
    fn drive_input(&mut self, slot: u32, input: &mut impl Incoming) {
        loop {
            let Some(s) = self.slots.get_mut(slot as usize) else {
                return;
            };
            let Some(event) = s.conn.poll_event_in(input, &mut self.ctx.out) else {
                break;
            };
            self.dispatch(slot, event);
            self.deliver_published();
        }
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        s.conn.after_input(&mut self.ctx.out);
        if s.conn.is_done(&self.ctx.out) {
            self.teardown(slot);
        } else {
            self.schedule(slot);
        }
    }

    /// Drives the connections that something other than their own input
    /// touched (a drop or close during another's callback or a fan-out).
    fn wake_all(&mut self) {
        while !self.ctx.out.wake.is_empty() {
            for slot in std::mem::take(&mut self.ctx.out.wake) {
                self.drive(slot);
            }
        }
    }

    /// Closes the socket and forgets the connection once no operation of
    /// it is in flight; the handler hears of an open connection's end
    /// first.
    fn teardown(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if s.has(ops::SHUT) {
            return;
        }
        s.ops |= ops::SHUT;
        s.conn.on_transport_closed(&mut self.ctx.out);
        // The 1006 report of a connection that was open.
        while let Some(event) = self.slots[slot as usize].conn.poll_event(&mut self.ctx.out) {
            self.dispatch(slot, event);
            self.deliver_published();
        }
        let s = &mut self.slots[slot as usize];
        let (socket, gen) = (s.socket, s.conn.id.gen);
        if s.has(ops::RECV_ARMED) || s.conn.sending() {
            // By socket: sends holding a buffer carry the ring's tag in
            // their user_data, not ours.
            let _ = self.ring.cancel_socket(socket);
        }
        if self
            .ring
            .close(socket, Kind::Close.token(gen, slot))
            .is_ok()
        {
            s.ops |= ops::CLOSING_FD;
        } else {
            let _ = self.ring.close_now(socket);
        }
        self.try_free(slot);
    }

    /// Forgets a shut connection once the ring holds nothing of it.
    fn try_free(&mut self, slot: u32) {
        let Some(s) = self.slots.get(slot as usize) else {
            return;
        };
        let idle =
            s.has(ops::SHUT) && !s.conn.sending() && !s.has(ops::RECV_ARMED | ops::CLOSING_FD);
        if idle {
            // Already gone for an opened connection (its close report);
            // this catches any other path, as a stale slot would get
            // another connection's publications.
            self.ctx.topics.remove_conn(slot);
            let s = self.slots.remove(slot as usize);
            s.conn.free(&mut self.ctx.out);
            self.accepted_at.remove(&slot);
            self.freed();
        }
    }
}

/// The slot `slot` if it still holds the connection of generation `gen`.
fn live<S>(slots: &mut Slab<Slot<S>>, slot: u32, gen: u32) -> Option<&mut Slot<S>> {
    slots
        .get_mut(slot as usize)
        .filter(|s| s.conn.id.gen == gen)
}

/// The slot a completion's token names, if it still holds that connection.
fn live_token<S>(slots: &mut Slab<Slot<S>>, token: Token) -> Option<&mut Slot<S>> {
    slots
        .get_mut(token.slot as usize)
        .filter(|s| token.is_for(s.conn.id.gen))
}

#[cfg(test)]
mod tests {
    use super::capacity;

    #[test]
    fn capacity_keeps_a_reserve_that_lets_paused_accepts_resume() {
        // The default table (max_connections_per_worker 1 << 20) is bounded
        // by the kernel's 1 << 20, then by the open-files limit.
        assert_eq!(capacity(1 << 20, 1 << 20, 8), ((1 << 20) - 256, 256));
        assert_eq!(capacity(20_000, 1 << 20, 8), (19_744, 256));
        assert_eq!(capacity(1200, 1 << 20, 8), (1125, 75));
        // max_connections_per_worker below what the table allows.
        assert_eq!(capacity(356, 100, 8).0, 100);
        // Many listeners, or a multishot accept's margin: at least three
        // times what accepts in flight take.
        assert_eq!(capacity(1024, 1 << 20, 32), (928, 96));
        assert_eq!(capacity(20_000, 1 << 20, 128), (19_616, 384));
        // Tiny tables keep half for handshakes.
        assert_eq!(capacity(10, 1 << 20, 8), (5, 5));
        assert_eq!(capacity(1, 1 << 20, 8), (1, 0));
    }
}
