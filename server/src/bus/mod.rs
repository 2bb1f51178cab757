//! `bus`: several nodes as one over Redis pub/sub.
//!
//! Every publish on a node is delivered to its own subscribers at once, as
//! without a bus, and also goes to Redis once, on the channel
//! `bus_prefix` + topic. A node subscribes to that channel while it has at
//! least one subscriber to the topic on any core (the engine tells it when
//! that begins and ends: [`on_interest`](Bus::on_interest)), so Redis
//! traffic follows topics, not subscribers. A message from Redis is encoded
//! into a frame once and fanned out over the cores; a node's own messages
//! coming back are skipped.
//!
//! The Redis side runs on a thread of its own (`uringws-bus`, a
//! current-thread tokio runtime) with two connections, one to publish and
//! one to subscribe, each reconnecting with jittered back-off; the
//! subscriber subscribes again to every live topic when it is back. Workers
//! never wait for Redis: a publish is queued (at most `bus_queue` of them)
//! or, while Redis is down, dropped and counted.
//!
//! What Redis pub/sub does not say — which messages a node missed while it
//! was not subscribed, and whether one came twice — the envelope's numbers
//! do ([`envelope`]): receivers count gaps as missed and drop repeats.

mod envelope;
mod link;
mod redis;

pub use envelope::Kind;

use crate::config::BusUrl;
use envelope::{Origin, Sequencer};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};
use tokio::sync::{mpsc, Notify};
use uringws_engine::{ConnRef, Publisher};

/// A `Send + Clone` handle: the bus's settings, state and counters.
#[derive(Clone)]
pub struct Bus(Arc<Inner>);

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.url())
            .field("node", &format_args!("{:016x}", self.node()))
            .field("publish", &self.publishing())
            .field("subscribe", &self.subscribing())
            .finish()
    }
}

struct Inner {
    node: u64,
    url: BusUrl,
    client: ::redis::Client,
    /// `bus_sharded`: `url` is a node of a Redis cluster.
    sharded: bool,
    /// `bus_prefix`, and the DB if it is not 0.
    prefix: String,
    queue: mpsc::Sender<Outgoing>,
    /// Until [`run`](Bus::run) takes it.
    queued: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    publishing: AtomicU8,
    subscribing: AtomicU8,
    /// Topics whose local interest changed since the subscriber looked.
    changed: Mutex<HashSet<Box<str>>>,
    wake: Notify,
    counts: Counts,
    confirmed: Mutex<Confirmed>,
}

/// Topics whose Redis subscription is confirmed on the current connection,
/// and the acks waiting for one. One lock for both, and the subscribing
/// link's state read under it, so an ack is either sent now or found by
/// whoever confirms or gives up.
///
/// `live` here is what Redis confirmed; the bus thread's own set is what
/// it asked for, a SUBSCRIBE ahead of this one.
#[derive(Default)]
struct Confirmed {
    live: HashSet<Arc<str>>,
    waiting: HashMap<Arc<str>, Vec<(ConnRef, String)>>,
}

impl Confirmed {
    /// Sends the acks waiting for `topic`.
    fn release(&mut self, topic: &str) {
        for (conn, ack) in self.waiting.remove(topic).unwrap_or_default() {
            // Gone is fine: the connection left meanwhile.
            let _ = conn.send_text(ack);
        }
    }
}

/// A message on its way to Redis: channel and envelope.
struct Outgoing {
    channel: String,
    message: Vec<u8>,
}

#[derive(Default)]
pub struct Counts {
    pub published: AtomicU64,
    pub publish_failed: AtomicU64,
    pub received: AtomicU64,
    pub missed: AtomicU64,
    pub duplicates: AtomicU64,
    pub foreign: AtomicU64,
    pub reconnects: AtomicU64,
    pub channels: AtomicUsize,
}

/// One connection's state, as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not connected yet since the start.
    Connecting = 0,
    Up = 1,
    /// Lost, and reconnecting.
    Down = 2,
}

impl Link {
    fn load(cell: &AtomicU8) -> Link {
        Link::from_u8(cell.load(Ordering::Acquire))
    }

    fn from_u8(n: u8) -> Link {
        match n {
            0 => Link::Connecting,
            1 => Link::Up,
            _ => Link::Down,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Up => "up",
            Link::Down => "down",
        }
    }
}

/// What became of one publish's trip to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// Redis is not reachable now.
    Down,
    /// `bus_queue` publishes are already waiting.
    Full,
}

impl Sent {
    pub fn name(self) -> &'static str {
        match self {
            Sent::Queued => "queued",
            Sent::Down => "down",
            Sent::Full => "full",
        }
    }
}

impl Bus {
    /// Checks the settings; nothing connects before [`run`](Self::run).
    pub fn new(url: &BusUrl, prefix: &str, queue: usize, sharded: bool) -> Result<Bus, String> {
        let client =
            ::redis::Client::open(url.expose()).map_err(|e| format!("bus {}: {e}", url.shown()))?;
        let db = client.get_connection_info().redis_settings().db();
        let prefix = if db == 0 {
            prefix.to_owned()
        } else {
            format!("{prefix}{db}:")
        };
        let (tx, rx) = mpsc::channel(queue.max(1));
        Ok(Bus(Arc::new(Inner {
            node: rand::random(),
            url: url.clone(),
            client,
            sharded,
            prefix,
            queue: tx,
            queued: Mutex::new(Some(rx)),
            publishing: AtomicU8::new(Link::Connecting as u8),
            subscribing: AtomicU8::new(Link::Connecting as u8),
            changed: Mutex::default(),
            wake: Notify::new(),
            counts: Counts::default(),
            confirmed: Mutex::default(),
        })))
    }

    /// For [`EngineBuilder::on_topic_interest`](uringws_engine::EngineBuilder::on_topic_interest):
    /// called on a worker, so it only notes the topic and wakes the bus.
    pub fn on_interest(&self, topic: &str) {
        let mut changed = self.0.changed.lock().unwrap_or_else(|e| e.into_inner());
        changed.insert(topic.into());
        drop(changed);
        self.0.wake.notify_one();
    }

    /// Starts the bus's thread, which delivers what comes from Redis
    /// through `publisher`. Once; a second call does nothing.
    pub fn run(&self, publisher: Publisher) -> std::io::Result<()> {
        let queued = self
            .0
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match queued {
            Some(queued) => redis::spawn(self.clone(), queued, publisher),
            None => Ok(()),
        }
    }

    /// A worker's side of the bus.
    pub fn worker(&self, worker: usize) -> WorkerBus {
        WorkerBus {
            bus: self.clone(),
            sequencer: Sequencer::new(Origin {
                node: self.0.node,
                worker: worker as u16,
            }),
        }
    }

    pub fn node(&self) -> u64 {
        self.0.node
    }

    pub fn url(&self) -> String {
        self.0.url.shown()
    }

    pub fn publishing(&self) -> Link {
        Link::load(&self.0.publishing)
    }

    pub fn subscribing(&self) -> Link {
        Link::load(&self.0.subscribing)
    }

    pub fn is_up(&self) -> bool {
        self.publishing() == Link::Up && self.subscribing() == Link::Up
    }

    pub fn counts(&self) -> &Counts {
        &self.0.counts
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.0.prefix)
    }

    fn topic<'c>(&self, channel: &'c str) -> Option<&'c str> {
        channel.strip_prefix(self.0.prefix.as_str())
    }

    /// Redis confirmed the subscription to `topics`: their acks go out.
    fn confirm<'t>(&self, topics: impl IntoIterator<Item = &'t Arc<str>>) {
        let mut confirmed = self.0.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        for topic in topics {
            confirmed.live.insert(topic.clone());
            confirmed.release(topic);
        }
    }

    /// Every topic of a new connection is confirmed: its set is made
    /// outside the lock, which workers' `defer_ack` takes.
    fn confirm_all(&self, live: &HashSet<Arc<str>>) {
        let live = live.clone();
        let mut confirmed = self.0.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.live = live;
        let ready: Vec<Arc<str>> = confirmed
            .waiting
            .keys()
            .filter(|t| confirmed.live.contains(*t))
            .cloned()
            .collect();
        for topic in ready {
            confirmed.release(&topic);
        }
    }

    /// Whether nobody here wants `topic` any more, decided under the lock
    /// that `defer_ack` takes: a subscriber that arrives meanwhile either
    /// is seen here (and the topic kept) or finds it unconfirmed and waits
    /// for the next SUBSCRIBE. Acks still waiting for it go.
    fn unwanted(&self, topic: &str, publisher: &Publisher) -> bool {
        let mut confirmed = self.0.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        if publisher.has_subscribers(topic) {
            return false;
        }
        confirmed.live.remove(topic);
        confirmed.release(topic);
        true
    }

    /// The subscribed connection is lost (its state already says so): no
    /// ack can wait for Redis now, so every waiting one goes.
    fn unconfirm_all(&self) {
        let mut confirmed = self.0.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.live.clear();
        let topics: Vec<Arc<str>> = confirmed.waiting.keys().cloned().collect();
        for topic in topics {
            confirmed.release(&topic);
        }
    }

    /// Topics whose interest changed since the last call.
    fn take_changed(&self) -> HashSet<Box<str>> {
        std::mem::take(&mut *self.0.changed.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What a worker publishes through: numbers its messages (no lock: each
/// worker has its own numbering) and hands them to the bus's thread.
pub struct WorkerBus {
    bus: Bus,
    sequencer: Sequencer,
}

impl WorkerBus {
    /// Holds `ack` for a subscription to `topic` until this node's own
    /// subscription in Redis is confirmed, and sends it through `conn`
    /// then; `false`: send it now (already subscribed, or Redis is not
    /// reachable, so there is nothing to wait for).
    pub fn defer_ack(&self, topic: &str, conn: ConnRef, ack: String) -> bool {
        let inner = &self.bus.0;
        let mut confirmed = inner.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        if Link::load(&inner.subscribing) != Link::Up || confirmed.live.contains(topic) {
            return false;
        }
        confirmed
            .waiting
            .entry(Arc::from(topic))
            .or_default()
            .push((conn, ack));
        true
    }

    /// Sends a message published on this node (and already delivered to
    /// its own subscribers) to the other nodes. It is numbered even when it
    /// cannot go, so that the other nodes count it as missed.
    pub fn publish(&mut self, topic: &str, kind: Kind, payload: &[u8]) -> Sent {
        let header = self.sequencer.next(topic, kind, Instant::now());
        let bus = &self.bus.0;
        let sent = if Link::load(&bus.publishing) != Link::Up {
            Sent::Down
        } else {
            let outgoing = Outgoing {
                channel: self.bus.channel(topic),
                message: header.encode(payload),
            };
            match bus.queue.try_send(outgoing) {
                Ok(()) => Sent::Queued,
                Err(mpsc::error::TrySendError::Full(_)) => Sent::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Sent::Down,
            }
        };
        if sent != Sent::Queued {
            bus.counts.publish_failed.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}
