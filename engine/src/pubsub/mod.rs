//! Topics. Each worker keeps its own subscriber lists ([`TopicTable`]); the
//! only shared structure is [`Interest`], which workers have subscribers to
//! which topic, so a publish sends one message to each such worker and none
//! to the others. It is written only when a worker's first subscriber to a
//! topic arrives or its last one leaves.

mod back_refs;

use crate::remote::{Command, Mailbox};
use back_refs::BackRefs;
use bytes::Bytes;
use smallvec::SmallVec;
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};
use uringws_protocol::{encoder::encode_shared, OpCode};

/// A message encoded into a frame once, for every subscriber on every core:
/// each gets a reference to the same bytes.
#[derive(Clone, Debug)]
pub struct Publication {
    frame: Bytes,
}

impl Publication {
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    pub fn binary(data: &[u8]) -> Self {
        Self::encode(OpCode::Binary, data)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        Publication {
            // Only control frames have a size limit.
            frame: encode_shared(opcode, payload).expect("a data frame of any size encodes"),
        }
    }

    /// Bytes on the wire per delivery.
    pub fn wire_len(&self) -> usize {
        self.frame.len()
    }

    pub(crate) fn frame(&self) -> &Bytes {
        &self.frame
    }
}

/// Told of each topic whose node-wide interest began or ended; see
/// [`EngineBuilder::on_topic_interest`](crate::EngineBuilder::on_topic_interest).
pub(crate) type InterestObserver = Arc<dyn Fn(&str) + Send + Sync>;

/// Which workers have at least one subscriber to a topic.
#[derive(Default)]
pub(crate) struct Interest {
    topics: RwLock<HashMap<Arc<str>, SmallVec<[u32; 4]>>>,
    observer: Option<InterestObserver>,
}

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interest")
            .field("topics", &self.topics)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Interest {
    pub(crate) fn new(observer: Option<InterestObserver>) -> Self {
        Interest {
            topics: RwLock::default(),
            observer,
        }
    }

    fn add(&self, topic: &Arc<str>, worker: usize) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let first = !topics.contains_key(topic);
        let workers = topics.entry(topic.clone()).or_default();
        if !workers.contains(&(worker as u32)) {
            workers.push(worker as u32);
        }
        drop(topics);
        if first {
            self.notify(topic);
        }
    }

    fn remove(&self, topic: &str, worker: usize) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let mut last = false;
        if let Some(workers) = topics.get_mut(topic) {
            workers.retain(|w| *w != worker as u32);
            if workers.is_empty() {
                topics.remove(topic);
                last = true;
            }
        }
        drop(topics);
        if last {
            self.notify(topic);
        }
    }

    /// Outside the lock: the observer reads the state it is told about
    /// (through [`Publisher::has_subscribers`]), and since every change is
    /// followed by its call, the last call sees the last state.
    fn notify(&self, topic: &str) {
        if let Some(observer) = &self.observer {
            observer(topic);
        }
    }

    fn has(&self, topic: &str) -> bool {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.contains_key(topic)
    }

    fn names(&self) -> Vec<Arc<str>> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.keys().cloned().collect()
    }

    /// Calls `f` with each worker that has subscribers to `topic`.
    fn each(&self, topic: &str, mut f: impl FnMut(usize)) {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        if let Some(workers) = topics.get(topic) {
            workers.iter().for_each(|&w| f(w as usize));
        }
    }
}

/// A `Send + Clone` handle that publishes to topics from any thread: one
/// command to each worker with subscribers, none to the others. What one
/// handle publishes reaches each subscriber in the order published.
#[derive(Clone, Debug)]
pub struct Publisher {
    workers: Arc<[Mailbox]>,
    interest: Arc<Interest>,
}

impl Publisher {
    pub(crate) fn new(workers: Arc<[Mailbox]>, observer: Option<InterestObserver>) -> Self {
        Publisher {
            workers,
            interest: Arc::new(Interest::new(observer)),
        }
    }

    pub(crate) fn interest(&self) -> Arc<Interest> {
        self.interest.clone()
    }

    /// Whether any worker has a subscriber to `topic` now.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.interest.has(topic)
    }

    /// The topics with at least one subscriber on some worker now.
    pub fn topics(&self) -> Vec<Arc<str>> {
        self.interest.names()
    }

    /// Publishes to every subscriber of `topic`; returns how many workers
    /// it was sent to.
    pub fn publish(&self, topic: &str, message: &Publication) -> usize {
        self.publish_except(topic, message, None)
    }

    /// Sends to every interested worker but `skip_worker` (which delivers
    /// locally, in order with its own callbacks).
    pub(crate) fn publish_except(
        &self,
        topic: &str,
        message: &Publication,
        skip_worker: Option<usize>,
    ) -> usize {
        let mut sent = 0;
        let mut name: Option<Arc<str>> = None;
        let mut at = None;
        self.interest.each(topic, |worker| {
            if Some(worker) == skip_worker {
                return;
            }
            let topic = name.get_or_insert_with(|| Arc::from(topic)).clone();
            let command = Command::Publish {
                topic,
                frame: message.frame.clone(),
                at: *at.get_or_insert_with(std::time::Instant::now),
            };
            if self.workers[worker].send(command).is_ok() {
                sent += 1;
            }
        });
        sent
    }
}

/// One worker's subscriptions.
pub(crate) struct TopicTable {
    worker: usize,
    interest: Arc<Interest>,
    by_name: HashMap<Arc<str>, u32>,
    topics: slab::Slab<Topic>,
    by_conn: BackRefs,
    /// Subscriptions of all connections, for the gauges.
    subscriptions: usize,
}

struct Topic {
    name: Arc<str>,
    subscribers: Vec<u32>,
}

impl TopicTable {
    /// `slots`: how many connection slots the worker has, reserved (not
    /// touched) for the back-references.
    pub(crate) fn new(worker: usize, interest: Arc<Interest>, slots: usize) -> Self {
        TopicTable {
            worker,
            interest,
            by_name: HashMap::new(),
            topics: slab::Slab::new(),
            by_conn: BackRefs::with_capacity(slots),
            subscriptions: 0,
        }
    }

    /// Whether `slot` was newly subscribed.
    pub(crate) fn subscribe(&mut self, slot: u32, topic: &str) -> bool {
        let id = match self.by_name.get(topic) {
            Some(&id) => id,
            None => {
                let name: Arc<str> = Arc::from(topic);
                let id = self.topics.insert(Topic {
                    name: name.clone(),
                    subscribers: Vec::new(),
                }) as u32;
                self.by_name.insert(name.clone(), id);
                // Before the caller can acknowledge the subscription: a
                // publish that follows the ack must see this worker.
                self.interest.add(&name, self.worker);
                id
            }
        };
        if self.by_conn.has(slot, id) {
            return false;
        }
        let subscribers = &mut self.topics[id as usize].subscribers;
        self.by_conn.push(slot, id, subscribers.len() as u32);
        subscribers.push(slot);
        self.subscriptions += 1;
        true
    }

    /// Whether `slot` was subscribed.
    pub(crate) fn unsubscribe(&mut self, slot: u32, topic: &str) -> bool {
        let Some(&id) = self.by_name.get(topic) else {
            return false;
        };
        let Some(pos) = self.by_conn.remove(slot, id) else {
            return false;
        };
        self.remove_at(id, pos);
        true
    }

    /// Drops every subscription of `slot`; called on every path that ends
    /// a connection, and again (harmlessly) when its slot is freed.
    pub(crate) fn remove_conn(&mut self, slot: u32) {
        while let Some((id, pos)) = self.by_conn.pop(slot) {
            self.remove_at(id, pos);
        }
    }

    pub(crate) fn has(&self, topic: &str) -> bool {
        self.by_name.contains_key(topic)
    }

    pub(crate) fn count(&self, slot: u32) -> usize {
        self.by_conn.count(slot)
    }

    /// Topics with a subscriber here, and subscriptions.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.by_name.len(), self.subscriptions)
    }

    fn remove_at(&mut self, id: u32, pos: u32) {
        self.subscriptions -= 1;
        let topic = &mut self.topics[id as usize];
        topic.subscribers.swap_remove(pos as usize);
        if let Some(&moved) = topic.subscribers.get(pos as usize) {
            // The last subscriber took the freed place: fix its back-reference.
            self.by_conn.set_pos(moved, id, pos);
        }
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(id as usize);
            self.by_name.remove(&*topic.name);
            self.interest.remove(&topic.name, self.worker);
        } else if topic.subscribers.capacity() > 64
            && topic.subscribers.len() < topic.subscribers.capacity() / 4
        {
            // A topic that once had a crowd keeps no crowd-sized list.
            topic.subscribers.shrink_to(topic.subscribers.len() * 2);
        }
    }

    /// Takes `topic`'s subscriber list out for a fan-out; give it back with
    /// [`restore`](Self::restore). Nothing subscribes in between.
    pub(crate) fn take(&mut self, topic: &str) -> Option<(u32, Vec<u32>)> {
        let &id = self.by_name.get(topic)?;
        Some((
            id,
            std::mem::take(&mut self.topics[id as usize].subscribers),
        ))
    }

    pub(crate) fn restore(&mut self, id: u32, subscribers: Vec<u32>) {
        self.topics[id as usize].subscribers = subscribers;
    }

    #[cfg(test)]
    fn subscribers(&self, topic: &str) -> Vec<u32> {
        self.by_name
            .get(topic)
            .map(|&id| self.topics[id as usize].subscribers.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (TopicTable, Arc<Interest>) {
        let interest = Arc::new(Interest::default());
        (TopicTable::new(3, interest.clone(), 0), interest)
    }

    fn workers(interest: &Interest, topic: &str) -> Vec<usize> {
        let mut v = Vec::new();
        interest.each(topic, |w| v.push(w));
        v
    }

    #[test]
    fn subscribe_is_idempotent_and_sets_interest() {
        let (mut t, interest) = table();
        assert!(t.subscribe(1, "a"));
        assert!(!t.subscribe(1, "a"));
        assert!(t.subscribe(2, "a"));
        assert_eq!(t.subscribers("a"), vec![1, 2]);
        assert_eq!(workers(&interest, "a"), vec![3]);
        assert!(t.unsubscribe(1, "a"));
        assert!(!t.unsubscribe(1, "a"));
        assert_eq!(workers(&interest, "a"), vec![3]);
        assert!(t.unsubscribe(2, "a"));
        assert!(workers(&interest, "a").is_empty());
        assert!(t.by_name.is_empty() && t.topics.is_empty());
        assert!(t.by_conn.is_empty());
    }

    #[test]
    fn the_observer_hears_of_the_first_and_the_last_subscriber_only() {
        let heard = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log = heard.clone();
        let interest = Arc::new(Interest::new(Some(Arc::new(move |topic: &str| {
            log.lock().unwrap().push(topic.to_owned());
        }))));
        let mut w0 = TopicTable::new(0, interest.clone(), 0);
        let mut w1 = TopicTable::new(1, interest.clone(), 0);
        w0.subscribe(1, "a");
        w0.subscribe(2, "a");
        w1.subscribe(1, "a");
        w1.subscribe(1, "b");
        assert_eq!(*heard.lock().unwrap(), ["a", "b"]);
        w0.remove_conn(1);
        w0.remove_conn(2);
        // Worker 1 still has one.
        assert_eq!(heard.lock().unwrap().len(), 2);
        assert!(interest.has("a"));
        w1.unsubscribe(1, "a");
        assert_eq!(*heard.lock().unwrap(), ["a", "b", "a"]);
        assert!(!interest.has("a"));
        assert_eq!(interest.names(), [Arc::<str>::from("b")]);
    }

    #[test]
    fn removal_keeps_back_references_right() {
        let (mut t, _) = table();
        for slot in 0..100 {
            t.subscribe(slot, "x");
            if slot % 2 == 0 {
                t.subscribe(slot, "y");
            }
        }
        // Remove in an order that moves entries around.
        for slot in (0..100).step_by(3) {
            t.remove_conn(slot);
        }
        for slot in (1..100).step_by(3) {
            assert!(t.unsubscribe(slot, "x"));
        }
        let mut x = t.subscribers("x");
        x.sort();
        let want: Vec<u32> = (0..100).filter(|s| s % 3 == 2).collect();
        assert_eq!(x, want);
        let mut y = t.subscribers("y");
        y.sort();
        let want: Vec<u32> = (0..100).filter(|s| s % 2 == 0 && s % 3 != 0).collect();
        assert_eq!(y, want);
        for slot in 0..100 {
            t.remove_conn(slot);
        }
        assert!(t.by_name.is_empty() && t.topics.is_empty());
        assert!(t.by_conn.is_empty());
    }

    #[test]
    fn back_references_hold_through_any_order_of_changes() {
        // Slots with several topics each (the spilled case) changed in a
        // scrambled order, checked against a plain model after every step:
        // each topic's list holds exactly its subscribers, and each slot's
        // back-reference points at its own place in that list.
        let (mut t, _) = table();
        let names = ["a", "b", "c", "d", "e"];
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = (x % 40) as u32;
            let topic = names[((x >> 8) % 5) as usize];
            match (x >> 16) % 7 {
                0..=3 => assert_eq!(t.subscribe(slot, topic), model.insert((slot, topic))),
                4 | 5 => assert_eq!(t.unsubscribe(slot, topic), model.remove(&(slot, topic))),
                _ => {
                    t.remove_conn(slot);
                    model.retain(|&(s, _)| s != slot);
                }
            }
            for slot in 0..40 {
                let want = model.iter().filter(|&&(s, _)| s == slot).count();
                assert_eq!(t.count(slot), want, "slot {slot}");
            }
            for topic in names {
                let mut got = t.subscribers(topic);
                got.sort();
                let want: Vec<u32> = model
                    .iter()
                    .filter(|&&(_, n)| n == topic)
                    .map(|&(s, _)| s)
                    .collect();
                assert_eq!(got, want, "topic {topic}");
                let Some(&id) = t.by_name.get(topic) else {
                    continue;
                };
                for (pos, &slot) in t.topics[id as usize].subscribers.iter().enumerate() {
                    let at = std::iter::once(t.by_conn.first(slot))
                        .flatten()
                        .chain(t.by_conn.more.get(&slot).into_iter().flatten().copied())
                        .find(|&(tid, _)| tid == id)
                        .map(|(_, p)| p);
                    assert_eq!(at, Some(pos as u32), "slot {slot} in {topic}");
                }
            }
        }
        for slot in 0..40 {
            t.remove_conn(slot);
        }
        assert!(t.by_name.is_empty() && t.by_conn.is_empty());
    }
}
