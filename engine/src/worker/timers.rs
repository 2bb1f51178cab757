//! Deadlines: one per connection in a heap, lazily corrected (an entry
//! whose deadline moved is skipped and the connection rescheduled).

use super::Worker;
use crate::{connection::Expired, handler::Handler, stats::RequestOutcome};
use std::cmp::Reverse;

/// A heap entry: the deadline (ms) above the slot's 20 bits, so entries
/// order by deadline and an idle connection's costs 8 bytes, not the 16 of
/// a `(u64, u32)` (a million held connections: 8 MB). 44 bits of
/// milliseconds last 557 years.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer(u64);

const SLOT_BITS: u32 = uringws_ring::MAX_FILES.trailing_zeros();

impl Timer {
    fn new(at: u64, slot: u32) -> Timer {
        debug_assert!(slot < uringws_ring::MAX_FILES && at < 1 << (64 - SLOT_BITS));
        Timer(at << SLOT_BITS | u64::from(slot))
    }

    fn at(self) -> u64 {
        self.0 >> SLOT_BITS
    }

    fn slot(self) -> u32 {
        (self.0 & ((1 << SLOT_BITS) - 1)) as u32
    }
}

impl<H: Handler> Worker<H> {
    /// Makes sure the heap has the connection's next deadline.
    pub(super) fn schedule(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(at) = s.conn.poll_timeout(&self.ctx.out.config, self.ctx.out.now) else {
            return;
        };
        if s.timer_at == 0 || at < s.timer_at {
            s.timer_at = at;
            self.timers.push(Reverse(Timer::new(at, slot)));
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        let timers = self.timers.peek().map(|Reverse(t)| t.at());
        let logs = self.logs.due_at();
        [
            timers,
            self.accept.retry_at(),
            self.shutdown.deadline(),
            self.ctx.out.keys_due(),
            logs,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn run_timers(&mut self) {
        self.retry_accepts();
        self.log_summaries();
        self.ctx.out.sweep_keys();
        let now = self.ctx.out.now;
        while let Some(&Reverse(timer)) = self.timers.peek() {
            let (at, slot) = (timer.at(), timer.slot());
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if s.timer_at != at {
                continue;
            }
            s.timer_at = 0;
            if s.conn.handle_timeout(&mut self.ctx.out) == Expired::Handshake {
                self.stats.count_request(RequestOutcome::HandshakeTimeout);
            }
            self.drive(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Timer;

    #[test]
    fn timers_order_by_deadline_and_keep_their_slot() {
        let last = uringws_ring::MAX_FILES - 1;
        let year_500 = 500 * 365 * 24 * 3600 * 1000;
        let mut timers = [
            Timer::new(7, last),
            Timer::new(7, 0),
            Timer::new(6, last),
            Timer::new(year_500, 3),
            Timer::new(8, 1),
        ];
        timers.sort();
        let got: Vec<(u64, u32)> = timers.iter().map(|t| (t.at(), t.slot())).collect();
        assert_eq!(got, [(6, last), (7, 0), (7, last), (8, 1), (year_500, 3)]);
    }
}
