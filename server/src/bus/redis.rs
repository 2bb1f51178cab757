//! The bus's thread: one connection publishing, one subscribed, each
//! reconnecting on its own with jittered exponential back-off.

use super::{
    envelope::{Arrival, Header, Kind, Seen},
    link::{Incoming, Publishing, Subscribing},
    Bus, Link, Outgoing,
};
use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};
use tokio::sync::mpsc;
use uringws_engine::{Publication, Publisher};

/// The subscribed connection hears nothing on a quiet bus; a ping this
/// often finds a dead one.
const PING_EVERY: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// PUBLISHes sent as one pipeline: what queued while the last one was
/// answered, up to this.
const BATCH: usize = 512;
/// Channels per SUBSCRIBE when subscribing again to every live topic.
const SUBSCRIBE_CHUNK: usize = 512;

pub(super) fn spawn(
    bus: Bus,
    queued: mpsc::Receiver<Outgoing>,
    publisher: Publisher,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("uringws-bus".into())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                tokio::task::spawn_local(publishing(bus.clone(), queued));
                subscribing(bus, publisher).await;
            });
        })
        .map(drop)
}

/// Exponential back-off from 100 ms to 5 s, each wait drawn from its upper
/// half, so nodes that lost Redis together do not come back together.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(FIRST_RETRY)
    }

    fn reset(&mut self) {
        self.0 = FIRST_RETRY;
    }

    fn next(&mut self) -> Duration {
        let wait = self.0.mul_f64(rand::random_range(0.5..=1.0));
        self.0 = (self.0 * 2).min(LAST_RETRY);
        wait
    }
}

fn set(cell: &std::sync::atomic::AtomicU8, link: Link) -> Link {
    Link::from_u8(cell.swap(link as u8, Ordering::AcqRel))
}

/// Marks a connection lost and says so once per outage.
fn lost(bus: &Bus, cell: &std::sync::atomic::AtomicU8, role: &str, why: &str) {
    let was = set(cell, Link::Down);
    if was == Link::Up {
        bus.0.counts.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(bus = %bus.url(), role, why, "lost Redis; reconnecting");
    } else {
        tracing::debug!(bus = %bus.url(), role, why, "cannot reach Redis");
    }
}

fn found(bus: &Bus, cell: &std::sync::atomic::AtomicU8, role: &str) {
    set(cell, Link::Up);
    tracing::info!(bus = %bus.url(), role, "connected to Redis");
}

async fn publishing(bus: Bus, mut queued: mpsc::Receiver<Outgoing>) {
    let counts = &bus.0.counts;
    let mut backoff = Backoff::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let mut connection = match Publishing::connect(&bus).await {
            Ok(connection) => connection,
            Err(error) => {
                lost(&bus, &bus.0.publishing, "publish", &error.to_string());
                // What was queued before the link was seen down.
                while queued.try_recv().is_ok() {
                    counts.publish_failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        found(&bus, &bus.0.publishing, "publish");
        backoff.reset();
        let why = loop {
            if queued.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            let n = batch.len() as u64;
            let (taken, sent) = connection.send(&batch).await;
            batch.clear();
            counts.published.fetch_add(taken, Ordering::Relaxed);
            // Unanswered is counted as lost: Redis may have passed some on
            // before it died, and the receivers' numbers say which.
            counts
                .publish_failed
                .fetch_add(n - taken, Ordering::Relaxed);
            if let Err(error) = sent {
                break error.to_string();
            }
        };
        lost(&bus, &bus.0.publishing, "publish", &why);
    }
}

/// What the subscribed connection knows between reconnects.
struct Subscriptions {
    /// Topics subscribed on the current connection.
    live: HashSet<Arc<str>>,
    /// Per topic still of interest, the last numbers seen: kept across
    /// reconnects, so what was published while this node was away counts
    /// as missed when the next message comes.
    seen: HashMap<Arc<str>, Seen>,
}

async fn subscribing(bus: Bus, publisher: Publisher) {
    let mut backoff = Backoff::new();
    let mut subscriptions = Subscriptions {
        live: HashSet::new(),
        seen: HashMap::new(),
    };
    loop {
        let why = match Subscribing::connect(&bus).await {
            Ok(link) => {
                let why =
                    subscribed(&bus, &publisher, link, &mut subscriptions, &mut backoff).await;
                subscriptions.live.clear();
                bus.0.counts.channels.store(0, Ordering::Relaxed);
                why
            }
            Err(why) => why,
        };
        lost(&bus, &bus.0.subscribing, "subscribe", &why);
        bus.unconfirm_all();
        // The next connection reads every live topic anew: what changed
        // meanwhile need not pile up while Redis stays away.
        bus.take_changed();
        tokio::time::sleep(backoff.next()).await;
    }
}

/// One subscribed connection, until it fails; returns why.
async fn subscribed(
    bus: &Bus,
    publisher: &Publisher,
    mut link: Subscribing,
    subscriptions: &mut Subscriptions,
    backoff: &mut Backoff,
) -> String {
    // Changes noted from here on are looked at again below, so none is lost
    // between this and reading the whole set.
    bus.take_changed();
    let topics = publisher.topics();
    for chunk in topics.chunks(SUBSCRIBE_CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|t| bus.channel(t)).collect();
        subscriptions.live.extend(chunk.iter().cloned());
        if let Err(why) = link.subscribe(&channels).await {
            return why;
        }
    }
    subscriptions
        .seen
        .retain(|topic, _| subscriptions.live.contains(topic));
    bus.0
        .counts
        .channels
        .store(subscriptions.live.len(), Ordering::Relaxed);
    found(bus, &bus.0.subscribing, "subscribe");
    bus.confirm_all(&subscriptions.live);
    backoff.reset();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            message = link.next() => match message {
                Ok(Incoming::Unsubscribed(channel)) => {
                    // Not ours (those left the set first): the shard moved
                    // the slot. Subscribing anew finds the new owner.
                    if bus.topic(&channel).is_some_and(|t| subscriptions.live.contains(t)) {
                        return format!("a shard dropped {channel} (its slot moved)");
                    }
                }
                Ok(message) => deliver(bus, publisher, subscriptions, &message),
                Err(why) => return why,
            },
            () = bus.0.wake.notified() => {
                if let Err(why) = follow(bus, publisher, &mut link, subscriptions).await {
                    return why;
                }
            }
            _ = ping.tick() => {
                if let Err(why) = link.ping().await {
                    return why;
                }
            }
        }
    }
}

/// Subscribes to the topics that gained local interest and unsubscribes
/// from those that lost it.
async fn follow(
    bus: &Bus,
    publisher: &Publisher,
    link: &mut Subscribing,
    subscriptions: &mut Subscriptions,
) -> Result<(), String> {
    let mut add = Vec::new();
    let mut added = Vec::new();
    let mut remove = Vec::new();
    for topic in bus.take_changed() {
        let wanted = publisher.has_subscribers(&topic);
        let have = subscriptions.live.contains(&*topic);
        if wanted && !have {
            let topic: Arc<str> = Arc::from(topic.as_ref());
            subscriptions.live.insert(topic.clone());
            add.push(bus.channel(&topic));
            added.push(topic);
        } else if !wanted && bus.unwanted(&topic, publisher) && have {
            // Out of the set first: what still comes for it is dropped.
            subscriptions.live.remove(&*topic);
            subscriptions.seen.remove(&*topic);
            remove.push(bus.channel(&topic));
        }
    }
    if !add.is_empty() {
        link.subscribe(&add).await?;
        bus.confirm(added.iter());
    }
    if !remove.is_empty() {
        link.unsubscribe(&remove).await?;
    }
    bus.0
        .counts
        .channels
        .store(subscriptions.live.len(), Ordering::Relaxed);
    Ok(())
}

fn deliver(
    bus: &Bus,
    publisher: &Publisher,
    subscriptions: &mut Subscriptions,
    message: &Incoming,
) {
    let counts = &bus.0.counts;
    let Some((channel, payload)) = message.parts() else {
        return;
    };
    let Some(topic) = bus.topic(channel) else {
        return;
    };
    let Some(topic) = subscriptions.live.get(topic).cloned() else {
        return;
    };
    let Some((header, payload)) = Header::decode(payload) else {
        foreign(bus, &topic);
        return;
    };
    if header.origin.node == bus.0.node {
        // Already delivered here when it was published.
        return;
    }
    let publication = match header.kind {
        Kind::Text => match std::str::from_utf8(payload) {
            Ok(text) => Publication::text(text),
            Err(_) => {
                foreign(bus, &topic);
                return;
            }
        },
        Kind::Binary => Publication::binary(payload),
    };
    match subscriptions
        .seen
        .entry(topic.clone())
        .or_default()
        .arrive(&header, std::time::Instant::now())
    {
        Arrival::Duplicate => {
            counts.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Arrival::New { missed } => {
            if missed > 0 {
                counts.missed.fetch_add(missed, Ordering::Relaxed);
            }
        }
    }
    publisher.publish(&topic, &publication);
    counts.received.fetch_add(1, Ordering::Relaxed);
}

/// Something on our channel that no node wrote: dropped, counted, and
/// logged now and then (not once per message: it may be a flood).
fn foreign(bus: &Bus, topic: &str) {
    let n = bus.0.counts.foreign.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            topic,
            count = n,
            "a message on this topic's Redis channel is not a uringws node's; dropped"
        );
    }
}
