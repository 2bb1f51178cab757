//! The transport's side: what to submit, completed sends, the end of the
//! stream.

use super::*;
use std::collections::VecDeque;
use uringws_ring::Chunk;

/// Records (of up to 16 KiB of plaintext each) put into one send at most.
/// 4 rather than 16: 16 KiB × 100 wss echo, same run, 0.92× the server
/// CPU and a p99 of 7.3 against 8.1 ms (`benches/RESULTS.md`).
const RECORDS_PER_SEND: usize = 4;

/// A queued piece at least this long is encrypted where it lies, not
/// gathered with its neighbours first: rustls copies it once anyway.
const ENCRYPT_IN_PLACE: usize = 2048;

/// The plaintext of the next record from the front of `queue`: a large
/// shared piece (or up to a record of it) as it is, or small pieces
/// gathered into `scratch`, up to a record, stopping before a large one.
/// Its length is what [`consume`] then takes off the queue.
fn next_record<'a>(queue: &'a VecDeque<Chunk>, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    scratch.clear();
    for chunk in queue {
        let bytes = chunk.as_slice();
        if bytes.len() >= ENCRYPT_IN_PLACE {
            if scratch.is_empty() {
                return &bytes[..bytes.len().min(tls::MAX_RECORD)];
            }
            break;
        }
        let room = tls::MAX_RECORD - scratch.len();
        scratch.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if scratch.len() == tls::MAX_RECORD {
            break;
        }
    }
    scratch
}

/// Takes `len` bytes off the front of `queue`, splitting a piece.
fn consume(queue: &mut VecDeque<Chunk>, mut len: usize) {
    while let Some(chunk) = queue.front_mut() {
        if chunk.len() <= len {
            len -= chunk.len();
            queue.pop_front();
            continue;
        }
        if len > 0 {
            let rest = match &*chunk {
                Chunk::Shared(bytes) => Chunk::Shared(bytes.slice(len..)),
                Chunk::Inline { .. } => {
                    Chunk::Shared(Bytes::copy_from_slice(&chunk.as_slice()[len..]))
                }
            };
            *chunk = rest;
        }
        return;
    }
}

impl Connection {
    /// The vectored send to submit now, if any (direct frames go by the
    /// worker's [`Outbox::direct`] list instead).
    pub(crate) fn poll_transmit(&mut self, ob: &mut Outbox) -> Option<Box<VectoredSend>> {
        self.output.listed = false;
        if self.is_closed() {
            return None;
        }
        match self.layer() {
            ByteLayer::Plain => self.output.poll_vectored(),
            ByteLayer::Tls => self.poll_records(ob),
        }
    }

    /// A TLS connection's next send: TLS's own records, then the queue
    /// encrypted, up to [`RECORDS_PER_SEND`] records, as one buffer. What
    /// a short send left goes first, as it is.
    fn poll_records(&mut self, ob: &mut Outbox) -> Option<Box<VectoredSend>> {
        if self.output.sending != Sending::Nothing {
            return None;
        }
        let tls = ob.tls.get_mut(&self.id.slot)?;
        let io = self.output.io.get_or_insert_with(|| ob.pool.take());
        let mut send = io.send.take()?;
        let mut encrypted = 0;
        let mut worn_out = false;
        if send.is_empty() {
            let mut wire = BytesMut::new();
            tls.take_output(&mut wire);
            let mut records = 0;
            while !io.out.is_empty() && records < RECORDS_PER_SEND && tls.can_write() {
                let plain = next_record(&io.out, &mut ob.scratch);
                let len = plain.len();
                if !tls.encrypt(plain, &mut wire) {
                    worn_out = tls.worn_out();
                    break;
                }
                consume(&mut io.out, len);
                encrypted += len;
                records += 1;
            }
            if !wire.is_empty() {
                send.push(Chunk::Shared(wire.freeze()));
            }
        }
        if tls.take_listing() {
            ob.list_keys(self.id.slot);
        }
        let send = if send.is_empty() {
            io.send = Some(send);
            None
        } else {
            Some(send)
        };
        self.output.unqueue(encrypted, &mut ob.counters);
        if send.is_some() {
            self.output.sending = Sending::Vectored;
        }
        if worn_out {
            // Its close_notify goes out after this send; nothing else can.
            self.fail_tls(&rustls::Error::EncryptError, ob);
        }
        send
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
        if self.output.flushed() && !self.has_records(ob) {
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
                self.lose(Utf8Bytes::from_static("connection lost"), ob);
                self.output.discard_input();
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
    /// or closing with everything written and nothing left to wait for,
    /// TLS's close_notify included ([`finish`](Self::finish)).
    pub(crate) fn is_done(&self, ob: &Outbox) -> bool {
        match &self.state {
            State::Closed { .. } => true,
            State::Closing { .. } => {
                let tls = self.is_tls().then(|| ob.tls.get(&self.id.slot)).flatten();
                self.closed_cleanly() && tls.is_none_or(|tls| !tls.has_output() && !tls.can_close())
            }
            _ => false,
        }
    }

    /// A closing connection with all written and nothing to wait for.
    fn closed_cleanly(&self) -> bool {
        let State::Closing { wait_peer, .. } = self.state else {
            return false;
        };
        self.output.flushed() && (!wait_peer || self.session.state() == CloseState::Closed)
    }

    /// After what the connection had to write and wait for is done: a TLS
    /// connection queues its close_notify, the last thing it sends.
    pub(crate) fn finish(&mut self, ob: &mut Outbox) {
        if !self.is_tls() || !self.closed_cleanly() {
            return;
        }
        if ob.tls.get_mut(&self.id.slot).is_some_and(|tls| tls.close()) {
            list(&mut self.output.listed, self.id, ob);
        }
    }

    /// Whether TLS records of its own wait to be sent.
    fn has_records(&self, ob: &Outbox) -> bool {
        self.is_tls()
            && ob
                .tls
                .get(&self.id.slot)
                .is_some_and(|tls| tls.has_output())
    }
}
