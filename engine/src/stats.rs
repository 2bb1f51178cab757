//! Counters a worker shares with the rest of the process (health, metrics).
//! Written by the worker only, read by anyone: relaxed atomics. Counters
//! bumped per message are kept in plain integers on the worker
//! ([`Counters`]) and copied here once per loop turn, so the hot path does
//! no atomic read-modify-write.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

/// Upper bounds, in seconds, of a [`Histogram`]'s buckets (Prometheus'
/// `le`): from 100 µs, a loopback handshake, to 10 s, a stuck one.
pub const HISTOGRAM_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Durations counted in [`HISTOGRAM_BUCKETS`], by one worker, read by
/// anyone. Recorded per handshake or per publication, not per message.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last one is past every bound.
    counts: [AtomicU64; HISTOGRAM_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        let bucket = HISTOGRAM_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(HISTOGRAM_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Cumulative counts, one per bound of [`HISTOGRAM_BUCKETS`] and last
    /// the total (`+Inf`).
    pub fn cumulative(&self) -> [u64; HISTOGRAM_BUCKETS.len() + 1] {
        let mut total = 0;
        std::array::from_fn(|i| {
            total += self.counts[i].load(Ordering::Relaxed);
            total
        })
    }

    /// Seconds recorded, in all.
    pub fn sum(&self) -> f64 {
        self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// How a request head ended, for [`WorkerStats::requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestOutcome {
    /// An upgrade attempt (or a head that could not be parsed) answered
    /// with this status; 101 is a successful handshake.
    Handshake(u16),
    /// A plain HTTP request answered with this status.
    Http(u16),
    /// No complete head within the handshake timeout.
    HandshakeTimeout,
}

impl Counters {
    /// `bytes` left a connection's queue (sent, or dropped with it).
    pub(crate) fn unqueue(&mut self, bytes: u32) {
        debug_assert!(
            self.queued_bytes >= u64::from(bytes),
            "queued_bytes out of step"
        );
        self.queued_bytes = self.queued_bytes.saturating_sub(u64::from(bytes));
    }
}

/// The worker-side tallies of [`WorkerStats`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    /// A gauge among the counters: bytes queued or in flight on every
    /// connection of the worker.
    pub queued_bytes: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub backpressure_drops: u64,
    pub backpressure_closes: u64,
    /// TLS connections failed by a bad record or handshake (an alert sent).
    pub tls_failures: u64,
    /// TLS handshakes completed, in full and resuming a session.
    pub tls_full: u64,
    pub tls_resumed: u64,
    /// A gauge: TLS connections on the list of those holding expanded keys.
    pub tls_keyed: u64,
    /// Upgrades that agreed to permessage-deflate.
    pub deflate_agreed: u64,
    /// Messages received compressed, and sent compressed (a publication:
    /// once per delivery).
    pub deflate_in: u64,
    pub deflate_out: u64,
    /// Pings sent to silent connections, and connections closed because
    /// the answer did not come, or because nothing came for the idle
    /// timeout.
    pub pings_sent: u64,
    pub ping_timeouts: u64,
    pub idle_timeouts: u64,
}

#[derive(Debug, Default)]
pub struct WorkerStats {
    open: AtomicUsize,
    /// Upgraded connections the worker will hold, set once at its start.
    capacity: AtomicUsize,
    topics: AtomicUsize,
    subscriptions: AtomicUsize,
    /// From accept to the 101 queued.
    pub(crate) handshake_duration: Histogram,
    /// From a publish elsewhere to its frames queued on this worker.
    pub(crate) publish_delay: Histogram,
    /// Times a recv found the provided-buffer ring empty.
    pub(crate) buffer_exhaustions: AtomicU64,
    /// Publications fanned out by this worker (one per topic per publish).
    pub(crate) publishes: AtomicU64,
    /// Messages queued to subscribers.
    pub(crate) deliveries: AtomicU64,
    /// Messages not queued to a subscriber over its backpressure limit (or
    /// closing).
    pub(crate) deliveries_dropped: AtomicU64,
    queued_bytes: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    backpressure_drops: AtomicU64,
    backpressure_closes: AtomicU64,
    tls_failures: AtomicU64,
    tls_full: AtomicU64,
    tls_resumed: AtomicU64,
    tls_keyed: AtomicU64,
    deflate_agreed: AtomicU64,
    deflate_in: AtomicU64,
    deflate_out: AtomicU64,
    pings_sent: AtomicU64,
    ping_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    /// Per connection, not per message: a lock is cheap beside the
    /// syscalls of a handshake.
    requests: Mutex<BTreeMap<RequestOutcome, u64>>,
}

impl WorkerStats {
    pub(crate) fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
    }

    pub(crate) fn set_topics(&self, (topics, subscriptions): (usize, usize)) {
        self.topics.store(topics, Ordering::Relaxed);
        self.subscriptions.store(subscriptions, Ordering::Relaxed);
    }

    pub(crate) fn set_open(&self, open: usize) {
        self.open.store(open, Ordering::Relaxed);
    }

    pub(crate) fn sync(&self, c: &Counters) {
        self.queued_bytes.store(c.queued_bytes, Ordering::Relaxed);
        self.messages_in.store(c.messages_in, Ordering::Relaxed);
        self.messages_out.store(c.messages_out, Ordering::Relaxed);
        self.bytes_in.store(c.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(c.bytes_out, Ordering::Relaxed);
        self.backpressure_drops
            .store(c.backpressure_drops, Ordering::Relaxed);
        self.backpressure_closes
            .store(c.backpressure_closes, Ordering::Relaxed);
        self.tls_failures.store(c.tls_failures, Ordering::Relaxed);
        self.tls_full.store(c.tls_full, Ordering::Relaxed);
        self.tls_resumed.store(c.tls_resumed, Ordering::Relaxed);
        self.tls_keyed.store(c.tls_keyed, Ordering::Relaxed);
        self.deflate_agreed
            .store(c.deflate_agreed, Ordering::Relaxed);
        self.deflate_in.store(c.deflate_in, Ordering::Relaxed);
        self.deflate_out.store(c.deflate_out, Ordering::Relaxed);
        self.pings_sent.store(c.pings_sent, Ordering::Relaxed);
        self.ping_timeouts.store(c.ping_timeouts, Ordering::Relaxed);
        self.idle_timeouts.store(c.idle_timeouts, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self, outcome: RequestOutcome) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry(outcome).or_default() += 1;
    }

    /// Upgraded connections on this worker.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Upgraded connections this worker holds at most: the configured
    /// `max_connections_per_worker`, or less where the open-files limit
    /// bounds its ring's file table. Past it, upgrades get 503.
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Topics with at least one subscriber on this worker.
    pub fn topics(&self) -> usize {
        self.topics.load(Ordering::Relaxed)
    }

    /// Subscriptions of this worker's connections.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Seconds from accepting a connection to queueing its 101.
    pub fn handshake_duration(&self) -> &Histogram {
        &self.handshake_duration
    }

    /// Seconds from a publication made on another worker (or outside the
    /// workers) to its frames queued to this worker's subscribers.
    pub fn publish_delay(&self) -> &Histogram {
        &self.publish_delay
    }

    pub fn buffer_exhaustions(&self) -> u64 {
        self.buffer_exhaustions.load(Ordering::Relaxed)
    }

    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn deliveries_dropped(&self) -> u64 {
        self.deliveries_dropped.load(Ordering::Relaxed)
    }

    /// Bytes queued or in flight on this worker's connections.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Text and binary messages received.
    pub fn messages_in(&self) -> u64 {
        self.messages_in.load(Ordering::Relaxed)
    }

    /// Text and binary messages queued to connections (deliveries included).
    pub fn messages_out(&self) -> u64 {
        self.messages_out.load(Ordering::Relaxed)
    }

    /// Bytes read from sockets, HTTP heads and frame headers included.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Bytes written to sockets.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// Messages refused because a connection was over its backpressure
    /// limit (any sender: handlers, ConnRefs, publications).
    pub fn backpressure_drops(&self) -> u64 {
        self.backpressure_drops.load(Ordering::Relaxed)
    }

    /// Connections closed with 1008 for backpressure.
    pub fn backpressure_closes(&self) -> u64 {
        self.backpressure_closes.load(Ordering::Relaxed)
    }

    /// Pings the server sent to connections silent for `ping_interval`.
    pub fn pings_sent(&self) -> u64 {
        self.pings_sent.load(Ordering::Relaxed)
    }

    /// Connections closed (1001) because a ping went unanswered.
    pub fn ping_timeouts(&self) -> u64 {
        self.ping_timeouts.load(Ordering::Relaxed)
    }

    /// Connections closed (1001) after `idle_timeout` without a frame.
    pub fn idle_timeouts(&self) -> u64 {
        self.idle_timeouts.load(Ordering::Relaxed)
    }

    /// TLS connections ended by a record or handshake that failed (a
    /// plain request to a TLS port, a bad record, an alert from the peer):
    /// the alert went out and the connection closed.
    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    /// TLS handshakes completed in full (a new session).
    pub fn tls_handshakes_full(&self) -> u64 {
        self.tls_full.load(Ordering::Relaxed)
    }

    /// TLS handshakes that resumed a session (a client's ticket).
    pub fn tls_handshakes_resumed(&self) -> u64 {
        self.tls_resumed.load(Ordering::Relaxed)
    }

    /// TLS connections holding their expanded keys: those that sent or
    /// received a record within the last quarter to half second. The others keep
    /// raw key bytes only, and expand them again (0.2 µs) for their next
    /// record.
    pub fn tls_keyed_connections(&self) -> u64 {
        self.tls_keyed.load(Ordering::Relaxed)
    }

    /// Upgrades that agreed to permessage-deflate.
    pub fn deflate_connections(&self) -> u64 {
        self.deflate_agreed.load(Ordering::Relaxed)
    }

    /// Messages received compressed (permessage-deflate) and inflated.
    pub fn deflate_messages_in(&self) -> u64 {
        self.deflate_in.load(Ordering::Relaxed)
    }

    /// Messages sent compressed; a publication counts once per delivery.
    pub fn deflate_messages_out(&self) -> u64 {
        self.deflate_out.load(Ordering::Relaxed)
    }

    /// Request heads by outcome.
    pub fn requests(&self) -> BTreeMap<RequestOutcome, u64> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
