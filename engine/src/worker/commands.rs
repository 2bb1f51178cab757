//! Commands from other threads (sends and closes through a `ConnRef`,
//! publications from other workers, shutdown) and the shutdown itself.

use super::{live, Worker};
use crate::{
    handler::Handler,
    remote::{Command, ConnOp},
};

/// After the shutdown deadline, how long cancelled operations get to
/// complete before the ring is dropped.
const FORCED_GRACE_MS: u64 = 2000;

/// Where a graceful shutdown stands.
#[derive(Debug, Default)]
pub(super) struct Shutdown {
    /// When connections still open are torn down.
    deadline: Option<u64>,
    forced: bool,
    /// Upgraded connections open when the shutdown began.
    draining: usize,
}

impl Shutdown {
    pub(super) fn started(&self) -> bool {
        self.deadline.is_some()
    }

    /// When the worker next has shutdown work to do.
    pub(super) fn deadline(&self) -> Option<u64> {
        self.deadline.map(|at| {
            if self.forced {
                at + FORCED_GRACE_MS
            } else {
                at
            }
        })
    }
}

impl<H: Handler> Worker<H> {
    pub(super) fn command(&mut self, command: Command) {
        let (id, op) = match command {
            Command::Conn { id, op } => (id, op),
            Command::Publish { topic, frame, at } => {
                self.deliver(&topic, &frame, None);
                self.stats.publish_delay.record(at.elapsed());
                return;
            }
            Command::Shutdown => return self.begin_shutdown(),
        };
        let Some(s) = live(&mut self.slots, id.slot, id.gen) else {
            return;
        };
        let out = &mut self.ctx.out;
        match op {
            ConnOp::Send { opcode, payload } => {
                s.conn.send(opcode, payload, out);
            }
            ConnOp::SendEncoded(frame) => {
                s.conn.send_encoded(frame, out);
            }
            ConnOp::Close { code, reason } => s.conn.close(code, &reason, out),
        }
        self.drive(id.slot);
    }

    /// No new connections, 503 to new upgrades, close 1001 to every open
    /// connection after what is queued for it; the worker exits when all
    /// are closed or the shutdown timeout passed.
    fn begin_shutdown(&mut self) {
        if self.shutdown.started() {
            return;
        }
        self.shutdown.deadline =
            Some(self.ctx.out.now + self.config().shutdown_timeout.as_millis() as u64);
        self.stop_accepting();
        let slots: Vec<u32> = self.slots.iter().map(|(slot, _)| slot as u32).collect();
        self.shutdown.draining = self.open;
        tracing::info!(
            worker = self.id,
            connections = self.open,
            sockets = slots.len(),
            timeout_s = self.config().shutdown_timeout.as_secs_f64(),
            "draining: no new connections, closing each open one with 1001"
        );
        for slot in slots {
            self.slots[slot as usize].conn.shutdown(&mut self.ctx.out);
            self.drive(slot);
        }
    }

    /// Whether the worker is done: shut down with no connection left, or
    /// past the deadline's grace. At the deadline every connection left is
    /// torn down.
    pub(super) fn finished(&mut self) -> bool {
        let Some(deadline) = self.shutdown.deadline else {
            return false;
        };
        if self.slots.is_empty() {
            // After a cut the line at the deadline said how it ended.
            if !self.shutdown.forced {
                tracing::info!(
                    worker = self.id,
                    closed = self.shutdown.draining,
                    "drained: every connection closed"
                );
            }
            return true;
        }
        let now = self.ctx.out.now;
        if now >= deadline && !self.shutdown.forced {
            self.shutdown.forced = true;
            let slots: Vec<u32> = self.slots.iter().map(|(slot, _)| slot as u32).collect();
            // Every socket left is a connection that was open, its close
            // handshake unfinished: the handler heard of its close
            // already, so `self.open` no longer counts it.
            tracing::warn!(
                worker = self.id,
                closed = self.shutdown.draining.saturating_sub(slots.len()),
                cut = slots.len(),
                "shutdown timeout: cutting the sockets still open"
            );
            for slot in slots {
                self.teardown(slot);
            }
        }
        // Cancelled operations complete quickly; past this the kernel holds
        // nothing of ours that matters, as the ring is about to be dropped.
        now >= deadline + FORCED_GRACE_MS
    }
}
