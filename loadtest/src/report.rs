//! What a run measured, printed as a table and written as JSON: latency
//! percentiles from HdrHistogram, counts, failures by reason, bytes on the
//! wire beside payload bytes, and the load generator's own CPU time, so a
//! saturated client is visible next to its numbers.

use crate::series::Second;
use hdrhistogram::Histogram;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latencies in microseconds, 1 µs to 1 hour at 3 significant digits.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
        )
    }
}

impl Latency {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // `saturating_record` clamps values past the top instead of failing.
        self.0.saturating_record(micros);
    }

    /// Adds another worker's histogram.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Empties it, keeping its memory for the next interval.
    pub fn clear(&mut self) {
        self.0.reset();
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let at = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        Some(Percentiles {
            count: self.0.len(),
            min_ms: self.0.min() as f64 / 1000.0,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: self.0.max() as f64 / 1000.0,
            mean_ms: self.0.mean() / 1000.0,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// CPU time this process used, from `/proc/self/stat` (clock ticks of
/// 1/100 s on Linux).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CpuTime {
    pub user_s: f64,
    pub system_s: f64,
}

impl CpuTime {
    pub fn now() -> Option<CpuTime> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'. utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        Some(CpuTime {
            user_s: ticks(11)? / 100.0,
            system_s: ticks(12)? / 100.0,
        })
    }

    pub fn since(self, start: CpuTime) -> CpuTime {
        CpuTime {
            user_s: self.user_s - start.user_s,
            system_s: self.system_s - start.system_s,
        }
    }
}

/// Bytes of upgraded connections, each way: the WebSocket frames as they
/// went (headers included, compressed where permessage-deflate was agreed;
/// not the upgrade's HTTP, not TLS's records), and the payloads of the data
/// messages as the scenario sent and received them (inflated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCounts {
    pub wire_sent: u64,
    pub wire_received: u64,
    pub payload_sent: u64,
    pub payload_received: u64,
}

impl ByteCounts {
    /// Adds another worker's.
    pub fn add(&mut self, other: &ByteCounts) {
        self.wire_sent += other.wire_sent;
        self.wire_received += other.wire_received;
        self.payload_sent += other.payload_sent;
        self.payload_received += other.payload_received;
    }

    /// Wire bytes per payload byte sent; `None` with no payload.
    pub fn sent_ratio(&self) -> Option<f64> {
        ratio(self.wire_sent, self.payload_sent)
    }

    /// Wire bytes per payload byte received; `None` with no payload.
    pub fn received_ratio(&self) -> Option<f64> {
        ratio(self.wire_received, self.payload_received)
    }

    fn table(&self, out: &mut String) {
        let _ = writeln!(out, "  {:<24} {:>12} {:>12}", "bytes", "sent", "received");
        for (name, sent, received) in [
            (
                "on the wire (frames)",
                self.wire_sent.to_string(),
                self.wire_received.to_string(),
            ),
            (
                "payload",
                self.payload_sent.to_string(),
                self.payload_received.to_string(),
            ),
            (
                "wire / payload",
                fixed(self.sent_ratio()),
                fixed(self.received_ratio()),
            ),
        ] {
            let _ = writeln!(out, "  {name:<24} {sent:>12} {received:>12}");
        }
    }
}

fn ratio(wire: u64, payload: u64) -> Option<f64> {
    (payload > 0).then(|| wire as f64 / payload as f64)
}

fn fixed(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.3}"))
}

/// With the ratios, so a script need not divide.
impl Serialize for ByteCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("ByteCounts", 6)?;
        o.serialize_field("wire_sent", &self.wire_sent)?;
        o.serialize_field("wire_received", &self.wire_received)?;
        o.serialize_field("payload_sent", &self.payload_sent)?;
        o.serialize_field("payload_received", &self.payload_received)?;
        o.serialize_field("wire_per_payload_sent", &self.sent_ratio())?;
        o.serialize_field("wire_per_payload_received", &self.received_ratio())?;
        o.end()
    }
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub scenario: String,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    pub targets: Vec<String>,
    pub duration_s: f64,
    /// Counters by name (connections opened, messages sent, …).
    pub counts: BTreeMap<String, u64>,
    /// Each of `counts` over `duration_s` ([`per_second`]).
    pub rates_per_second: BTreeMap<String, f64>,
    /// Failures by reason (refused, timeout, bad status, bad accept, …).
    pub errors: BTreeMap<String, u64>,
    /// Latency distributions by name (handshake, round trip, delivery).
    pub latency: BTreeMap<String, Percentiles>,
    /// Bytes on the wire and payload bytes, each way.
    pub bytes: ByteCounts,
    /// The load generator's CPU time during the run; near `duration_s` ×
    /// workers means the client, not the server, was the limit.
    pub client_cpu: CpuTime,
    pub workers: usize,
    /// What the `fanout` scenario counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutReport>,
    /// The command line: the scenario and every option, defaults filled
    /// in, durations in seconds.
    pub options: serde_json::Value,
    /// Which latency the series' percentiles are of (a key of `latency`).
    pub series_latency: String,
    /// The run second by second.
    pub series: Vec<Second>,
}

/// Each count per second over `duration_s` (none for a run of no time).
pub fn per_second(counts: &BTreeMap<String, u64>, duration_s: f64) -> BTreeMap<String, f64> {
    if duration_s <= 0.0 {
        return BTreeMap::new();
    }
    counts
        .iter()
        .map(|(name, n)| (name.clone(), *n as f64 / duration_s))
        .collect()
}

/// What a `fanout` run counted, over all workers. A delivery is one
/// message arriving at one receiving connection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FanoutReport {
    /// `broadcast` or `uringws`.
    pub mode: String,
    pub publishers: usize,
    /// Receiving connections planned (in broadcast mode, every connection).
    pub subscribers: usize,
    pub topics: usize,
    /// Payload bytes per message (in uringws mode, after the topic prefix).
    pub size: usize,
    /// Publishes per second asked for, all publishers together.
    pub rate: f64,
    /// Connections ready (upgraded; in uringws mode also subscribed) when
    /// publishing began; only these publish and are counted as receivers.
    pub ready_at_start: u64,
    pub publishes_sent: u64,
    /// For each publish, the receivers alive at that moment (the publisher
    /// itself excluded).
    pub deliveries_expected: u64,
    /// First copies that arrived intact, from another connection.
    pub deliveries_received: u64,
    /// received ÷ expected, in percent; `null` when nothing was expected.
    pub reach_percent: Option<f64>,
    /// Expected, neither received nor owed to a receiver that died.
    pub lost: u64,
    /// Receivers that were counted and then dropped during the run.
    pub dead_subscribers: u64,
    /// Deliveries those receivers were owed and had not had when they
    /// dropped: the client's or the connection's loss, kept apart from the
    /// server's.
    pub to_dead_subscribers: u64,
    /// A (receiver, publisher, sequence) arriving again.
    pub duplicates: u64,
    /// Arrived after a later message of the same publisher (to the same
    /// topic); counted in `deliveries_received` too.
    pub reordered: u64,
    /// Of `reordered`, those more than 64 messages late: too old to tell a
    /// duplicate from a first copy, so counted as received.
    pub reordered_unchecked: u64,
    /// A publisher's own message coming back to it (broadcast servers that
    /// echo); neither expected nor received.
    pub self_deliveries: u64,
    /// Deliveries that failed validation (errors give the reasons); not
    /// received, so also lost.
    pub malformed: u64,
    /// Received over the time from the first publish to the last delivery.
    pub deliveries_per_s: f64,
    /// Delivery latency (also in the summary's `latency`, as `delivery`).
    #[serde(skip)]
    pub latency: Option<Percentiles>,
    /// The same figures for the receivers on each target (URL), in the
    /// order of the URLs; the fields above are their sums.
    pub per_target: Vec<TargetReport>,
    /// Failures by reason the scenario counted without closing the
    /// connection (the summary merges them into its `errors`).
    #[serde(skip)]
    pub errors: BTreeMap<String, u64>,
}

/// A fan-out's figures for the receivers on one target (URL): with
/// several nodes behind a bus, what each node delivered. The fields
/// mean what [`FanoutReport`]'s of the same names do.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetReport {
    /// Its index among the URLs, from 0.
    pub target: usize,
    pub url: String,
    /// Publishing connections planned on it.
    pub publishers: u64,
    /// Receiving connections planned on it.
    pub subscribers: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub reach_percent: Option<f64>,
    pub lost: u64,
    pub dead_subscribers: u64,
    pub to_dead_subscribers: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub reordered_unchecked: u64,
    pub self_deliveries: u64,
    pub malformed: u64,
    /// Delivery latency at its receivers; `null` with no delivery.
    pub latency: Option<Percentiles>,
}

/// Whether every expected delivery came, once and in order: the same
/// test for a whole run and for one target.
fn clean(lost: u64, to_dead: u64, duplicates: u64, reordered: u64, malformed: u64) -> bool {
    lost == 0 && to_dead == 0 && duplicates == 0 && reordered == 0 && malformed == 0
}

impl TargetReport {
    /// Whether every delivery expected on this target came, once and in
    /// order.
    pub fn clean(&self) -> bool {
        clean(
            self.lost,
            self.to_dead_subscribers,
            self.duplicates,
            self.reordered,
            self.malformed,
        )
    }
}

impl FanoutReport {
    /// Whether every expected delivery came, once and in order, on every
    /// target (a target's loss cannot hide behind another's surplus).
    pub fn clean(&self) -> bool {
        clean(
            self.lost,
            self.to_dead_subscribers,
            self.duplicates,
            self.reordered,
            self.malformed,
        ) && self.per_target.iter().all(TargetReport::clean)
    }

    /// The target whose figures are these, by index.
    pub fn target(&self, index: usize) -> Option<&TargetReport> {
        self.per_target.iter().find(|t| t.target == index)
    }

    /// One line per target, when there are several: the text summary's
    /// per-node breakdown.
    fn per_target_table(&self, out: &mut String) {
        if self.per_target.len() < 2 {
            return;
        }
        for t in &self.per_target {
            let _ = writeln!(out, "  target {}: {}", t.target, t.url);
        }
        let _ = writeln!(
            out,
            "  {:<8} {:>4} {:>7} {:>10} {:>10} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>8}",
            "target",
            "pub",
            "sub",
            "expected",
            "received",
            "reach %",
            "lost",
            "dup",
            "reord",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        let ms = |p: Option<f64>| p.map_or_else(|| "-".to_string(), |p| format!("{p:.3}"));
        for t in &self.per_target {
            let reach = t
                .reach_percent
                .map_or_else(|| "-".to_string(), |r| format!("{r:.3}"));
            let mut notes = Vec::new();
            if t.to_dead_subscribers > 0 || t.dead_subscribers > 0 {
                notes.push(format!(
                    "{} to {} dead subscriber(s)",
                    t.to_dead_subscribers, t.dead_subscribers
                ));
            }
            if t.reordered_unchecked > 0 {
                notes.push(format!(
                    "{} reordered beyond the duplicate window",
                    t.reordered_unchecked
                ));
            }
            if t.malformed > 0 {
                notes.push(format!("{} malformed", t.malformed));
            }
            if t.self_deliveries > 0 {
                notes.push(format!("{} self deliveries", t.self_deliveries));
            }
            let line = format!(
                "  {:<8} {:>4} {:>7} {:>10} {:>10} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>8}  {}",
                t.target,
                t.publishers,
                t.subscribers,
                t.deliveries_expected,
                t.deliveries_received,
                reach,
                t.lost,
                t.duplicates,
                t.reordered,
                ms(t.latency.as_ref().map(|l| l.p50_ms)),
                ms(t.latency.as_ref().map(|l| l.p99_ms)),
                ms(t.latency.as_ref().map(|l| l.max_ms)),
                notes.join(", ")
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }

    fn table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  fanout ({}): {} publisher(s), {} subscriber(s), {} topic(s), {} B at {}/s",
            self.mode, self.publishers, self.subscribers, self.topics, self.size, self.rate
        );
        let reach = self
            .reach_percent
            .map_or_else(|| "-".to_string(), |r| format!("{r:.3}"));
        let n = |n: u64| n.to_string();
        for (name, value, note) in [
            ("ready at start", n(self.ready_at_start), String::new()),
            ("publishes sent", n(self.publishes_sent), String::new()),
            (
                "deliveries expected",
                n(self.deliveries_expected),
                String::new(),
            ),
            (
                "deliveries received",
                n(self.deliveries_received),
                format!("({:.0}/s)", self.deliveries_per_s),
            ),
            ("reach (%)", reach, String::new()),
            ("lost", n(self.lost), String::new()),
            (
                "to dead subscribers",
                n(self.to_dead_subscribers),
                format!("({} subscriber(s) dropped)", self.dead_subscribers),
            ),
            ("duplicates", n(self.duplicates), String::new()),
            (
                "reordered",
                n(self.reordered),
                if self.reordered_unchecked > 0 {
                    format!("({} beyond the duplicate window)", self.reordered_unchecked)
                } else {
                    String::new()
                },
            ),
            ("self deliveries", n(self.self_deliveries), String::new()),
            ("malformed", n(self.malformed), String::new()),
        ] {
            let line = format!("  {name:<24} {value:>12}  {note}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
        self.per_target_table(out);
    }
}

impl Summary {
    /// Per-second rate of a counter over the run.
    pub fn rate(&self, counter: &str) -> Option<f64> {
        let n = *self.counts.get(counter)?;
        (self.duration_s > 0.0).then(|| n as f64 / self.duration_s)
    }

    /// The human-readable table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} against {} ({:.1} s)",
            self.scenario,
            self.targets.join(", "),
            self.duration_s
        );
        for (name, n) in &self.counts {
            let rate = self
                .rate(name)
                .map(|r| format!("  ({r:.0}/s)"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {name:<24} {n:>12}{rate}");
        }
        let agreed = self.counts.get("deflate agreed").copied();
        let declined = self.counts.get("deflate declined").copied();
        if agreed.is_some() || declined.is_some() {
            let (agreed, declined) = (agreed.unwrap_or(0), declined.unwrap_or(0));
            let _ = writeln!(
                out,
                "  deflate agreed on {agreed} of {} connections",
                agreed + declined
            );
        }
        self.bytes.table(&mut out);
        if let Some(fanout) = &self.fanout {
            fanout.table(&mut out);
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                out,
                "  {:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency (ms)", "p50", "p90", "p99", "p99.9", "max", "count"
            );
            for (name, p) in &self.latency {
                let _ = writeln!(
                    out,
                    "  {name:<24} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9}",
                    p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
                );
            }
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "  errors                   none");
        } else {
            for (reason, n) in &self.errors {
                let _ = writeln!(out, "  error: {reason:<17} {n:>12}");
            }
        }
        let busy = (self.client_cpu.user_s + self.client_cpu.system_s)
            / (self.duration_s * self.workers as f64).max(f64::EPSILON);
        let _ =
            writeln!(
            out,
            "  client CPU               {:.2} s user, {:.2} s system ({:.0}% of {} worker(s){})",
            self.client_cpu.user_s,
            self.client_cpu.system_s,
            busy * 100.0,
            self.workers,
            if busy > 0.9 { ": the client may be the limit" } else { "" }
        );
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_latencies() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        for ms in 1..=500u64 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 501..=1000u64 {
            b.record(Duration::from_millis(ms));
        }
        a.merge(&b);
        let p = a.percentiles().unwrap();
        assert_eq!(p.count, 1000);
        // 3 significant digits: within 0.1 %.
        for (got, want) in [
            (p.p50_ms, 500.0),
            (p.p90_ms, 900.0),
            (p.p99_ms, 990.0),
            (p.max_ms, 1000.0),
            (p.min_ms, 1.0),
        ] {
            assert!((got - want).abs() <= want * 0.001, "{got} vs {want}");
        }
        assert!(Latency::default().percentiles().is_none());
        a.clear();
        assert!(a.percentiles().is_none());
    }

    #[test]
    fn rates_are_per_second_of_the_run() {
        let counts = BTreeMap::from([("a".to_string(), 30), ("b".to_string(), 0)]);
        let rates = per_second(&counts, 1.5);
        assert_eq!(rates["a"], 20.0);
        assert_eq!(rates["b"], 0.0);
        assert!(per_second(&counts, 0.0).is_empty());
    }

    #[test]
    fn out_of_range_latency_is_clamped_not_lost() {
        let mut l = Latency::default();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(10 * 3600));
        assert_eq!(l.count(), 2);
    }

    #[test]
    fn cpu_time_moves_forward() {
        let start = CpuTime::now().expect("/proc/self/stat is readable");
        let mut x = 0u64;
        let begin = std::time::Instant::now();
        // Spin until the CPU time shows it, not for a fixed wall time: on a
        // core shared with other builds, 150 ms of wall time can be far
        // less CPU.
        let used = loop {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            let used = CpuTime::now().unwrap().since(start);
            if used.user_s + used.system_s >= 0.05 || begin.elapsed() > Duration::from_secs(10) {
                break used;
            }
        };
        std::hint::black_box(x);
        assert!(used.user_s + used.system_s >= 0.05, "{used:?}");
    }

    #[test]
    fn json_and_table_carry_the_numbers() {
        let mut latency = Latency::default();
        latency.record(Duration::from_micros(1500));
        let counts = BTreeMap::from([("messages".to_string(), 1000)]);
        let summary = Summary {
            scenario: "echo".into(),
            started_at: "2025-01-02T03:04:05.678Z".into(),
            targets: vec!["ws://127.0.0.1:9001/echo".into()],
            duration_s: 2.0,
            rates_per_second: per_second(&counts, 2.0),
            counts,
            errors: BTreeMap::from([("refused".to_string(), 3)]),
            latency: BTreeMap::from([("round_trip".to_string(), latency.percentiles().unwrap())]),
            bytes: ByteCounts {
                wire_sent: 1100,
                wire_received: 300,
                payload_sent: 1000,
                payload_received: 1000,
            },
            client_cpu: CpuTime {
                user_s: 1.9,
                system_s: 0.1,
            },
            workers: 1,
            fanout: None,
            options: serde_json::json!({"command": "echo", "duration_s": 2.0}),
            series_latency: "round_trip".into(),
            series: vec![Second {
                t_s: 0,
                length_s: 1.0,
                connections: 10,
                opened: 10,
                sent: 500,
                received: 499,
                errors: 3,
                samples: 499,
                p50_ms: Some(1.5),
                p99_ms: None,
            }],
        };
        assert_eq!(summary.rate("messages"), Some(500.0));
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert_eq!(json["counts"]["messages"], 1000);
        assert_eq!(json["rates_per_second"]["messages"], 500.0);
        assert_eq!(json["started_at"], "2025-01-02T03:04:05.678Z");
        assert_eq!(json["options"]["duration_s"], 2.0);
        assert_eq!(json["series"][0]["received"], 499);
        assert!(json["series"][0]["p99_ms"].is_null());
        assert_eq!(json["errors"]["refused"], 3);
        assert_eq!(json["latency"]["round_trip"]["count"], 1);
        let table = summary.table();
        assert!(table.contains("(500/s)"), "{table}");
        assert!(table.contains("refused"), "{table}");
        assert!(table.contains("the client may be the limit"), "{table}");
        assert_eq!(json["bytes"]["wire_sent"], 1100);
        assert_eq!(json["bytes"]["wire_per_payload_received"], 0.3);
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for line in [
            "on the wire (frames) 1100 300",
            "payload 1000 1000",
            "wire / payload 1.100 0.300",
        ] {
            assert!(words(&table).contains(line), "{line}\n{table}");
        }
        assert!(!table.contains("deflate agreed on"), "{table}");
    }

    #[test]
    fn deflate_agreement_is_reported_out_of_every_upgrade() {
        let summary = |counts: &[(&str, u64)]| Summary {
            scenario: "echo".into(),
            started_at: String::new(),
            targets: Vec::new(),
            duration_s: 1.0,
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            rates_per_second: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency: BTreeMap::new(),
            bytes: ByteCounts::default(),
            client_cpu: CpuTime::default(),
            workers: 1,
            fanout: None,
            options: serde_json::Value::Null,
            series_latency: "round trip".into(),
            series: Vec::new(),
        };
        let table = summary(&[("deflate agreed", 7), ("deflate declined", 3)]).table();
        assert!(
            table.contains("deflate agreed on 7 of 10 connections"),
            "{table}"
        );
        let table = summary(&[("deflate declined", 4)]).table();
        assert!(
            table.contains("deflate agreed on 0 of 4 connections"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&summary(&[]).to_json()).unwrap();
        assert!(
            json["bytes"]["wire_per_payload_sent"].is_null(),
            "no payload, no ratio"
        );
    }

    #[test]
    fn fanout_section_in_json_and_table() {
        let mut summary = Summary {
            scenario: "fanout".into(),
            started_at: String::new(),
            targets: vec!["ws://127.0.0.1:9001/ws".into()],
            duration_s: 3.0,
            counts: BTreeMap::new(),
            rates_per_second: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency: BTreeMap::new(),
            bytes: ByteCounts::default(),
            client_cpu: CpuTime::default(),
            workers: 2,
            fanout: None,
            options: serde_json::Value::Null,
            series_latency: "delivery".into(),
            series: Vec::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert!(json.get("fanout").is_none(), "only fanout runs have it");
        summary.fanout = Some(FanoutReport {
            mode: "uringws".into(),
            publishers: 2,
            subscribers: 100,
            topics: 4,
            size: 64,
            rate: 1000.0,
            ready_at_start: 102,
            publishes_sent: 2000,
            deliveries_expected: 50_000,
            deliveries_received: 49_990,
            reach_percent: Some(99.98),
            lost: 7,
            dead_subscribers: 1,
            to_dead_subscribers: 3,
            duplicates: 0,
            reordered: 5,
            reordered_unchecked: 2,
            self_deliveries: 0,
            malformed: 0,
            deliveries_per_s: 24_995.0,
            latency: None,
            per_target: Vec::new(),
            errors: BTreeMap::from([("x".to_string(), 1)]),
        });
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        let f = &json["fanout"];
        assert_eq!(f["deliveries_expected"], 50_000);
        assert_eq!(f["reach_percent"], 99.98);
        assert_eq!(f["to_dead_subscribers"], 3);
        assert!(f.get("errors").is_none() && f.get("latency").is_none());
        let table = summary.table();
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for line in [
            "fanout (uringws): 2 publisher(s), 100 subscriber(s), 4 topic(s)",
            "deliveries received 49990 (24995/s)",
            "reach (%) 99.980",
            "to dead subscribers 3 (1 subscriber(s) dropped)",
            "reordered 5 (2 beyond the duplicate window)",
        ] {
            assert!(words(&table).contains(line), "{line}\n{table}");
        }
        assert!(!summary.fanout.as_ref().unwrap().clean());
        assert!(
            !table.contains("target 0:"),
            "no per-target lines without targets: {table}"
        );
    }

    fn target(index: usize, expected: u64, received: u64) -> TargetReport {
        let mut latency = Latency::default();
        for ms in 1..=received.min(100) {
            latency.record(Duration::from_millis(ms));
        }
        TargetReport {
            target: index,
            url: format!("ws://127.0.0.{}:9001/ws", index + 1),
            publishers: if index == 0 { 2 } else { 0 },
            subscribers: 50,
            deliveries_expected: expected,
            deliveries_received: received,
            reach_percent: (expected > 0).then(|| received as f64 * 100.0 / expected as f64),
            lost: expected - received,
            dead_subscribers: 0,
            to_dead_subscribers: 0,
            duplicates: 0,
            reordered: 0,
            reordered_unchecked: 0,
            self_deliveries: 0,
            malformed: 0,
            latency: latency.percentiles(),
        }
    }

    #[test]
    fn per_target_figures_in_json_and_table_and_any_loss_is_unclean() {
        let clean_target = target(0, 25_000, 25_000);
        let fanout = FanoutReport {
            mode: "uringws".into(),
            publishers: 2,
            subscribers: 100,
            topics: 1,
            size: 64,
            rate: 1000.0,
            ready_at_start: 102,
            publishes_sent: 500,
            deliveries_expected: 50_000,
            deliveries_received: 25_000,
            reach_percent: Some(50.0),
            lost: 25_000,
            dead_subscribers: 0,
            to_dead_subscribers: 0,
            duplicates: 0,
            reordered: 0,
            reordered_unchecked: 0,
            self_deliveries: 0,
            malformed: 0,
            deliveries_per_s: 10_000.0,
            latency: None,
            per_target: vec![clean_target.clone(), target(1, 25_000, 0)],
            errors: BTreeMap::new(),
        };
        assert!(clean_target.clean());
        assert!(!fanout.per_target[1].clean());
        assert!(!fanout.clean());
        assert_eq!(fanout.target(1).map(|t| t.lost), Some(25_000));
        let mut table = String::new();
        fanout.table(&mut table);
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for line in [
            "target 0: ws://127.0.0.1:9001/ws",
            "target 1: ws://127.0.0.2:9001/ws",
            "target pub sub expected received reach % lost dup reord p50 ms p99 ms max ms",
            "0 2 50 25000 25000 100.000 0 0 0 50.015 99.007 100.031",
            "1 0 50 25000 0 0.000 25000 0 0 - - -",
        ] {
            assert!(words(&table).contains(line), "{line}\n{table}");
        }
        let json = serde_json::to_value(&fanout).unwrap();
        let t = &json["per_target"];
        assert_eq!(t[0]["url"], "ws://127.0.0.1:9001/ws");
        assert_eq!(t[0]["reach_percent"], 100.0);
        assert_eq!(t[0]["latency"]["count"], 100);
        assert_eq!(t[1]["target"], 1);
        assert_eq!(t[1]["deliveries_received"], 0);
        assert_eq!(t[1]["lost"], 25_000);
        assert!(t[1]["latency"].is_null());

        // A surplus on one target does not hide a loss on another.
        let mut hidden = fanout.clone();
        hidden.lost = 0;
        assert!(!hidden.clean());
        hidden.per_target.truncate(1);
        assert!(hidden.clean());
    }
}
