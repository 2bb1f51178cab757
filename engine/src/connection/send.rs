//! Sends and closes the handler (or the engine itself) asks for, with the
//! backpressure policy.

use super::*;

use uringws_protocol::encoder::encode_shared_compressed;

impl Connection {
    /// Queues one frame, applying the backpressure policy.
    pub(crate) fn send(&mut self, opcode: OpCode, payload: Bytes, ob: &mut Outbox) -> SendStatus {
        // A header is at most 14 bytes.
        let status = match self.admit(payload.len().saturating_add(14), ob) {
            Ok(status) => status,
            Err(status) => return status,
        };
        let compressed = match (opcode.is_control(), &ob.config.compression) {
            (false, Some(config)) => {
                ob.deflate
                    .compress(self.id.slot, self.output.deflate, &payload, config)
            }
            _ => None,
        };
        let encoded = match compressed {
            Some(compressed) => {
                let encoded = self.session.encode_compressed(opcode, compressed);
                match encoded {
                    Ok(_) => ob.counters.deflate_out += 1,
                    Err(_) => ob.deflate.unsent(self.id.slot, self.output.deflate),
                }
                encoded
            }
            None => self.session.encode(opcode, true, payload),
        };
        match encoded {
            Ok(frame) => {
                if !opcode.is_control() {
                    ob.counters.messages_out += 1;
                }
                let small = frame.wire_len() <= output::DIRECT_COPY_MAX;
                if small && self.output.can_send_direct() && self.layer().sends_as_is() {
                    // An echo or an ack to a connection with nothing else
                    // queued: one send of a copy, no Io and no queue
                    // taken for it (the copy is cheaper than both).
                    let bytes = ob.contiguous(&frame);
                    self.send_direct(bytes, ob);
                } else {
                    self.output.push_frame(frame, ob);
                    list(&mut self.output.listed, self.id, ob);
                }
                status
            }
            Err(_) => SendStatus::Dropped,
        }
    }

    /// Queues a ping or pong of the engine's own (auto-pong, keep-alive),
    /// outside the handler's backpressure bookkeeping: no drop is reported
    /// and no drain wanted. Over the limit it is not queued, so a peer that
    /// pings without reading cannot grow the queue.
    pub(super) fn send_control(&mut self, opcode: OpCode, payload: Bytes, ob: &mut Outbox) {
        let room = self.output.has_room(payload.len() + 14);
        if !self.is_open() || !room || self.output.load() >= ob.config.backpressure_limit {
            return;
        }
        if let Ok(frame) = self.session.encode(opcode, true, payload) {
            self.output.push_frame(frame, ob);
            list(&mut self.output.listed, self.id, ob);
        }
    }

    /// Queues a publication: `frame` as it was encoded for everyone, or,
    /// to a connection that agreed to permessage-deflate, its payload
    /// compressed, once per window size for all of them (`compressed`
    /// keeps what this fan-out compressed so far).
    pub(crate) fn send_publication(
        &mut self,
        frame: &Bytes,
        compressed: &mut Published,
        ob: &mut Outbox,
    ) -> SendStatus {
        let tag = self.output.deflate;
        let Some(config) = ob.config.compression.filter(|_| tag.is_on()) else {
            return self.send_encoded(frame.clone(), ob);
        };
        let packed = compressed.get(tag, frame, |opcode, payload| {
            let packed = ob.deflate.compress_shared(tag, payload, &config)?;
            encode_shared_compressed(opcode, &packed).ok()
        });
        match packed {
            Some(packed) => {
                let status = self.send_encoded(packed, ob);
                if status != SendStatus::Dropped {
                    ob.counters.deflate_out += 1;
                }
                status
            }
            None => self.send_encoded(frame.clone(), ob),
        }
    }

    /// Queues a frame that is already encoded (a publication). One marked
    /// compressed (RSV1) goes only where permessage-deflate was agreed,
    /// and then the connection's own compressor starts afresh.
    pub(crate) fn send_encoded(&mut self, frame: Bytes, ob: &mut Outbox) -> SendStatus {
        let compressed = frame.first().is_some_and(|b0| b0 & 0x40 != 0);
        if compressed && !self.output.deflate.is_on() {
            return SendStatus::Dropped;
        }
        let status = match self.admit(frame.len(), ob) {
            Ok(status) => status,
            Err(status) => return status,
        };
        if compressed {
            ob.deflate.sent_shared(self.id.slot, self.output.deflate);
        }
        ob.counters.messages_out += 1;
        if self.output.can_send_direct() && self.layer().sends_as_is() {
            self.send_direct(frame, ob);
        } else {
            self.output.push_bytes(frame, ob);
            list(&mut self.output.listed, self.id, ob);
        }
        status
    }

    /// Lists `frame`, whole, for one send of its bytes as they are; the
    /// caller checked that nothing else is queued or in flight.
    fn send_direct(&mut self, frame: Bytes, ob: &mut Outbox) {
        self.output.count(frame.len(), &mut ob.counters);
        self.output.sending = Sending::DirectQueued;
        ob.direct.push((self.id.slot, self.id.gen, frame));
    }

    /// Whether a new message may be queued, and with what status.
    pub(super) fn admit(&mut self, len: usize, ob: &mut Outbox) -> Result<SendStatus, SendStatus> {
        if !self.output.has_room(len) {
            // Not backpressure: no queue can hold it.
            return Err(SendStatus::Dropped);
        }
        let State::Open { drain, dropped, .. } = &mut self.state else {
            return Err(SendStatus::Dropped);
        };
        if self.output.load() >= ob.config.backpressure_limit {
            *drain = Drain::Wanted;
            ob.counters.backpressure_drops += 1;
            if ob.config.backpressure_policy == BackpressurePolicy::Close {
                ob.counters.backpressure_closes += 1;
                self.close(CloseCode::POLICY_VIOLATION, "backpressure limit", ob);
            } else {
                if *dropped == 0 {
                    ob.wake.push(self.id.slot);
                }
                *dropped = dropped.saturating_add(1);
            }
            return Err(SendStatus::Dropped);
        }
        if self.output.queued() == 0 {
            Ok(SendStatus::Sent)
        } else {
            *drain = Drain::Wanted;
            Ok(SendStatus::Queued)
        }
    }

    /// Starts the close handshake with `code` and `reason` (cut to fit),
    /// after what is queued; the handler hears of it next
    /// ([`poll_event`](Self::poll_event)). Anything but an open connection
    /// is left alone, except one still in its handshake, which is dropped.
    pub(crate) fn close(&mut self, code: CloseCode, reason: &str, ob: &mut Outbox) {
        match self.state {
            State::Open { .. } => {}
            State::Handshake { .. } => return self.on_transport_closed(ob),
            State::Closing { .. } | State::Closed { .. } => return,
        }
        let reason = truncate_reason(reason);
        match self.session.close(code, reason) {
            Ok(frame) => {
                self.output.push_frame(frame, ob);
                list(&mut self.output.listed, self.id, ob);
            }
            Err(_) => return self.on_transport_closed(ob),
        }
        ob.wake.push(self.id.slot);
        let reason = Utf8Bytes::from(reason);
        self.report(Report { code, reason }, ob);
        self.enter(
            State::Closing {
                wait_peer: true,
                report: true,
            },
            ob,
        );
    }

    /// The server is stopping: an open connection is closed with 1001, one
    /// in its handshake (no complete request yet, since a complete one is
    /// answered at once) is dropped.
    pub(crate) fn shutdown(&mut self, ob: &mut Outbox) {
        self.close(CloseCode::GOING_AWAY, "server shutting down", ob);
    }
}
