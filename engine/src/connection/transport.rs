//! The transport's side: what to submit, completed sends, the end of the
//! stream.

use super::*;

impl Connection {
    /// The vectored send to submit now, if any (direct frames go by the
    /// worker's [`Outbox::direct`] list instead).
    pub(crate) fn poll_transmit(&mut self) -> Option<Box<VectoredSend>> {
        self.output.listed = false;
        if self.is_closed() {
            return None;
        }
        let send = self.output.poll_vectored()?;
        Some(self.layer.outgoing(send))
    }

    /// A direct frame from [`Outbox::direct`] is about to be submitted;
    /// false if it is no longer wanted.
    pub(crate) fn start_direct(&mut self) -> bool {
        if self.output.sending != Sending::DirectQueued {
            return false;
        }
        if self.is_closed() {
            self.output.sending = Sending::Nothing;
            return false;
        }
        self.output.sending = Sending::Direct;
        true
    }

    /// Whether a send is in flight (the ring holds its memory).
    pub(crate) fn sending(&self) -> bool {
        matches!(self.output.sending, Sending::Direct | Sending::Vectored)
    }

    /// A send completed with `result` (bytes sent or a negated errno).
    /// Whether anything came of it for the worker to act on (an event, the
    /// end of the connection): most sends of an open connection bring
    /// nothing, and the worker then need not look at it again.
    pub(crate) fn on_sent(
        &mut self,
        result: i32,
        returned: Option<Box<VectoredSend>>,
        ob: &mut Outbox,
    ) -> bool {
        let Ok(sent) = usize::try_from(result) else {
            // Let go of the buffer (the pool takes Ios with one only).
            self.output.sent(0, returned, &mut ob.counters);
            self.on_transport_closed(ob);
            return true;
        };
        ob.counters.bytes_out += sent as u64;
        if !self.output.sent(sent, returned, &mut ob.counters) {
            self.on_transport_closed(ob);
            return true;
        }
        if self.is_closed() {
            return true;
        }
        if self.output.flushed() {
            self.output.release_io(&mut ob.pool, self.is_handshake());
        } else {
            // The rest of a short send, or what was queued meanwhile.
            list(&mut self.output.listed, self.id, ob);
        }
        match &mut self.state {
            State::Open { drain, .. } => {
                let under = self.output.queued() < ob.config.backpressure_limit / 2;
                if *drain == Drain::Wanted && under {
                    *drain = Drain::Due;
                }
                *drain == Drain::Due
            }
            _ => true,
        }
    }

    /// The peer shut its side of the stream: it can send nothing more, but
    /// it may still read (a half-close). What was queued for it before
    /// (replies to what it sent, a final HTTP response, our close frame or
    /// our reply to its close) still goes out, and then the transport is
    /// shut; nothing more is read, and no close of the peer's is waited
    /// for. An open connection ends there and then, reported as 1006: no
    /// close frame came, and one of ours could not be answered.
    pub(crate) fn on_end_of_stream(&mut self, ob: &mut Outbox) {
        match &mut self.state {
            State::Open { .. } => {
                let reason = Utf8Bytes::from_static("connection lost");
                let code = CloseCode::ABNORMAL;
                self.report(Report { code, reason }, ob);
                self.output.discard_input();
                self.enter(
                    State::Closing {
                        wait_peer: false,
                        report: true,
                    },
                    ob,
                );
            }
            // The close timeout still runs from our close frame.
            State::Closing { wait_peer, .. } => {
                *wait_peer = false;
                self.output.discard_input();
            }
            State::Handshake { .. } | State::Closed { .. } => self.on_transport_closed(ob),
        }
    }

    /// The transport is gone (an error, a teardown, or the end of a stream
    /// with nothing left to write): an
    /// open connection reports 1006; nothing more is read or written.
    pub(crate) fn on_transport_closed(&mut self, ob: &mut Outbox) {
        let report = match self.state {
            State::Open { .. } => {
                let reason = Utf8Bytes::from_static("connection lost");
                let code = CloseCode::ABNORMAL;
                self.report(Report { code, reason }, ob);
                true
            }
            State::Closing { report, .. } => report,
            State::Closed { .. } => return,
            State::Handshake { .. } => false,
        };
        self.output.discard(&mut ob.counters);
        self.enter(State::Closed { report }, ob);
    }

    /// Whether the transport is to be shut now: the connection is closed,
    /// or closing with everything written and nothing left to wait for.
    pub(crate) fn is_done(&self) -> bool {
        match &self.state {
            State::Closed { .. } => true,
            State::Closing { wait_peer, .. } => {
                self.output.flushed() && (!*wait_peer || self.session.state() == CloseState::Closed)
            }
            _ => false,
        }
    }
}
