//! Sending: once per loop turn, one submission per connection with
//! something queued; direct frames first, as they were queued first.

use super::{live, live_token, Kind, Worker};
use crate::handler::Handler;
use std::io;
use uringws_ring::{Token, VectoredSend};

impl<H: Handler> Worker<H> {
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if !self.ctx.out.direct.is_empty() {
            let mut direct = std::mem::take(&mut self.ctx.out.direct);
            for (slot, gen, frame) in direct.drain(..) {
                let Some(s) = live(&mut self.slots, slot, gen) else {
                    continue;
                };
                if s.conn.start_direct() {
                    self.ring
                        .send(s.socket, frame, Kind::Send.token(gen, slot))?;
                }
            }
            // Keep the allocation unless something was queued meanwhile.
            if self.ctx.out.direct.is_empty() {
                self.ctx.out.direct = direct;
            }
        }
        let mut ready = std::mem::take(&mut self.ctx.out.ready);
        for &slot in &ready {
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            if let Some(send) = s.conn.poll_transmit(&mut self.ctx.out) {
                let token = Kind::Send.token(s.conn.id.gen, slot);
                self.ring.send_vectored(s.socket, send, token)?;
            }
        }
        ready.clear();
        if self.ctx.out.ready.is_empty() {
            self.ctx.out.ready = ready;
        }
        Ok(())
    }

    pub(super) fn on_send(
        &mut self,
        token: Token,
        result: i32,
        returned: Option<Box<VectoredSend>>,
    ) {
        let slot = token.slot;
        let Some(s) = live_token(&mut self.slots, token) else {
            return;
        };
        if s.conn.on_sent(result, returned, &mut self.ctx.out) {
            self.drive(slot);
        }
        self.try_free(slot);
    }
}
