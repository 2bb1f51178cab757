//! Input: the request head, then frames, into events for the handler.

use super::*;
use std::ops::DerefMut;
use uringws_ring::Received;

/// Bytes just received, read from the front: a frame whole in them is
/// unmasked where it lies and its payload cut off as [`Bytes`] (sharing a
/// receive buffer of the ring, where it allows).
pub(crate) trait Incoming: DerefMut<Target = [u8]> {
    /// The first `n` bytes, cut off the front.
    fn split_to(&mut self, n: usize) -> Bytes;
    /// Drops the first `n` bytes.
    fn advance(&mut self, n: usize);
}

impl Incoming for Received {
    fn split_to(&mut self, n: usize) -> Bytes {
        Received::split_to(self, n)
    }

    fn advance(&mut self, n: usize) {
        Received::advance(self, n);
    }
}

/// Bytes of the caller's (tests, the fuzz target, the empty input of
/// [`Connection::poll_event`]): payloads are copied out.
impl Incoming for &mut [u8] {
    fn split_to(&mut self, n: usize) -> Bytes {
        let all = std::mem::take(self);
        let (front, rest) = all.split_at_mut(n.min(all.len()));
        *self = rest;
        Bytes::copy_from_slice(front)
    }

    fn advance(&mut self, n: usize) {
        let all = std::mem::take(self);
        let n = n.min(all.len());
        *self = &mut all[n..];
    }
}

impl Connection {
    /// Bytes from a plain connection's transport, into its buffer, to be
    /// read by [`poll_head`](Self::poll_head) or
    /// [`poll_event`](Self::poll_event). (Once upgraded, the worker hands
    /// them to [`poll_event_in`](Self::poll_event_in) where they lie.)
    pub(crate) fn receive(&mut self, data: &[u8], ob: &mut Outbox) {
        self.buffer_input(data, ob);
    }

    /// Records from a TLS connection's transport, decrypted in `data`
    /// where they lie; their plaintext joins the connection's buffer, to be
    /// read by [`poll_head`](Self::poll_head) or
    /// [`poll_event`](Self::poll_event). A record that cannot be read
    /// fails the connection with the alert rustls gives.
    pub(crate) fn receive_records(&mut self, data: &mut [u8], ob: &mut Outbox) {
        let reading = self.is_reading();
        let Some(tls) = ob.tls.get_mut(&self.id.slot) else {
            return;
        };
        let io = self.output.io.get_or_insert_with(|| ob.pool.take());
        let read = io.inbuf.len();
        let result = tls.receive(data, &mut io.inbuf);
        if !reading {
            io.inbuf.truncate(read);
        }
        match tls.handshake_done() {
            Some(true) => ob.counters.tls_resumed += 1,
            Some(false) => ob.counters.tls_full += 1,
            None => {}
        }
        let keyed = tls.take_listing();
        if tls.has_output() {
            list(&mut self.output.listed, self.id, ob);
        }
        if keyed {
            ob.list_keys(self.id.slot);
        }
        if let Err(error) = result {
            self.fail_tls(&error, ob);
        }
    }

    /// After a close was received or a final answer queued nothing more
    /// is read; a close we sent still waits for the peer's.
    fn is_reading(&self) -> bool {
        match &self.state {
            State::Handshake { .. } | State::Open { .. } => true,
            State::Closing { wait_peer, .. } => *wait_peer,
            State::Closed { .. } => false,
        }
    }

    /// Appends bytes that went through the byte layer to the buffer.
    pub(super) fn buffer_input(&mut self, data: &[u8], ob: &mut Outbox) {
        if self.is_reading() {
            self.output.io(&mut ob.pool).inbuf.extend_from_slice(data);
        }
    }

    /// TLS failed (a bad record, a failed handshake, an alert from the
    /// peer): the alert rustls has for it goes out, then the transport is
    /// shut. No close frame can be sent or read any more, so an open
    /// connection ends as 1006.
    pub(super) fn fail_tls(&mut self, error: &rustls::Error, ob: &mut Outbox) {
        ob.counters.tls_failures += 1;
        self.output.discard_input();
        match &mut self.state {
            State::Handshake { .. } => self.enter(
                State::Closing {
                    wait_peer: false,
                    report: false,
                },
                ob,
            ),
            State::Open { .. } => {
                let reason = format!("TLS: {error}");
                self.lose(Utf8Bytes::from(truncate_reason(&reason)), ob);
                // Nothing more can be encrypted.
                self.output.discard(&mut ob.counters);
            }
            State::Closing { wait_peer, .. } => {
                *wait_peer = false;
                self.output.discard(&mut ob.counters);
            }
            State::Closed { .. } => {}
        }
        list(&mut self.output.listed, self.id, ob);
    }

    /// Parses what was received as a request head. A complete one (with
    /// its body, for a plain request) goes to `decide`, whose answer comes
    /// back with the head's length; then [`respond`](Self::respond) or
    /// [`upgrade`](Self::upgrade). `None` while more is needed.
    pub(crate) fn poll_head<R>(
        &mut self,
        ob: &mut Outbox,
        decide: impl FnOnce(Head<'_>) -> R,
    ) -> Option<(R, usize)> {
        let State::Handshake { continue_sent, .. } = &mut self.state else {
            return None;
        };
        let io = self.output.io.as_mut()?;
        let request = match Request::parse(&io.inbuf, ob.config.max_head) {
            Ok(None) => return None,
            Err(e) => return Some((decide(Head::Invalid(e)), 0)),
            Ok(Some(request)) => request,
        };
        let head_len = request.head_len();
        if request.is_upgrade() {
            let head = match request.upgrade() {
                Ok(upgrade) => Head::Upgrade(upgrade),
                Err(e) => Head::Invalid(e),
            };
            return Some((decide(head), head_len));
        }
        let head = match body_framing(&request, ob.config.max_body) {
            Err(e) => Head::Invalid(e),
            Ok(framing) if io.inbuf.len() < head_len + framing.len => {
                // curl and others wait for this before sending a large body.
                if framing.expect_continue && !*continue_sent {
                    *continue_sent = true;
                    self.output.push_bytes(Bytes::from_static(CONTINUE), ob);
                    list(&mut self.output.listed, self.id, ob);
                }
                return None;
            }
            Ok(framing) => Head::Http {
                request: &request,
                body: &io.inbuf[head_len..head_len + framing.len],
            },
        };
        Some((decide(head), head_len))
    }

    /// Answers the request with `response` and closes once it is written.
    pub(crate) fn respond(&mut self, response: Bytes, ob: &mut Outbox) {
        self.end_handshake(Some(response), ob);
    }

    /// Reads no more and shuts once `response` (if any) is written.
    pub(super) fn end_handshake(&mut self, response: Option<Bytes>, ob: &mut Outbox) {
        if !self.is_handshake() {
            return;
        }
        self.output.discard_input();
        if let Some(response) = response {
            self.output.push_bytes(response, ob);
        }
        self.enter(
            State::Closing {
                wait_peer: false,
                report: false,
            },
            ob,
        );
        list(&mut self.output.listed, self.id, ob);
    }

    /// The upgrade is accepted: `response` (the 101) goes out, and what
    /// follows the `head_len` bytes of the head is the first frames, with
    /// permessage-deflate if `deflate` says what was agreed.
    pub(crate) fn upgrade(
        &mut self,
        response: Bytes,
        head_len: usize,
        deflate: Option<DeflateParams>,
        ob: &mut Outbox,
    ) {
        if !self.is_handshake() {
            return;
        }
        if let Some(params) = deflate {
            self.output.deflate = ob.deflate.open(self.id.slot, &params);
            self.session.set_compressed(true);
            ob.counters.deflate_agreed += 1;
        }
        let io = self.output.io(&mut ob.pool);
        let head_len = head_len.min(io.inbuf.len());
        bytes::Buf::advance(&mut io.inbuf, head_len);
        io.peer = None;
        io.via = None;
        self.output.push_bytes(response, ob);
        self.enter(
            State::Open {
                ping_out: false,
                drain: Drain::Idle,
                dropped: 0,
            },
            ob,
        );
        self.last_activity = Stamp::at(ob.now);
        list(&mut self.output.listed, self.id, ob);
    }

    /// The next thing the handler is to hear of: a pending close report,
    /// drops, a drain, or the next message decoded from what was received.
    pub(crate) fn poll_event(&mut self, ob: &mut Outbox) -> Option<Event> {
        let mut nothing: &mut [u8] = &mut [];
        self.poll_event_in(&mut nothing, ob)
    }

    /// [`poll_event`](Self::poll_event), reading on into `input`: bytes
    /// just received (through [`incoming`](Self::incoming)), in a buffer
    /// of the ring. A frame whole in it is unmasked there and its payload
    /// handed out as a slice of it ([`Incoming::split_to`]); only what is
    /// left (a partial frame) is copied into the connection's buffer. What
    /// it takes is cut off the front of `input`.
    pub(crate) fn poll_event_in<I: Incoming>(
        &mut self,
        input: &mut I,
        ob: &mut Outbox,
    ) -> Option<Event> {
        match &mut self.state {
            State::Handshake { .. } => return None,
            State::Open { dropped, drain, .. } => {
                if *dropped > 0 {
                    return Some(Event::Dropped(std::mem::take(dropped)));
                }
                if *drain == Drain::Due {
                    *drain = Drain::Idle;
                    return Some(Event::Drain);
                }
            }
            State::Closing { wait_peer, .. } => {
                let wait_peer = *wait_peer;
                if let Some(event) = self.take_report(ob) {
                    return Some(event);
                }
                if !wait_peer {
                    return None;
                }
                // Our close is out: read on for the peer's answer, but the
                // handler, told of the close, hears of nothing more.
                let all = input.len();
                self.buffer_input(input, ob);
                input.advance(all);
                return self.read_until_close(ob);
            }
            State::Closed { .. } => return self.take_report(ob),
        }
        let frame = match self.next_frame(input, ob) {
            Ok(Some(Frame::Compressed(compressed))) => {
                // The decoder's, capped at 4 GiB as it caps the limit.
                let limit = self.session.decoder().config().max_message_size;
                let tag = self.output.deflate;
                match ob.deflate.inflate(self.id.slot, tag, &compressed, limit) {
                    Ok(frame) => {
                        ob.counters.deflate_in += 1;
                        frame
                    }
                    Err(error) => return Some(self.fail(&error, ob)),
                }
            }
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(error) => return Some(self.fail(&error, ob)),
        };
        self.last_activity = Stamp::at(ob.now);
        if let State::Open { ping_out, .. } = &mut self.state {
            *ping_out = false;
        }
        Some(match frame {
            Frame::Text(text) => {
                ob.counters.messages_in += 1;
                Event::Message(Message::Text(text))
            }
            Frame::Binary(data) => {
                ob.counters.messages_in += 1;
                Event::Message(Message::Binary(data))
            }
            Frame::Ping(payload) => {
                if ob.config.auto_pong && self.session.state() == CloseState::Open {
                    self.send_control(OpCode::Pong, payload.clone(), ob);
                }
                Event::Ping(payload)
            }
            Frame::Pong(payload) => Event::Pong(payload),
            // Inflated above into text or binary; were it ever not, the
            // connection closes rather than lose the message.
            Frame::Compressed(_) => return Some(self.fail(&Error::ReservedBits, ob)),
            Frame::Close(frame) => {
                let (code, reason) = match &frame {
                    Some(f) => (f.code, f.reason.clone()),
                    None => (CloseCode::NO_STATUS, Utf8Bytes::from_static("")),
                };
                if let Some(reply) = self.session.reply_to_close(frame.as_ref()) {
                    self.output.push_frame(reply, ob);
                    list(&mut self.output.listed, self.id, ob);
                }
                self.output.discard_input();
                self.enter(
                    State::Closing {
                        wait_peer: false,
                        report: false,
                    },
                    ob,
                );
                Event::Closed(Report { code, reason })
            }
        })
    }

    /// The next frame: straight from `input` when nothing is buffered and
    /// it is whole there, else through the connection's buffer, into which
    /// the rest of `input` is copied (with room for the whole frame, so a
    /// large one arriving in pieces is not copied again as it grows).
    pub(super) fn next_frame<I: Incoming>(
        &mut self,
        input: &mut I,
        ob: &mut Outbox,
    ) -> Result<Option<Frame>, Error> {
        let buffered = self
            .output
            .io
            .as_ref()
            .is_some_and(|io| !io.inbuf.is_empty());
        if !buffered {
            // Nothing buffered and nothing new: no frame can be complete.
            if input.is_empty() {
                return Ok(None);
            }
            if let Some(frame) = self.session.decode_in_place(input)? {
                input.advance(frame.header_len());
                let payload = input.split_to(frame.payload_len());
                return self.session.finish_in_place(frame, payload).map(Some);
            }
        }
        if !input.is_empty() {
            let io = self.output.io(&mut ob.pool);
            let front = if io.inbuf.is_empty() {
                &input[..]
            } else {
                &io.inbuf[..]
            };
            if let Some(len) = self.session.decoder().frame_len_hint(front) {
                let room = len.min(RESERVE_AHEAD_MAX).saturating_sub(io.inbuf.len());
                io.inbuf.reserve(room.max(input.len()));
            }
            io.inbuf.extend_from_slice(input);
            input.advance(input.len());
        }
        match self.output.io.as_mut() {
            Some(io) => self.session.decode(&mut io.inbuf),
            None => Ok(None),
        }
    }

    /// Decodes and drops frames until the peer's close, which ends the
    /// handshake ([`is_done`](Self::is_done) turns true). Always `None`:
    /// nothing of it is for the handler.
    pub(super) fn read_until_close(&mut self, ob: &mut Outbox) -> Option<Event> {
        let io = self.output.io.as_mut()?;
        loop {
            match self.session.decode(&mut io.inbuf) {
                Ok(Some(Frame::Close(_))) => {
                    self.output.discard_input();
                    return None;
                }
                Ok(Some(_)) => self.last_activity = Stamp::at(ob.now),
                Ok(None) => return None,
                // Its close is what we wait for; a peer that cannot send
                // one is not waited for.
                Err(_) => {
                    self.on_transport_closed(ob);
                    return None;
                }
            }
        }
    }

    /// The peer broke the protocol: our close with the error's code goes
    /// out, nothing more is read, and the handler hears of the code.
    pub(super) fn fail(&mut self, error: &Error, ob: &mut Outbox) -> Event {
        let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
        self.output.discard_input();
        if let Some(frame) = self.session.fail(error) {
            self.output.push_frame(frame, ob);
            list(&mut self.output.listed, self.id, ob);
        }
        self.enter(
            State::Closing {
                wait_peer: false,
                report: false,
            },
            ob,
        );
        Event::Closed(Report {
            code,
            reason: Utf8Bytes::from(truncate_reason(&error.to_string())),
        })
    }

    /// After a batch of input: a lone small reply goes out as a direct
    /// send, and buffers left empty go back to the pool.
    pub(crate) fn after_input(&mut self, ob: &mut Outbox) {
        if self.is_open() && self.layer().sends_as_is() {
            if let Some(frame) = self.output.take_direct_reply(&mut ob.pool) {
                ob.direct.push((self.id.slot, self.id.gen, frame));
                return;
            }
        }
        // Mid-frame, the buffer holds room reserved for the frame's rest.
        let keep = self.is_handshake() || self.session.decoder().is_mid_message();
        self.output.release_io(&mut ob.pool, keep);
        self.finish(ob);
    }
}
