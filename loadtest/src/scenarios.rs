//! What the connections do once open: `connect` closes at once, `hold`
//! keeps them idle with periodic pings, `echo` keeps messages in flight
//! and checks every echo.

use crate::client::{Measured, Scenario, Traffic};
use crate::outbox::Outbox;
use crate::report::Latency;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use uringws_protocol::{Message, OpCode};

/// A storm: each connection closes (1000) as soon as it is upgraded.
#[derive(Default)]
pub struct Connect;

impl Scenario for Connect {
    fn open(&mut self, _: usize, _: Instant, _: &mut Outbox<'_>) {}

    fn done(&mut self, _: usize, _: Instant) -> bool {
        true
    }
}

/// Pings on otherwise idle connections: one every `interval` per
/// connection; one whose pong has not come within two intervals is
/// counted and marked, for its scenario to close. A zero interval sends
/// none.
pub struct Pings {
    interval: Duration,
    slots: Vec<Ping>,
    pub latency: Latency,
    /// This second's pongs, for the series.
    recent: Latency,
    pub missed: u64,
    pub sent: u64,
    pub pongs: u64,
}

#[derive(Clone, Copy)]
struct Ping {
    /// When the next ping is due.
    next: Instant,
    /// When the outstanding ping went out.
    sent: Option<Instant>,
    /// Missed its pong: close it.
    unanswered: bool,
}

impl Pings {
    pub fn new(interval: Duration) -> Self {
        Pings {
            interval,
            slots: Vec::new(),
            latency: Latency::default(),
            recent: Latency::default(),
            missed: 0,
            sent: 0,
            pongs: 0,
        }
    }

    fn slot(&mut self, id: usize, now: Instant) -> &mut Ping {
        if self.slots.len() <= id {
            self.slots.resize(
                id + 1,
                Ping {
                    next: now,
                    sent: None,
                    unanswered: false,
                },
            );
        }
        &mut self.slots[id]
    }

    /// Connection `id` is upgraded: its first ping is an interval away.
    pub fn open(&mut self, id: usize, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        *self.slot(id, now) = Ping {
            next: now + self.interval,
            sent: None,
            unanswered: false,
        };
    }

    /// Sends connection `id`'s ping if it is due, or marks it unanswered.
    pub fn tick(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        if self.interval.is_zero() {
            return;
        }
        let interval = self.interval;
        let ping = *self.slot(id, now);
        match ping.sent {
            Some(sent) if !ping.unanswered && now.duration_since(sent) > interval * 2 => {
                self.missed += 1;
                self.slot(id, now).unanswered = true;
            }
            Some(_) => {}
            None if now >= ping.next => {
                out.send(OpCode::Ping, b"alive?");
                self.sent += 1;
                let slot = self.slot(id, now);
                slot.next = now + interval;
                slot.sent = Some(now);
            }
            None => {}
        }
    }

    pub fn pong(&mut self, id: usize, now: Instant) {
        self.pongs += 1;
        if let Some(sent) = self.slots.get_mut(id).and_then(|p| p.sent.take()) {
            let latency = now.duration_since(sent);
            self.latency.record(latency);
            self.recent.record(latency);
        }
    }

    /// Whether connection `id` missed a pong.
    pub fn unanswered(&self, id: usize) -> bool {
        self.slots.get(id).is_some_and(|p| p.unanswered)
    }

    pub fn recent(&mut self) -> &mut Latency {
        &mut self.recent
    }
}

/// Idle connections, pinged every `interval`; one that does not answer
/// within two intervals is counted, closed, and so not alive at the end.
pub struct Hold {
    pub pings: Pings,
    /// Size of the JSON message each connection sends once, right after
    /// its upgrade, to an echo endpoint (0: none).
    first: usize,
    pub firsts_echoed: u64,
}

impl Hold {
    pub fn new(interval: Duration) -> Self {
        Hold {
            pings: Pings::new(interval),
            first: 0,
            firsts_echoed: 0,
        }
    }

    /// Each connection sends one JSON message of `size` bytes right after
    /// its upgrade and takes its echo: a server then holds whatever a
    /// connection keeps once it has talked (a compressor of its own, say),
    /// not only what a silent one costs.
    pub fn with_first_message(mut self, size: usize) -> Self {
        self.first = size.max(Payload::Json.min_size());
        self
    }
}

impl Scenario for Hold {
    fn open(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        self.pings.open(id, now);
        if self.first > 0 {
            out.send(OpCode::Text, &json_payload(id as u64, self.first));
        }
    }

    fn message(
        &mut self,
        _: usize,
        _: Message,
        _: Instant,
        _: &mut Outbox<'_>,
    ) -> Result<(), String> {
        match self.first {
            0 => Err("unexpected message".into()),
            _ => {
                self.firsts_echoed += 1;
                Ok(())
            }
        }
    }

    fn tick(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        self.pings.tick(id, now, out);
    }

    fn pong(&mut self, id: usize, now: Instant) {
        self.pings.pong(id, now);
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            sent: self.pings.sent,
            received: self.pings.pongs + self.firsts_echoed,
            errors: 0,
        }
    }

    fn recent(&mut self) -> Option<&mut Latency> {
        Some(self.pings.recent())
    }

    fn done(&mut self, id: usize, _: Instant) -> bool {
        self.pings.unanswered(id)
    }

    fn measured(self) -> Vec<Measured> {
        vec![Measured {
            name: "ping to pong".into(),
            latency: self.pings.latency,
            count: Some(("pings unanswered".into(), self.pings.missed)),
        }]
    }
}

/// Echo, every answered message checked byte for byte. Closed loop:
/// `in_flight` messages per connection, each answer replaced by the next.
/// Open loop ([`Echo::open_loop`]): each connection sends on a fixed
/// schedule whatever the answers do, and latency counts from the intended
/// send time, so a stalled server shows as latency rather than as fewer
/// samples (no coordinated omission).
pub struct Echo {
    size: usize,
    payload: Payload,
    binary: bool,
    in_flight: usize,
    /// Open loop: time between a connection's messages.
    interval: Option<std::time::Duration>,
    conns: Vec<EchoConn>,
    pub round_trip: Latency,
    /// This second's round trips, for the series.
    recent: Latency,
    pub sent: u64,
    pub echoed: u64,
}

#[derive(Default, Clone)]
struct EchoConn {
    next_seq: u64,
    expect_seq: u64,
    /// When each message in flight was (meant to be) sent.
    sent_at: VecDeque<Instant>,
    /// Open loop: when the next message is due.
    next_send: Option<Instant>,
}

/// What an echo message holds; either way it starts with its sequence
/// number, so a lost, reordered or corrupted echo is caught.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Payload {
    /// The number, then `x` up to the size: deflate shrinks it to almost
    /// nothing.
    #[default]
    Filler,
    /// A JSON document of the size: small records whose keys repeat and
    /// whose values vary with the number, as an API's messages do, so
    /// deflate shrinks it about as much as it would real traffic.
    Json,
}

impl Payload {
    /// The smallest size each kind can fill.
    pub fn min_size(self) -> usize {
        match self {
            Payload::Filler => 16,
            Payload::Json => 64,
        }
    }
}

impl Echo {
    pub fn new(size: usize, binary: bool, in_flight: usize) -> Self {
        Echo {
            size: size.max(Payload::Filler.min_size()),
            payload: Payload::Filler,
            binary,
            in_flight: in_flight.max(1),
            interval: None,
            conns: Vec::new(),
            round_trip: Latency::default(),
            recent: Latency::default(),
            sent: 0,
            echoed: 0,
        }
    }

    /// Open loop: each connection sends `per_connection` messages per
    /// second on schedule.
    pub fn open_loop(size: usize, binary: bool, per_connection: f64) -> Self {
        Echo {
            interval: Some(std::time::Duration::from_secs_f64(
                1.0 / per_connection.max(1e-3),
            )),
            ..Echo::new(size, binary, 1)
        }
    }

    /// Messages hold `payload` (at least [`Payload::min_size`] bytes).
    pub fn with_payload(self, payload: Payload) -> Self {
        Echo {
            size: self.size.max(payload.min_size()),
            payload,
            ..self
        }
    }

    /// The payload of message `seq`.
    fn payload(&self, seq: u64) -> Vec<u8> {
        match self.payload {
            Payload::Filler => {
                let mut payload = format!("{seq:016}").into_bytes();
                payload.resize(self.size, b'x');
                payload
            }
            Payload::Json => json_payload(seq, self.size),
        }
    }

    /// Sends the next message, meant to go at `at`.
    fn send(&mut self, id: usize, at: Instant, out: &mut Outbox<'_>) {
        let seq = self.conns[id].next_seq;
        let payload = self.payload(seq);
        let opcode = if self.binary {
            OpCode::Binary
        } else {
            OpCode::Text
        };
        out.send(opcode, &payload);
        let conn = &mut self.conns[id];
        conn.next_seq += 1;
        conn.sent_at.push_back(at);
        self.sent += 1;
    }
}

impl Scenario for Echo {
    fn open(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        if self.conns.len() <= id {
            self.conns.resize(id + 1, EchoConn::default());
        }
        self.conns[id] = EchoConn::default();
        if self.interval.is_some() {
            self.conns[id].next_send = Some(now);
            return;
        }
        for _ in 0..self.in_flight {
            self.send(id, now, out);
        }
    }

    fn tick(&mut self, id: usize, now: Instant, out: &mut Outbox<'_>) {
        let Some(interval) = self.interval else {
            return;
        };
        while let Some(due) = self.conns.get(id).and_then(|c| c.next_send) {
            if due > now {
                break;
            }
            self.send(id, due, out);
            self.conns[id].next_send = Some(due + interval);
        }
    }

    fn tick_every(&self) -> std::time::Duration {
        match self.interval {
            Some(_) => std::time::Duration::from_millis(1),
            None => crate::client::TICK,
        }
    }

    fn message(
        &mut self,
        id: usize,
        message: Message,
        now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), String> {
        let (got, binary) = match &message {
            Message::Text(text) => (text.as_bytes().clone(), false),
            Message::Binary(data) => (data.clone(), true),
            _ => return Ok(()),
        };
        let expect = self.payload(self.conns[id].expect_seq);
        if got[..] != expect[..] || binary != self.binary {
            return Err("echo mismatch".into());
        }
        let conn = &mut self.conns[id];
        conn.expect_seq += 1;
        if let Some(sent) = conn.sent_at.pop_front() {
            let latency = now.duration_since(sent);
            self.round_trip.record(latency);
            self.recent.record(latency);
        }
        self.echoed += 1;
        if self.interval.is_none() {
            self.send(id, now, out);
        }
        Ok(())
    }

    fn traffic(&self) -> Traffic {
        Traffic {
            sent: self.sent,
            received: self.echoed,
            errors: 0,
        }
    }

    fn recent(&mut self) -> Option<&mut Latency> {
        Some(&mut self.recent)
    }

    fn measured(self) -> Vec<Measured> {
        vec![Measured {
            name: "round trip".into(),
            latency: self.round_trip,
            count: Some(("messages echoed".into(), self.echoed)),
        }]
    }
}

/// A JSON document of exactly `size` bytes (at least 64) for message
/// `seq`: `{"seq":N,"events":[{…},…]}`, records while they fit, then
/// spaces (JSON's own whitespace) to the size.
fn json_payload(seq: u64, size: usize) -> Vec<u8> {
    const ACTIONS: [&str; 6] = ["view", "click", "scroll", "purchase", "login", "logout"];
    const END: &str = "]}";
    let mut out = format!(r#"{{"seq":{seq},"events":["#);
    // SplitMix64, seeded by the message: values differ from message to
    // message, as real ones do, and the echo can be checked against the
    // same sequence.
    let mut state = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut record = String::new();
    for i in 0u64.. {
        let r = next();
        record.clear();
        let _ = write!(
            record,
            r#"{}{{"id":{},"user":"user-{}","action":"{}","amount":{}.{:02},"ok":{}}}"#,
            if i == 0 { "" } else { "," },
            seq.wrapping_mul(64).wrapping_add(i),
            r % 10_000,
            ACTIONS[(r >> 16) as usize % ACTIONS.len()],
            (r >> 24) % 1_000,
            (r >> 40) % 100,
            r >> 63 == 1
        );
        if out.len() + record.len() + END.len() > size {
            break;
        }
        out += &record;
    }
    let mut out = out.into_bytes();
    out.resize(size.saturating_sub(END.len()).max(out.len()), b' ');
    out.extend_from_slice(END.as_bytes());
    out
}

/// Churn: connections opened at the plan's rate, each closed (1000) after
/// `hold_for`.
pub struct Churn {
    hold_for: std::time::Duration,
    opened_at: Vec<Option<Instant>>,
}

impl Churn {
    pub fn new(hold_for: std::time::Duration) -> Self {
        Churn {
            hold_for,
            opened_at: Vec::new(),
        }
    }
}

impl Scenario for Churn {
    fn open(&mut self, id: usize, now: Instant, _: &mut Outbox<'_>) {
        if self.opened_at.len() <= id {
            self.opened_at.resize(id + 1, None);
        }
        self.opened_at[id] = Some(now);
    }

    fn done(&mut self, id: usize, now: Instant) -> bool {
        self.opened_at
            .get(id)
            .copied()
            .flatten()
            .is_some_and(|at| now.duration_since(at) >= self.hold_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_are_json_of_the_size_and_differ_by_message() {
        for size in [64, 100, 1024, 16 << 10] {
            let a = json_payload(7, size);
            assert_eq!(a.len(), size);
            let value: serde_json::Value = serde_json::from_slice(&a).expect("valid JSON");
            assert_eq!(value["seq"], 7);
            assert!(!value["events"].as_array().unwrap().is_empty() || size < 100);
            assert_ne!(json_payload(8, size), a);
        }
        assert_eq!(json_payload(u64::MAX, 64).len(), 64);
    }
}
