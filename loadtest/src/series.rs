//! The run second by second: what every worker counted in each second of
//! the run, merged, for the report's `series` and the progress line.
//!
//! Workers count on their own (plain fields, histograms they alone write)
//! and hand in one [`Interval`] per second, under a lock taken once a
//! second per worker and never per message. A second's latency
//! percentiles need every worker's samples of that second, so it stays
//! pending (with its merged histogram) until every worker has moved past
//! it; then only its figures are kept, and the histogram is dropped, so a
//! long run costs a few dozen bytes a second.

use crate::report::{Latency, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One second of the run, all workers together.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    /// Start of this second, in whole seconds from the start of the run.
    pub t_s: u64,
    /// How much of the second the run lasted (below 1 for the last one).
    pub length_s: f64,
    /// Connections open (upgraded) at the end of the second.
    pub connections: u64,
    /// Connections upgraded in this second.
    pub opened: u64,
    /// Messages the scenario sent in this second (echo: messages; hold:
    /// pings; fanout: publishes).
    pub sent: u64,
    /// Messages the scenario counted as received in this second (echo:
    /// messages echoed and checked; hold: pongs; fanout: deliveries).
    pub received: u64,
    /// Failures counted in this second, all reasons.
    pub errors: u64,
    /// Latency samples in this second (the report's `series_latency`).
    pub samples: u64,
    /// `null` when the second has no samples.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What one worker counted in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interval {
    /// Which second, from the start of the run.
    pub index: u64,
    pub opened: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
}

/// Seconds since the last [`Series::take_window`], summed: what a progress
/// line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// From the start of the first second to the end of the last, in
    /// seconds from the start of the run.
    pub from_s: u64,
    pub to_s: u64,
    /// Open at the end of the window.
    pub connections: u64,
    pub opened: u64,
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    pub latency: Option<Percentiles>,
}

impl Window {
    /// Per second over the window.
    pub fn rate(&self, n: u64) -> f64 {
        n as f64 / (self.to_s - self.from_s).max(1) as f64
    }
}

struct Pending {
    /// Open connections, as the first worker to hand in this second saw
    /// them (closest to its end).
    connections: Option<u64>,
    counts: Interval,
    latency: Latency,
}

/// Seconds merged from every worker; see the module's documentation.
pub struct Series {
    epoch: Instant,
    /// Per worker: the first second it may still hand in; `None` once it
    /// has handed in its last.
    workers: Vec<Option<u64>>,
    pending: BTreeMap<u64, Pending>,
    seconds: Vec<Second>,
    /// Samples of the settled seconds that no window has taken yet.
    window: Latency,
    /// Seconds already taken by a window.
    taken: usize,
}

impl Series {
    /// Seconds count from `epoch`, the start of the run.
    pub fn new(epoch: Instant) -> Series {
        Series {
            epoch,
            workers: Vec::new(),
            pending: BTreeMap::new(),
            seconds: Vec::new(),
            window: Latency::default(),
            taken: 0,
        }
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The second `at` falls in.
    pub fn index(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_secs()
    }

    /// When second `index` ends.
    pub fn end_of(&self, index: u64) -> Instant {
        self.epoch + Duration::from_secs(index + 1)
    }

    /// A worker starts at `now`: its slot, and the second it counts first.
    pub fn join(&mut self, now: Instant) -> (usize, u64) {
        let index = self.index(now);
        self.workers.push(Some(index));
        (self.workers.len() - 1, index)
    }

    /// Worker `slot` hands in a second: its counts and its latency samples
    /// of it, `connections` open now (all workers), and the next second it
    /// counts (`None`: this was its last).
    pub fn add(
        &mut self,
        slot: usize,
        interval: &Interval,
        latency: &Latency,
        connections: u64,
        next: Option<u64>,
    ) {
        let k = interval.index;
        if (k as usize) < self.seconds.len() {
            // Settled already (a worker that joined after the others had
            // all finished): the counts still belong here; the second's
            // percentiles stay as they were.
            let second = &mut self.seconds[k as usize];
            second.opened += interval.opened;
            second.sent += interval.sent;
            second.received += interval.received;
            second.errors += interval.errors;
            self.window.merge(latency);
        } else {
            let pending = self.pending.entry(k).or_insert_with(|| Pending {
                connections: None,
                counts: Interval {
                    index: k,
                    ..Interval::default()
                },
                latency: Latency::default(),
            });
            pending.connections.get_or_insert(connections);
            let c = &mut pending.counts;
            c.opened += interval.opened;
            c.sent += interval.sent;
            c.received += interval.received;
            c.errors += interval.errors;
            pending.latency.merge(latency);
        }
        if let Some(w) = self.workers.get_mut(slot) {
            *w = next.map(|n| n.max(k + 1));
        }
        self.settle(None);
    }

    /// Settles every second no worker can hand in any more; with `all`,
    /// every second up to that one (at the end of a run, whoever has not
    /// handed in).
    fn settle(&mut self, all: Option<u64>) {
        let limit = match all {
            Some(end) => end,
            None => match self.workers.iter().flatten().min() {
                Some(&first_open) => first_open,
                // Every worker is done: everything pending is final.
                None => self
                    .pending
                    .keys()
                    .next_back()
                    .map_or(self.seconds.len() as u64, |k| k + 1),
            },
        };
        while (self.seconds.len() as u64) < limit {
            let t = self.seconds.len() as u64;
            let previous = self.seconds.last().map_or(0, |s| s.connections);
            let second = match self.pending.remove(&t) {
                Some(p) => {
                    let percentiles = p.latency.percentiles();
                    self.window.merge(&p.latency);
                    Second {
                        t_s: t,
                        length_s: 1.0,
                        connections: p.connections.unwrap_or(previous),
                        opened: p.counts.opened,
                        sent: p.counts.sent,
                        received: p.counts.received,
                        errors: p.counts.errors,
                        samples: percentiles.as_ref().map_or(0, |p| p.count),
                        p50_ms: percentiles.as_ref().map(|p| p.p50_ms),
                        p99_ms: percentiles.as_ref().map(|p| p.p99_ms),
                    }
                }
                // No worker handed this second in (each was busy past its
                // end; what it counted went to its previous second).
                None => Second {
                    t_s: t,
                    length_s: 1.0,
                    connections: previous,
                    opened: 0,
                    sent: 0,
                    received: 0,
                    errors: 0,
                    samples: 0,
                    p50_ms: None,
                    p99_ms: None,
                },
            };
            self.seconds.push(second);
        }
    }

    /// The seconds settled so far.
    pub fn seconds(&self) -> &[Second] {
        &self.seconds
    }

    /// The seconds settled since the last call, summed, and the latency
    /// of just those seconds; `None` if there are none.
    pub fn take_window(&mut self) -> Option<Window> {
        let new = self.seconds.get(self.taken..).filter(|s| !s.is_empty())?;
        let sum = |f: fn(&Second) -> u64| new.iter().map(f).sum::<u64>();
        let window = Window {
            from_s: new[0].t_s,
            to_s: new[new.len() - 1].t_s + 1,
            connections: new[new.len() - 1].connections,
            opened: sum(|s| s.opened),
            sent: sum(|s| s.sent),
            received: sum(|s| s.received),
            errors: sum(|s| s.errors),
            latency: self.window.percentiles(),
        };
        self.taken = self.seconds.len();
        self.window = Latency::default();
        Some(window)
    }

    /// The whole series once the run is over (`run` long): every second
    /// settled, whether or not each worker handed in its last, and the
    /// last one's length cut to the run's.
    pub fn finish(&mut self, run: Duration) -> Vec<Second> {
        let last = self.pending.keys().next_back().map(|k| k + 1);
        let end = last.unwrap_or(0).max(self.seconds.len() as u64);
        self.settle(Some(end));
        let run = run.as_secs_f64();
        let mut seconds = self.seconds.clone();
        for s in &mut seconds {
            s.length_s = (run - s.t_s as f64).clamp(0.0, 1.0);
        }
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(index: u64, sent: u64) -> Interval {
        Interval {
            index,
            sent,
            received: sent,
            ..Interval::default()
        }
    }

    fn samples(ms: &[u64]) -> Latency {
        let mut l = Latency::default();
        for &ms in ms {
            l.record(Duration::from_millis(ms));
        }
        l
    }

    #[test]
    fn a_second_settles_once_every_worker_has_handed_it_in() {
        let epoch = Instant::now();
        let mut series = Series::new(epoch);
        let (a, first) = series.join(epoch);
        let (b, _) = series.join(epoch);
        assert_eq!(first, 0);
        series.add(a, &interval(0, 10), &samples(&[1, 1, 1]), 5, Some(1));
        assert!(series.seconds().is_empty(), "b has not handed in second 0");
        series.add(b, &interval(0, 20), &samples(&[100]), 6, Some(1));
        let s = &series.seconds()[0];
        assert_eq!((s.sent, s.received, s.samples), (30, 30, 4));
        assert_eq!(s.connections, 5, "as the first to hand in saw it");
        assert!((s.p50_ms.unwrap() - 1.0).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms.unwrap() - 100.0).abs() < 0.1, "{s:?}");
        // a skips second 1 (busy past its end), b ends in second 2.
        series.add(a, &interval(2, 1), &Latency::default(), 4, None);
        series.add(b, &interval(2, 2), &Latency::default(), 4, None);
        let seconds = series.finish(Duration::from_millis(2500));
        assert_eq!(seconds.len(), 3);
        assert_eq!(seconds[1].sent, 0);
        assert_eq!(seconds[1].connections, 5, "carried from the second before");
        assert_eq!(seconds[1].p50_ms, None);
        assert_eq!(seconds[2].sent, 3);
        assert_eq!(seconds[2].length_s, 0.5);
        assert_eq!(seconds[0].length_s, 1.0);
    }

    #[test]
    fn windows_cover_new_seconds_only() {
        let epoch = Instant::now();
        let mut series = Series::new(epoch);
        let (a, _) = series.join(epoch);
        assert!(series.take_window().is_none());
        for k in 0..3 {
            series.add(
                a,
                &interval(k, 10 * (k + 1)),
                &samples(&[k + 1]),
                7,
                Some(k + 1),
            );
        }
        let w = series.take_window().unwrap();
        assert_eq!((w.from_s, w.to_s, w.sent), (0, 3, 60));
        assert_eq!(w.rate(w.sent), 20.0);
        assert_eq!(w.latency.unwrap().count, 3);
        series.add(a, &interval(3, 5), &samples(&[9, 9]), 7, Some(4));
        let w = series.take_window().unwrap();
        assert_eq!((w.from_s, w.to_s, w.sent, w.connections), (3, 4, 5, 7));
        let p = w.latency.unwrap();
        assert_eq!(p.count, 2, "only the new second's samples");
        assert!((p.p50_ms - 9.0).abs() < 0.01);
    }

    #[test]
    fn a_worker_that_never_hands_in_is_not_waited_for_at_the_end() {
        let epoch = Instant::now();
        let mut series = Series::new(epoch);
        let (a, _) = series.join(epoch);
        let _stuck = series.join(epoch);
        series.add(a, &interval(0, 4), &Latency::default(), 1, Some(1));
        series.add(a, &interval(1, 4), &Latency::default(), 1, None);
        assert!(series.seconds().is_empty());
        let seconds = series.finish(Duration::from_secs(2));
        assert_eq!(seconds.iter().map(|s| s.sent).sum::<u64>(), 8);
    }

    #[test]
    fn late_counts_still_add_up() {
        let epoch = Instant::now();
        let mut series = Series::new(epoch);
        let (a, _) = series.join(epoch);
        series.add(a, &interval(0, 3), &Latency::default(), 1, None);
        assert_eq!(series.seconds().len(), 1);
        let (b, _) = series.join(epoch);
        series.add(b, &interval(0, 2), &Latency::default(), 1, None);
        assert_eq!(series.finish(Duration::from_secs(1))[0].sent, 5);
    }
}
