//! What a fan-out run does: mode, connections and their roles (who
//! publishes, who receives which topic), size, rate and the schedule.

use super::wire::HEADER;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Receivers per topic fit in the 24 bits above the published count.
pub const MAX_CONNECTIONS: usize = (1 << 24) - 1;
/// Per-pair reorder state above this is refused rather than risked.
const MAX_PAIR_BYTES: u64 = 4 << 30;

/// Which server protocol the run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Any message one connection sends is expected on every other.
    Broadcast,
    /// `uringws.v1` (`docs/protocol.md`): subscribe, ack, binary publish.
    Uringws,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Broadcast => "broadcast",
            Mode::Uringws => "uringws",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "broadcast" => Ok(Mode::Broadcast),
            "uringws" => Ok(Mode::Uringws),
            other => Err(format!("unknown mode {other:?}: broadcast or uringws")),
        }
    }
}

/// What a fan-out run does.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub mode: Mode,
    /// Connections in all. Broadcast: every one receives, `publishers` of
    /// them also publish. Uringws: `publishers` publish, the rest subscribe.
    pub connections: usize,
    pub publishers: usize,
    /// Uringws: subscribers go round robin over `t0..t{topics-1}`, and each
    /// publisher publishes round robin over them. Broadcast: 1.
    pub topics: usize,
    /// Payload bytes, at least [`HEADER`].
    pub size: usize,
    /// Publishes per second, all publishers together.
    pub rate: f64,
    /// How long publishing lasts.
    pub duration: Duration,
    /// After publishing, how long deliveries may still arrive.
    pub drain: Duration,
    /// From the start of the run until publishing begins at the latest,
    /// with whoever is ready then.
    pub ready_timeout: Duration,
    /// Uringws: how long a subscribe may wait for its ack.
    pub ack_timeout: Duration,
    /// The targets (indices into the run's URLs) publishers connect to,
    /// round robin; empty: every target. Receivers go to every target
    /// whatever this says ([`target_of`](Self::target_of)), so with
    /// several nodes joined by a bus, publishing on one of them measures
    /// what crosses to the others.
    pub publish_to: Vec<usize>,
    /// Once every connection is ready, how long they sit idle before
    /// publishing begins: a held crowd that a publish must then reach.
    pub hold: Duration,
    /// Pings per connection at this interval (zero: none); one not
    /// answered within two intervals drops its connection, counted.
    pub ping_interval: Duration,
}

impl FanoutConfig {
    /// `connections` connections all receiving, `publishers` of them
    /// publishing; 1000 messages/s of 64 bytes for 10 s.
    pub fn broadcast(connections: usize, publishers: usize) -> FanoutConfig {
        FanoutConfig {
            mode: Mode::Broadcast,
            connections,
            publishers,
            topics: 1,
            size: 64,
            rate: 1000.0,
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(2),
            ready_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(10),
            publish_to: Vec::new(),
            hold: Duration::ZERO,
            ping_interval: Duration::ZERO,
        }
    }

    /// `publishers` publishing and `subscribers` subscribed over `topics`
    /// topics of a `uringws.v1` server.
    pub fn uringws(publishers: usize, subscribers: usize, topics: usize) -> FanoutConfig {
        FanoutConfig {
            mode: Mode::Uringws,
            connections: publishers + subscribers,
            topics,
            ..FanoutConfig::broadcast(0, publishers)
        }
    }

    /// Receiving connections.
    pub fn subscribers(&self) -> usize {
        match self.mode {
            Mode::Broadcast => self.connections,
            Mode::Uringws => self.connections.saturating_sub(self.publishers),
        }
    }

    /// Refuses what cannot run, in words for the user.
    pub fn validate(&self) -> Result<(), String> {
        if self.size < HEADER {
            return Err(format!(
                "--size must be at least {HEADER} bytes (publisher, sequence, send time and check word), not {}",
                self.size
            ));
        }
        if self.publishers == 0 {
            return Err("--publishers must be at least 1".into());
        }
        if self.publishers > u32::MAX as usize {
            return Err("--publishers: too many".into());
        }
        if self.connections > MAX_CONNECTIONS {
            return Err(format!(
                "fanout counts at most {MAX_CONNECTIONS} connections"
            ));
        }
        match self.mode {
            Mode::Broadcast => {
                if self.publishers > self.connections {
                    return Err(format!(
                        "--publishers ({}) is more than the connections (-n {})",
                        self.publishers, self.connections
                    ));
                }
                if self.topics != 1 {
                    return Err("--topics is for --mode uringws; a broadcast has one".into());
                }
            }
            Mode::Uringws => {
                if self.subscribers() == 0 {
                    return Err("--subscribers must be at least 1".into());
                }
                if self.topics == 0 || self.topics > 1_000_000 {
                    return Err("--topics must be from 1 to 1,000,000".into());
                }
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err("--rate (publishes per second) must be positive".into());
        }
        let pairs = self.subscribers() as u64 * self.publishers as u64;
        if pairs * 16 > MAX_PAIR_BYTES {
            return Err(format!(
                "{} subscribers × {} publishers need {} MiB of reorder state (16 B a pair); use fewer publishers",
                self.subscribers(),
                self.publishers,
                (pairs * 16) >> 20
            ));
        }
        Ok(())
    }

    /// Refuses a [`publish_to`](Self::publish_to) that does not fit a run
    /// over `targets` URLs.
    pub fn validate_targets(&self, targets: usize) -> Result<(), String> {
        if targets == 0 {
            return Err("fanout needs at least one URL".into());
        }
        for (i, &t) in self.publish_to.iter().enumerate() {
            if t >= targets {
                return Err(format!(
                    "--publish-to {t}: there {} {targets} URL(s), numbered from 0 to {}",
                    if targets == 1 { "is" } else { "are" },
                    targets - 1
                ));
            }
            if self.publish_to[..i].contains(&t) {
                return Err(format!("--publish-to {t} is given twice"));
            }
        }
        if self.publish_to.len() > self.publishers {
            return Err(format!(
                "--publish-to names {} targets for {} publisher(s): some would have none",
                self.publish_to.len(),
                self.publishers
            ));
        }
        Ok(())
    }

    /// The target (index into `targets` URLs) connection `global` goes
    /// to. Publisher `j` goes to the `j`-th of [`publish_to`](Self::publish_to)
    /// (all targets if empty), round robin. Receiver `s` (counting the
    /// receivers that do not publish) goes to target `s mod targets`,
    /// round robin; when topics and targets have a common factor, moved
    /// on by one more every lcm(topics, targets) receivers: plain round
    /// robin, with receiver `s` on topic `s mod topics`, would then give
    /// each target only some topics (2 topics on 2 nodes: one each), where
    /// the shift gives every target receivers of every topic, as evenly.
    pub fn target_of(&self, global: usize, targets: usize) -> usize {
        let targets = targets.max(1) as u64;
        if let Some(j) = self.publisher_of(global) {
            let j = j as usize;
            return match self.publish_to.len() {
                0 => j % targets as usize,
                // Validated below `targets`; kept in range whatever.
                n => self.publish_to[j % n] % targets as usize,
            };
        }
        let s = global as u64 - self.publishers_up_to(global);
        let topics = self.topics.max(1) as u64;
        let common = gcd(topics, targets);
        let shift = if common > 1 {
            s / (topics / common * targets)
        } else {
            0
        };
        ((s + shift) % targets) as usize
    }

    /// Publishers among connections `0..=global`: j with floor(j·n/p) ≤ g.
    fn publishers_up_to(&self, global: usize) -> u64 {
        let (n, p) = (self.connections as u64, self.publishers as u64);
        if n == 0 {
            return 0;
        }
        ((global as u64 + 1) * p).div_ceil(n).min(p)
    }

    /// The publisher number of connection `global`, if it publishes:
    /// publishers are spread evenly over the connections, so over the
    /// workers too, and their messages have to cross between workers.
    pub fn publisher_of(&self, global: usize) -> Option<u32> {
        let (n, p) = (self.connections as u64, self.publishers as u64);
        if n == 0 || global as u64 >= n {
            return None;
        }
        let g = global as u64;
        // Publisher j sits at floor(j·n/p): the smallest j at or after g.
        let j = (g * p).div_ceil(n);
        (j < p && j * n / p == g).then_some(j as u32)
    }

    /// The topic connection `global` receives on, if it receives.
    pub fn topic_of(&self, global: usize) -> Option<u32> {
        match self.mode {
            Mode::Broadcast => (global < self.connections).then_some(0),
            Mode::Uringws => {
                if global >= self.connections || self.publisher_of(global).is_some() {
                    return None;
                }
                let subscriber = global as u64 - self.publishers_up_to(global);
                Some((subscriber % self.topics as u64) as u32)
            }
        }
    }

    /// When message `k` of publisher `j` is due, in ns after the start.
    pub(super) fn due(&self, j: u32, k: u64) -> u64 {
        ((j as f64 + k as f64 * self.publishers as f64) * 1e9 / self.rate) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The name of topic `t`.
pub fn topic_name(t: u32) -> String {
    format!("t{t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_are_spread_and_subscribers_go_round_robin() {
        for (n, p) in [(10, 1), (10, 3), (10, 10), (7, 2), (1000, 7), (3, 3)] {
            let c = FanoutConfig::broadcast(n, p);
            let publishers: Vec<u32> = (0..n).filter_map(|g| c.publisher_of(g)).collect();
            assert_eq!(publishers, (0..p as u32).collect::<Vec<_>>(), "{n} {p}");
            assert!((0..n).all(|g| c.topic_of(g) == Some(0)));
            assert_eq!(c.publisher_of(n), None);
        }
        // Spread: with 2 workers taking halves, both get publishers.
        let c = FanoutConfig::broadcast(20, 4);
        assert!((0..10).any(|g| c.publisher_of(g).is_some()));
        assert!((10..20).any(|g| c.publisher_of(g).is_some()));

        let c = FanoutConfig::uringws(3, 10, 4);
        let mut per_topic = [0; 4];
        let mut subscribers = 0;
        for g in 0..13 {
            match (c.publisher_of(g), c.topic_of(g)) {
                (Some(_), None) => {}
                (None, Some(t)) => {
                    // Round robin: subscriber s is on topic s % 4.
                    assert_eq!(t as usize, subscribers % 4, "connection {g}");
                    per_topic[t as usize] += 1;
                    subscribers += 1;
                }
                other => panic!("connection {g}: {other:?}"),
            }
        }
        assert_eq!(subscribers, 10);
        assert_eq!(per_topic, [3, 3, 2, 2]);
    }

    #[test]
    fn publishers_go_to_their_targets_and_receivers_to_all_with_every_topic() {
        // 3 publishers on target 1 of 2; 12 subscribers over 2 topics.
        let mut c = FanoutConfig::uringws(3, 12, 2);
        c.publish_to = vec![1];
        assert_eq!(c.validate_targets(2), Ok(()));
        let mut per = [[0; 2]; 2]; // [target][topic]
        for g in 0..15 {
            let target = c.target_of(g, 2);
            match (c.publisher_of(g), c.topic_of(g)) {
                (Some(_), None) => assert_eq!(target, 1, "publisher {g}"),
                (None, Some(t)) => per[target][t as usize] += 1,
                other => panic!("connection {g}: {other:?}"),
            }
        }
        // Plain round robin would give target 0 only t0 and target 1
        // only t1.
        assert_eq!(per, [[3, 3], [3, 3]]);

        // Several publish targets take the publishers round robin; with
        // none named, every target does.
        let mut c = FanoutConfig::uringws(4, 8, 1);
        c.publish_to = vec![2, 0];
        let publishers: Vec<usize> = (0..12)
            .filter(|&g| c.publisher_of(g).is_some())
            .map(|g| c.target_of(g, 3))
            .collect();
        assert_eq!(publishers, [2, 0, 2, 0]);
        c.publish_to.clear();
        let publishers: Vec<usize> = (0..12)
            .filter(|&g| c.publisher_of(g).is_some())
            .map(|g| c.target_of(g, 3))
            .collect();
        assert_eq!(publishers, [0, 1, 2, 0]);
        let mut receivers = [0; 3];
        for g in (0..12).filter(|&g| c.topic_of(g).is_some()) {
            receivers[c.target_of(g, 3)] += 1;
        }
        assert_eq!(receivers, [3, 3, 2]);

        // Broadcast: publishers receive too, where they publish.
        let mut c = FanoutConfig::broadcast(10, 2);
        c.publish_to = vec![0];
        let targets: Vec<usize> = (0..10).map(|g| c.target_of(g, 2)).collect();
        assert_eq!(
            targets.iter().filter(|&&t| t == 1).count(),
            4,
            "{targets:?}"
        );
        assert!((0..10)
            .filter(|&g| c.publisher_of(g).is_some())
            .all(|g| targets[g] == 0));
        // One target: everything on it, as before.
        assert!((0..10).all(|g| c.target_of(g, 1) == 0));
    }

    #[test]
    fn publish_targets_that_do_not_fit_are_refused() {
        let mut c = FanoutConfig::uringws(2, 10, 1);
        c.publish_to = vec![2];
        let why = c.validate_targets(2).unwrap_err();
        assert!(
            why.contains("--publish-to 2: there are 2 URL(s), numbered from 0 to 1"),
            "{why}"
        );
        c.publish_to = vec![1];
        let why = c.validate_targets(1).unwrap_err();
        assert!(
            why.contains("there is 1 URL(s), numbered from 0 to 0"),
            "{why}"
        );
        c.publish_to = vec![0, 1, 0];
        assert!(c
            .validate_targets(2)
            .unwrap_err()
            .contains("--publish-to 0 is given twice"));
        c.publish_to = vec![0, 1, 2];
        assert!(c
            .validate_targets(3)
            .unwrap_err()
            .contains("names 3 targets for 2 publisher(s)"));
        c.publish_to = vec![1, 0];
        assert_eq!(c.validate_targets(2), Ok(()));
        c.publish_to.clear();
        assert_eq!(c.validate_targets(5), Ok(()));
        assert!(c.validate_targets(0).is_err());
    }

    #[test]
    fn schedule_keeps_the_total_rate() {
        let mut c = FanoutConfig::broadcast(10, 4);
        c.rate = 1000.0;
        // 4 publishers × 250/s, staggered by 1 ms: message k of publisher j
        // at (j + 4k) ms.
        assert_eq!(c.due(0, 0), 0);
        assert_eq!(c.due(1, 0), 1_000_000);
        assert_eq!(c.due(3, 2), 11_000_000);
        let in_a_second: usize = (0..4u32)
            .map(|j| (0..).take_while(|&k| c.due(j, k) < 1_000_000_000).count())
            .sum();
        assert_eq!(in_a_second, 1000);
    }

    #[test]
    fn config_refusals_say_why() {
        let mut c = FanoutConfig::broadcast(10, 2);
        assert_eq!(c.validate(), Ok(()));
        c.size = 23;
        assert!(c.validate().unwrap_err().contains("at least 24"));
        let c = FanoutConfig::broadcast(10, 11);
        assert!(c
            .validate()
            .unwrap_err()
            .contains("more than the connections"));
        let c = FanoutConfig::uringws(2, 0, 1);
        assert!(c.validate().unwrap_err().contains("--subscribers"));
        let mut c = FanoutConfig::uringws(2, 10, 1);
        c.rate = 0.0;
        assert!(c.validate().unwrap_err().contains("--rate"));
        let c = FanoutConfig::broadcast(1_000_000, 10_000);
        assert!(c.validate().unwrap_err().contains("reorder state"));
        let mut c = FanoutConfig::broadcast(10, 1);
        c.topics = 3;
        assert!(c.validate().unwrap_err().contains("--topics"));
    }
}
