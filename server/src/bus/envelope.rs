//! What travels on a Redis channel: a 24-byte header, then the payload in
//! the form subscribers get it (the `message` JSON, or a binary frame with
//! its topic spelled out).
//!
//! The header names where a message comes from (node and worker), so a
//! node skips its own, and numbers it per topic, so a receiver knows what
//! it missed while Redis or the link to it was down, and drops what it
//! already had. Redis pub/sub gives neither: it delivers at most once, to
//! whoever is subscribed at that moment, and says nothing of the rest.

use std::{collections::HashMap, sync::Arc, time::Instant};

const VERSION: u8 = 1;
pub const HEADER: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
}

/// A worker of a node: the stream of messages numbered together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub node: u64,
    pub worker: u16,
}

/// A message's place: its origin's numbering of the topic restarts with a
/// new `epoch` (after the origin forgot a quiet topic), and `seq` counts
/// from 1 within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub origin: Origin,
    pub epoch: u32,
    pub seq: u64,
}

impl Header {
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.push(VERSION);
        out.push(match self.kind {
            Kind::Text => 0,
            Kind::Binary => 1,
        });
        out.extend_from_slice(&self.origin.node.to_be_bytes());
        out.extend_from_slice(&self.origin.worker.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The header and the payload; `None` for anything that is not ours
    /// (another program publishing on the channel, a later version).
    pub fn decode(message: &[u8]) -> Option<(Header, &[u8])> {
        if message.len() < HEADER || message[0] != VERSION {
            return None;
        }
        let kind = match message[1] {
            0 => Kind::Text,
            1 => Kind::Binary,
            _ => return None,
        };
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&message[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let header = Header {
            kind,
            origin: Origin {
                node: u64_at(2),
                worker: u16::from_be_bytes([message[10], message[11]]),
            },
            epoch: u32::from_be_bytes([message[12], message[13], message[14], message[15]]),
            seq: u64_at(16),
        };
        (header.seq != 0).then_some((header, &message[HEADER..]))
    }
}

/// One worker's numbering of the topics it publishes to. A topic quiet for
/// a whole sweep period is forgotten (a node that publishes to many
/// short-lived topics does not keep them all); when it comes back it
/// starts a new epoch, which receivers take as a fresh start, not a gap.
pub struct Sequencer {
    origin: Origin,
    topics: HashMap<Arc<str>, Numbering>,
    epochs: u32,
    swept: Instant,
}

struct Numbering {
    epoch: u32,
    seq: u64,
    used: bool,
}

/// How long a topic's numbering outlives its last publish, at least.
pub const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Sequencer {
    pub fn new(origin: Origin) -> Self {
        Sequencer {
            origin,
            topics: HashMap::new(),
            epochs: 0,
            swept: Instant::now(),
        }
    }

    pub fn next(&mut self, topic: &str, kind: Kind, now: Instant) -> Header {
        if now.duration_since(self.swept) >= FORGET_AFTER {
            self.topics.retain(|_, n| std::mem::take(&mut n.used));
            self.swept = now;
        }
        let numbering = match self.topics.get_mut(topic) {
            Some(numbering) => numbering,
            None => {
                self.epochs = self.epochs.wrapping_add(1);
                self.topics.entry(Arc::from(topic)).or_insert(Numbering {
                    epoch: self.epochs,
                    seq: 0,
                    used: false,
                })
            }
        };
        numbering.seq += 1;
        numbering.used = true;
        Header {
            kind,
            origin: self.origin,
            epoch: numbering.epoch,
            seq: numbering.seq,
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.topics.len()
    }
}

/// What a receiver makes of a message, by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Deliver it; `missed` numbers before it never came.
    New { missed: u64 },
    /// Already delivered (or older than what was): drop it.
    Duplicate,
}

/// The last number seen from each origin on one topic, kept while the
/// node is subscribed to the topic (across reconnects to Redis, so what
/// was published during an outage counts as missed). An origin quiet for
/// twice as long as an origin keeps its numbering ([`FORGET_AFTER`]) is
/// forgotten: nodes restarted in a rolling deploy come back under new
/// ids, and the old ones must not pile up.
pub struct Seen {
    origins: HashMap<Origin, Last>,
    swept: Instant,
}

struct Last {
    epoch: u32,
    seq: u64,
    at: Instant,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            origins: HashMap::new(),
            swept: Instant::now(),
        }
    }
}

impl Seen {
    pub fn arrive(&mut self, header: &Header, now: Instant) -> Arrival {
        if now.duration_since(self.swept) >= FORGET_AFTER {
            self.origins
                .retain(|_, last| now.duration_since(last.at) < 2 * FORGET_AFTER);
            self.swept = now;
        }
        match self.origins.get_mut(&header.origin) {
            Some(last) if last.epoch == header.epoch => {
                if header.seq <= last.seq {
                    return Arrival::Duplicate;
                }
                let missed = header.seq - last.seq - 1;
                last.seq = header.seq;
                last.at = now;
                Arrival::New { missed }
            }
            // A new origin, or the origin's new numbering of the topic:
            // nothing before it can be known to be missing.
            _ => {
                let last = Last {
                    epoch: header.epoch,
                    seq: header.seq,
                    at: now,
                };
                self.origins.insert(header.origin, last);
                Arrival::New { missed: 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Origin = Origin { node: 7, worker: 1 };

    #[test]
    fn headers_round_trip_and_strangers_are_refused() {
        let h = Header {
            kind: Kind::Binary,
            origin: Origin {
                node: u64::MAX - 3,
                worker: 513,
            },
            epoch: 9,
            seq: 1 << 40,
        };
        let wire = h.encode(b"payload");
        assert_eq!(wire.len(), HEADER + 7);
        assert_eq!(Header::decode(&wire), Some((h, &b"payload"[..])));
        assert_eq!(Header::decode(&wire[..HEADER - 1]), None);
        let mut other = wire.clone();
        other[0] = 2;
        assert_eq!(Header::decode(&other), None);
        let mut other = wire.clone();
        other[1] = 5;
        assert_eq!(Header::decode(&other), None);
        assert_eq!(Header::decode(b"{\"hello\":\"from someone else\"}"), None);
        let zero = Header { seq: 0, ..h }.encode(b"");
        assert_eq!(Header::decode(&zero), None);
    }

    #[test]
    fn numbers_count_per_topic_and_a_forgotten_topic_starts_an_epoch() {
        let mut s = Sequencer::new(A);
        let start = Instant::now();
        let a1 = s.next("a", Kind::Text, start);
        let b1 = s.next("b", Kind::Text, start);
        let a2 = s.next("a", Kind::Binary, start);
        assert_eq!((a1.seq, a2.seq, b1.seq), (1, 2, 1));
        assert_eq!(a1.epoch, a2.epoch);
        assert_ne!(a1.epoch, b1.epoch);
        // "a" keeps being used across sweeps; "b" goes quiet.
        let later = start + FORGET_AFTER;
        assert_eq!(s.next("a", Kind::Text, later).seq, 3);
        let much_later = later + FORGET_AFTER;
        assert_eq!(s.next("a", Kind::Text, much_later).seq, 4);
        assert_eq!(s.remembered(), 1);
        let b = s.next("b", Kind::Text, much_later);
        assert_eq!(b.seq, 1);
        assert_ne!(b.epoch, b1.epoch);
    }

    #[test]
    fn receivers_forget_origins_quiet_for_long() {
        let mut seen = Seen::default();
        let now = Instant::now();
        let h = |node, seq| Header {
            kind: Kind::Text,
            origin: Origin { node, worker: 0 },
            epoch: 1,
            seq,
        };
        seen.arrive(&h(1, 1), now);
        seen.arrive(&h(2, 1), now);
        let later = now + 2 * FORGET_AFTER;
        assert_eq!(seen.arrive(&h(2, 2), later), Arrival::New { missed: 0 });
        // Swept at the next arrival a period on: 1 was quiet all along.
        let much_later = later + FORGET_AFTER;
        seen.arrive(&h(2, 3), much_later);
        assert_eq!(seen.origins.len(), 1);
        assert!(seen.origins.contains_key(&Origin { node: 2, worker: 0 }));
    }

    #[test]
    fn receivers_count_gaps_drop_duplicates_and_take_new_epochs_as_a_start() {
        let mut seen = Seen::default();
        let t = Instant::now();
        let h = |epoch, seq| Header {
            kind: Kind::Text,
            origin: A,
            epoch,
            seq,
        };
        // Joining mid-stream misses nothing that can be known.
        assert_eq!(seen.arrive(&h(1, 5), t), Arrival::New { missed: 0 });
        assert_eq!(seen.arrive(&h(1, 6), t), Arrival::New { missed: 0 });
        assert_eq!(seen.arrive(&h(1, 6), t), Arrival::Duplicate);
        assert_eq!(seen.arrive(&h(1, 4), t), Arrival::Duplicate);
        assert_eq!(seen.arrive(&h(1, 10), t), Arrival::New { missed: 3 });
        assert_eq!(seen.arrive(&h(2, 1), t), Arrival::New { missed: 0 });
        assert_eq!(seen.arrive(&h(2, 2), t), Arrival::New { missed: 0 });
        // Another origin is numbered on its own.
        let other = Header {
            origin: Origin { node: 7, worker: 2 },
            ..h(2, 1)
        };
        assert_eq!(seen.arrive(&other, t), Arrival::New { missed: 0 });
        assert_eq!(seen.arrive(&h(2, 3), t), Arrival::New { missed: 0 });
    }
}
