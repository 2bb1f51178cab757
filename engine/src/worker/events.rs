//! Handler callbacks for what connections report, and the local fan-out of
//! publications.

use super::Worker;
use crate::{
    conn::Conn,
    connection::{Event, Published, SendStatus},
    handler::Handler,
};
use bytes::Bytes;
use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::atomic::Ordering,
};
use uringws_protocol::CloseCode;

impl<H: Handler> Worker<H> {
    /// Hands one event of the connection in `slot` to the handler.
    pub(super) fn dispatch(&mut self, slot: u32, event: Event) {
        match event {
            Event::Message(message) => self.call(slot, |h, conn| h.message(conn, message)),
            Event::Ping(payload) => self.call(slot, |h, conn| h.ping(conn, &payload)),
            Event::Pong(payload) => self.call(slot, |h, conn| h.pong(conn, &payload)),
            Event::Drain => self.call(slot, |h, conn| h.drain(conn)),
            Event::Dropped(messages) => self.call(slot, |h, conn| h.dropped(conn, messages)),
            Event::Closed(report) => {
                let reason = report.reason.as_str();
                self.log_close(slot, report.code, reason);
                self.call(slot, |h, conn| h.close(conn, report.code, reason));
                // Its subscriptions end with it, before any other
                // publication can reach the slot.
                self.ctx.topics.remove_conn(slot);
                if self.slots[slot as usize].state.is_some() {
                    self.open -= 1;
                    self.stats.set_open(self.open);
                }
            }
        }
    }

    /// A close that is not the normal end of a connection (1000, 1001, or a
    /// close frame without a code) gets a line: the operator's view of
    /// protocol errors, timeouts and vanished peers.
    fn log_close(&mut self, slot: u32, code: CloseCode, reason: &str) {
        if matches!(
            code,
            CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode::NO_STATUS
        ) || !self.logs.closed.admit(self.ctx.out.now)
        {
            return;
        }
        // The peer's address is not kept past the handshake (it would cost
        // every idle connection its bytes); the id ties it to the upgrade.
        let s = &self.slots[slot as usize];
        tracing::info!(
            worker = self.id,
            conn = %self.ctx.conn_id(&s.conn),
            code = code.0,
            reason,
            "connection closed abnormally"
        );
    }

    /// Runs one callback on the connection in `slot`. One that panics
    /// closes its connection with 1011; the worker goes on.
    pub(super) fn call(&mut self, slot: u32, f: impl FnOnce(&mut H, &mut Conn<'_, H::State>)) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(state) = s.state.as_mut() else {
            return;
        };
        let mut view = Conn {
            conn: &mut s.conn,
            state,
            ctx: &mut self.ctx,
        };
        let handler = &mut self.handler;
        if catch_unwind(AssertUnwindSafe(|| f(handler, &mut view))).is_err() {
            tracing::error!(worker = self.id, conn = %view.id(), "handler panicked; closing the connection with 1011");
            view.close(CloseCode::INTERNAL_ERROR, "internal error");
        }
    }

    /// The fan-outs the last callbacks asked for.
    pub(super) fn deliver_published(&mut self) {
        if !self.ctx.to_publish.is_empty() {
            for (topic, frame, skip) in std::mem::take(&mut self.ctx.to_publish) {
                self.deliver(&topic, &frame, skip);
            }
        }
    }

    /// Queues one publication to this worker's subscribers of `topic`.
    pub(super) fn deliver(&mut self, topic: &str, frame: &Bytes, skip: Option<u32>) {
        let Some((id, subscribers)) = self.ctx.topics.take(topic) else {
            return;
        };
        let (mut delivered, mut dropped) = (0, 0);
        let mut compressed = Published::default();
        for &slot in &subscribers {
            if Some(slot) == skip {
                continue;
            }
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            match s
                .conn
                .send_publication(frame, &mut compressed, &mut self.ctx.out)
            {
                SendStatus::Dropped => dropped += 1,
                _ => delivered += 1,
            }
        }
        self.ctx.topics.restore(id, subscribers);
        self.stats.publishes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .deliveries
            .fetch_add(delivered, Ordering::Relaxed);
        if dropped > 0 {
            self.stats
                .deliveries_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
    }
}
