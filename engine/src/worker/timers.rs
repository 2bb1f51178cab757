//! Deadlines: one per connection in a heap, lazily corrected (an entry
//! whose deadline moved is skipped and the connection rescheduled).

use super::Worker;
use crate::{connection::Expired, handler::Handler, stats::RequestOutcome};
use std::cmp::Reverse;

impl<H: Handler> Worker<H> {
    /// Makes sure the heap has the connection's next deadline.
    pub(super) fn schedule(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(at) = s.conn.poll_timeout(&self.ctx.out.config) else {
            return;
        };
        if s.timer_at == 0 || at < s.timer_at {
            s.timer_at = at;
            self.timers.push(Reverse((at, slot)));
        }
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        let timers = self.timers.peek().map(|Reverse((at, _))| *at);
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
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
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
