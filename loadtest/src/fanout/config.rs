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
                // Publishers at or before `global`: j with floor(j·n/p) ≤ g.
                let (n, p) = (self.connections as u64, self.publishers as u64);
                let before = ((global as u64 + 1) * p).div_ceil(n).min(p);
                let subscriber = global as u64 - before;
                Some((subscriber % self.topics as u64) as u32)
            }
        }
    }

    /// When message `k` of publisher `j` is due, in ns after the start.
    pub(super) fn due(&self, j: u32, k: u64) -> u64 {
        ((j as f64 + k as f64 * self.publishers as f64) * 1e9 / self.rate) as u64
    }
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
