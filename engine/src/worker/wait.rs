//! Where the loop sleeps between turns: in its ring while messages keep
//! coming (tokio gets its turn every `YIELD_EVERY_MS`), in tokio's driver
//! otherwise (`Worker::run`).

use super::{Kind, Worker};
use crate::handler::Handler;
use std::{io, time::Duration};

impl<H: Handler> Worker<H> {
    /// Watches the mailbox's bell, so a command ends a wait in the ring.
    /// Its eventfd is never read: each ring is one completion all the same.
    pub(super) fn arm_bell(&mut self) {
        let fd = self.ctx.commands.bell().fd();
        if let Err(error) = self.ring.poll_multi(fd, Kind::Bell.token(0, 0)) {
            // Commands then wait for the worker's next turn through tokio.
            tracing::warn!(worker = self.id, %error, "cannot watch the mailbox");
        }
    }

    /// Between messages, waits in the ring itself rather than in tokio:
    /// one `io_uring_enter` both runs the next receive and returns it, where
    /// going through tokio's driver costs a wake of the doorbell and an
    /// `epoll_wait` more. Only until `until` (tokio's turn, in ms), then the
    /// loop sleeps in tokio. Whether there is work to do.
    pub(super) fn wait_in_ring(&mut self, until: u64) -> io::Result<bool> {
        if self.ring.has_completions() {
            return Ok(true);
        }
        let bell = self.ctx.commands.bell();
        bell.arm();
        if !self.rx.is_empty() {
            bell.disarm();
            return Ok(true);
        }
        let now = self.ctx.out.now;
        // A deadline of the worker's own may come up to a tick late.
        let until = self.next_deadline().map_or(until, |at| at.min(until));
        self.ring
            .wait_past_tick(Duration::from_millis(until.saturating_sub(now)))?;
        self.ctx.commands.bell().disarm();
        self.ctx.out.now = self.now();
        Ok(self.ring.has_completions() || !self.rx.is_empty())
    }
}
