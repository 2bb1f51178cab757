//! What a worker logs about its clients, throttled: a storm (a full file
//! table, a flood of bad handshakes, a mass disconnect) costs a few lines
//! and one summary per window, not a line per event.

use super::Worker;
use crate::handler::Handler;

/// Lines let through per kind per window; the rest are counted.
const PER_WINDOW: u32 = 10;
const WINDOW_MS: u64 = 10_000;

/// One kind of event's budget.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    window_start: u64,
    logged: u32,
    suppressed: u64,
}

impl Throttle {
    /// Whether an event at `now` (ms) gets its own line.
    pub(super) fn admit(&mut self, now: u64) -> bool {
        if now >= self.window_start + WINDOW_MS && self.suppressed == 0 {
            self.window_start = now;
            self.logged = 0;
        }
        if self.logged < PER_WINDOW {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// When the summary of the events not logged is due.
    fn due_at(&self) -> Option<u64> {
        (self.suppressed > 0).then_some(self.window_start + WINDOW_MS)
    }

    /// The events not logged in a window that is over, and a new window.
    fn take_summary(&mut self, now: u64) -> Option<u64> {
        if self.due_at().is_none_or(|at| at > now) {
            return None;
        }
        self.window_start = now;
        self.logged = 0;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The worker's throttled log kinds.
#[derive(Debug, Default)]
pub(super) struct Logs {
    pub(super) refused: Throttle,
    pub(super) closed: Throttle,
    pub(super) accept: Throttle,
}

impl Logs {
    pub(super) fn due_at(&self) -> Option<u64> {
        [&self.refused, &self.closed, &self.accept]
            .into_iter()
            .filter_map(Throttle::due_at)
            .min()
    }
}

impl<H: Handler> Worker<H> {
    /// Summaries of the windows that are over.
    pub(super) fn log_summaries(&mut self) {
        let (now, worker) = (self.ctx.out.now, self.id);
        let secs = WINDOW_MS / 1000;
        if let Some(n) = self.logs.refused.take_summary(now) {
            tracing::info!(
                worker,
                refused = n,
                "{n} more refused requests not logged in {secs} s"
            );
        }
        if let Some(n) = self.logs.closed.take_summary(now) {
            tracing::info!(
                worker,
                closed = n,
                "{n} more abnormal closes not logged in {secs} s"
            );
        }
        if let Some(n) = self.logs.accept.take_summary(now) {
            tracing::warn!(
                worker,
                failed = n,
                "{n} more failed accepts not logged in {secs} s"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_per_window_then_one_summary() {
        let mut t = Throttle::default();
        let logged = (0..25).filter(|_| t.admit(100)).count();
        assert_eq!(logged, PER_WINDOW as usize);
        assert_eq!(t.due_at(), Some(WINDOW_MS));
        assert_eq!(t.take_summary(WINDOW_MS - 1), None);
        assert_eq!(t.take_summary(WINDOW_MS), Some(15));
        assert_eq!(t.take_summary(WINDOW_MS * 3), None, "one summary");
        // The next window starts with a full budget.
        assert!((0..PER_WINDOW).all(|_| t.admit(WINDOW_MS + 1)));
        assert!(!t.admit(WINDOW_MS + 2));
    }

    #[test]
    fn a_quiet_window_starts_afresh() {
        let mut t = Throttle::default();
        assert!((0..PER_WINDOW).all(|_| t.admit(0)));
        assert!(t.admit(WINDOW_MS), "the budget came back");
        assert_eq!(t.due_at(), None);
    }
}
