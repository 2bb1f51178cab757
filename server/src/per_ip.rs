//! Per-IP limits on WebSocket upgrades: connections open at once, and
//! handshakes per second (a token bucket). Connections from one address
//! land on any worker, so the counts are shared: a table split into
//! shards, each behind its own mutex, touched once or twice per handshake
//! and once per close, never per message.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{Mutex, MutexGuard},
    time::Instant,
};

/// A peer's address as the limits see it. IPv4 (also IPv4-mapped IPv6)
/// counts per address; IPv6 per /64, the block one host or household
/// usually gets, so rotating addresses inside it does not escape the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(u64);

impl IpKey {
    /// IPv4 keys are tagged with ff in the top byte: an IPv6 /64 starting
    /// ff is multicast, never a TCP peer, so the two cannot collide.
    const V4: u64 = 0xff << 56;
    /// No key, for side tables; also multicast.
    pub const NONE: IpKey = IpKey(u64::MAX);

    pub fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey(Self::V4 | u64::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::of(IpAddr::V4(v4)),
                None => IpKey((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

const SHARDS: usize = 16;
/// A shard is swept of idle entries when it has grown past this (and then
/// past twice what the last sweep left), so sweeps stay amortised O(1).
const SWEEP_FLOOR: usize = 1024;

#[derive(Debug)]
struct Entry {
    connections: u32,
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<IpKey, Entry>,
    sweep_at: usize,
}

/// Over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Too many handshakes; try again after this many seconds.
    Rate {
        retry_after: u64,
    },
    Connections,
}

#[derive(Debug)]
pub struct PerIp {
    /// 0: unlimited.
    max_connections: u32,
    /// Handshakes per second; 0: unlimited.
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl PerIp {
    /// `None` when both limits are off: nothing to keep.
    pub fn new(max_connections: usize, handshakes_per_second: f64) -> Option<PerIp> {
        if max_connections == 0 && handshakes_per_second <= 0.0 {
            return None;
        }
        Some(PerIp {
            max_connections: u32::try_from(max_connections).unwrap_or(u32::MAX),
            rate: handshakes_per_second.max(0.0),
            burst: handshakes_per_second.max(1.0),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// Whether connections are counted (and so must be released).
    pub fn counts_connections(&self) -> bool {
        self.max_connections > 0
    }

    fn shard(&self, ip: IpKey) -> MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(ip) as usize % SHARDS;
        // A panic while holding the lock cannot leave an entry half
        // written in a way that matters more than a lost count.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, now: Instant) -> Entry {
        Entry {
            connections: 0,
            tokens: self.burst,
            refilled: now,
        }
    }

    /// A handshake from `ip`: takes a token from its bucket.
    pub fn handshake(&self, ip: IpKey) -> Result<(), Over> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut shard = self.shard(ip);
        shard.maybe_sweep(self, now);
        let entry = shard.entries.entry(ip).or_insert_with(|| self.fresh(now));
        self.refill(entry, now);
        if entry.tokens >= 1.0 {
            entry.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - entry.tokens) / self.rate;
            Err(Over::Rate {
                retry_after: (wait.ceil() as u64).max(1),
            })
        }
    }

    /// A connection from `ip` opens; release it with [`disconnect`](Self::disconnect).
    pub fn connect(&self, ip: IpKey) -> Result<(), Over> {
        if self.max_connections == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut shard = self.shard(ip);
        shard.maybe_sweep(self, now);
        let entry = shard.entries.entry(ip).or_insert_with(|| self.fresh(now));
        if entry.connections >= self.max_connections {
            return Err(Over::Connections);
        }
        entry.connections += 1;
        Ok(())
    }

    pub fn disconnect(&self, ip: IpKey) {
        let now = Instant::now();
        let mut shard = self.shard(ip);
        if let Some(entry) = shard.entries.get_mut(&ip) {
            entry.connections = entry.connections.saturating_sub(1);
            if self.idle(entry, now) {
                shard.entries.remove(&ip);
            }
        }
    }

    fn refill(&self, entry: &mut Entry, now: Instant) {
        let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
        entry.tokens = (entry.tokens + elapsed * self.rate).min(self.burst);
        entry.refilled = now;
    }

    /// Whether forgetting the entry changes nothing: no connection, and a
    /// bucket that would be full by now.
    fn idle(&self, entry: &mut Entry, now: Instant) -> bool {
        if entry.connections > 0 {
            return false;
        }
        if self.rate <= 0.0 {
            return true;
        }
        self.refill(entry, now);
        entry.tokens >= self.burst
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap().entries.len())
            .sum()
    }
}

impl Shard {
    fn maybe_sweep(&mut self, limits: &PerIp, now: Instant) {
        if self.entries.len() < self.sweep_at.max(SWEEP_FLOOR) {
            return;
        }
        self.entries.retain(|_, entry| !limits.idle(entry, now));
        self.sweep_at = self.entries.len() * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn keys_are_per_v4_address_and_per_v6_64() {
        let v4 = |s: &str| IpKey::of(IpAddr::V4(s.parse::<Ipv4Addr>().unwrap()));
        let v6 = |s: &str| IpKey::of(IpAddr::V6(s.parse::<Ipv6Addr>().unwrap()));
        assert_ne!(v4("10.0.0.1"), v4("10.0.0.2"));
        assert_eq!(v4("10.0.0.1"), v6("::ffff:10.0.0.1"));
        assert_eq!(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff::9"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_ne!(v6("::1"), v4("0.0.0.1"));
        assert_ne!(v6("::1"), IpKey::NONE);
        assert_ne!(v4("255.255.255.255"), IpKey::NONE);
    }

    #[test]
    fn connections_are_counted_and_released() {
        let limits = PerIp::new(2, 0.0).unwrap();
        let (a, b) = (IpKey(1), IpKey(2));
        assert_eq!(limits.connect(a), Ok(()));
        assert_eq!(limits.connect(a), Ok(()));
        assert_eq!(limits.connect(a), Err(Over::Connections));
        assert_eq!(limits.connect(b), Ok(()));
        limits.disconnect(a);
        assert_eq!(limits.connect(a), Ok(()));
        for ip in [a, a, b] {
            limits.disconnect(ip);
        }
        assert_eq!(limits.entries(), 0, "idle addresses are forgotten");
        assert!(PerIp::new(0, 0.0).is_none());
    }

    #[test]
    fn handshakes_take_tokens_and_say_when_to_retry() {
        let limits = PerIp::new(0, 2.0).unwrap();
        let a = IpKey(1);
        assert_eq!(limits.handshake(a), Ok(()));
        assert_eq!(limits.handshake(a), Ok(()));
        assert_eq!(limits.handshake(a), Err(Over::Rate { retry_after: 1 }));
        assert_eq!(limits.handshake(IpKey(2)), Ok(()));
        let slow = PerIp::new(0, 0.1).unwrap();
        assert_eq!(slow.handshake(a), Ok(()), "the burst is at least 1");
        assert_eq!(slow.handshake(a), Err(Over::Rate { retry_after: 10 }));
    }

    #[test]
    fn sweeps_keep_what_still_limits() {
        let limits = PerIp::new(1, 0.01).unwrap();
        // One busy address in every shard, then many one-off handshakes.
        let busy: Vec<IpKey> = (0..64).map(IpKey).collect();
        for &ip in &busy {
            limits.connect(ip).unwrap();
        }
        for i in 0..(SHARDS * SWEEP_FLOOR * 2) as u64 {
            let _ = limits.handshake(IpKey(1000 + i));
        }
        for &ip in &busy {
            assert_eq!(limits.connect(ip), Err(Over::Connections));
        }
        // Drained buckets are kept: the sweep does not reset a limit.
        assert!(limits.entries() >= SHARDS * SWEEP_FLOOR);
    }
}
