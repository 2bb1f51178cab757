//! One connection as a sans-IO state machine: bytes received, the time,
//! and the handler's sends and closes go in; bytes to send
//! ([`Connection::poll_transmit`]), events for the handler
//! ([`Connection::poll_event`]) and the next deadline
//! ([`Connection::poll_timeout`]) come out. It owns no socket and calls no
//! handler, so it is tested without either (`tests.rs`); the worker only
//! moves bytes between it and the ring.

mod layer;
mod output;
#[cfg(test)]
mod tests;

pub(crate) use output::IoPool;
use output::Sending;

use crate::{
    config::{BackpressurePolicy, EngineConfig},
    handler::Message,
    stats::Counters,
};
use bytes::Bytes;
use layer::ByteLayer;
use output::Output;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use uringws_protocol::{
    handshake::{Request, Upgrade},
    http::{body_framing, CONTINUE},
    session::CloseState,
    CloseCode, Error, Message as Frame, OpCode, Role, Session, Utf8Bytes,
};
use uringws_ring::VectoredSend;

/// What became of a message handed to [`Conn::send_text`](crate::Conn::send_text) and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Nothing was waiting: it goes out with this loop turn's write.
    Sent,
    /// Queued behind earlier data; the connection is slower than its
    /// sender. Below the backpressure limit still.
    Queued,
    /// Not queued: the connection is over its backpressure limit (and is
    /// being closed with 1008 if the policy says so), or it is closing.
    Dropped,
}

/// A connection's place in the worker: its slot and the slot's
/// generation, so that late completions and commands for a reused slot
/// are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Id {
    pub slot: u32,
    pub gen: u32,
}

/// Where a connection is in its life. Everything that varies with it is
/// in here, so no combination of separate flags can contradict it.
#[derive(Debug)]
pub(crate) enum State {
    /// Reading the HTTP request head (and a plain request's body).
    Handshake { continue_sent: bool },
    /// Upgraded.
    Open {
        /// A ping went out at `since` and no frame came since.
        ping_out: bool,
        /// Whether the handler is to hear when the queue drains.
        drain: Drain,
        /// Messages refused by backpressure since the handler last heard.
        dropped: u32,
    },
    /// Our close frame or final HTTP response is queued. The transport is
    /// shut once it is written and, when we started the close, the peer
    /// answered (or the close timeout passed).
    Closing {
        wait_peer: bool,
        report: Option<Box<Report>>,
    },
    /// The transport is shut or to be shut now.
    Closed { report: Option<Box<Report>> },
}

/// A drain callback's progress: wanted after a send was queued behind
/// others or refused, due once a send completes with the queue under half
/// the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drain {
    Idle,
    Wanted,
    Due,
}

/// How an opened connection ended, for the handler's `close`: reported
/// exactly once, when the connection leaves [`State::Open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub code: CloseCode,
    pub reason: Utf8Bytes,
}

/// What the handler is to hear of, one at a time.
#[derive(Debug)]
pub(crate) enum Event {
    Message(Message),
    /// Already answered when auto-pong is on.
    Ping(Bytes),
    Pong(Bytes),
    /// The queue fell back under half the backpressure limit.
    Drain,
    /// This many messages were refused by backpressure.
    Dropped(u32),
    Closed(Report),
}

/// A complete request head, for the worker to decide on.
pub(crate) enum Head<'a> {
    /// A plain request with its whole body.
    Http {
        request: &'a Request<'a>,
        body: &'a [u8],
    },
    Upgrade(Upgrade<'a>),
    /// Refused by the protocol: its [`Error::http_status`] says how.
    Invalid(Error),
}

/// What a timer did, for the worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    Nothing,
    /// No complete request head in time.
    Handshake,
    /// The close handshake did not finish in time.
    Closing,
    Idle,
    Ping,
}

/// What the worker's connections share: the settings, spare buffers, the
/// lists of connections with something to send, the counters, the time.
pub(crate) struct Outbox {
    pub config: Arc<EngineConfig>,
    pub pool: IoPool,
    /// Connections with queued bytes to flush this turn.
    pub ready: Vec<u32>,
    /// Lone frames to send as they are: (slot, generation, frame). A
    /// publication reaches most subscribers this way, so a fan-out to idle
    /// connections allocates nothing per subscriber.
    pub direct: Vec<(u32, u32, Bytes)>,
    /// Connections with an event for the handler that no input brought
    /// (a backpressure drop or close while another connection's callback
    /// ran).
    pub wake: Vec<u32>,
    pub counters: Counters,
    /// Milliseconds since the worker started.
    pub now: u64,
}

impl Outbox {
    pub(crate) fn new(config: Arc<EngineConfig>) -> Outbox {
        Outbox {
            config,
            pool: IoPool::default(),
            ready: Vec::new(),
            direct: Vec::new(),
            wake: Vec::new(),
            counters: Counters::default(),
            now: 0,
        }
    }
}

/// Most room reserved ahead of the bytes of a frame that is arriving in
/// pieces: a header alone, which costs a peer 10 bytes, must not make us
/// allocate its whole announced length.
const RESERVE_AHEAD_MAX: usize = 64 << 10;

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

pub(crate) struct Connection {
    pub id: Id,
    state: State,
    session: Session,
    output: Output,
    /// When the state began; while open, when the last ping went out.
    since: u64,
    last_activity: u64,
    /// Listed in [`Outbox::ready`] this turn.
    listed: bool,
    layer: ByteLayer,
}

impl Connection {
    /// A connection just accepted; `peer` is kept until the handshake ends.
    pub(crate) fn new(id: Id, peer: Option<SocketAddr>, ob: &mut Outbox) -> Connection {
        let io = peer.map(|peer| {
            let mut io = ob.pool.take();
            io.peer = Some(peer);
            io
        });
        Connection {
            id,
            state: State::Handshake {
                continue_sent: false,
            },
            session: Session::new(Role::Server, ob.config.decoder),
            output: Output::new(io),
            since: ob.now,
            last_activity: ob.now,
            listed: false,
            layer: ByteLayer::Plain,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    pub(crate) fn is_handshake(&self) -> bool {
        matches!(self.state, State::Handshake { .. })
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// Bytes queued or in flight.
    pub(crate) fn queued(&self) -> usize {
        self.output.queued
    }

    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.output.io.as_ref().and_then(|io| io.peer)
    }

    // ---- input ----

    /// Bytes from the transport, to be read by [`poll_head`](Self::poll_head)
    /// or [`poll_event`](Self::poll_event).
    pub(crate) fn receive(&mut self, data: &[u8], ob: &mut Outbox) {
        let data = self.layer.incoming(data);
        self.buffer_input(data, ob);
    }

    /// Appends bytes that went through the byte layer to the buffer.
    fn buffer_input(&mut self, data: &[u8], ob: &mut Outbox) {
        // After a close was received or a final answer queued nothing
        // more is read; a close we sent still waits for the peer's.
        let reading = match &self.state {
            State::Handshake { .. } | State::Open { .. } => true,
            State::Closing { wait_peer, .. } => *wait_peer,
            State::Closed { .. } => false,
        };
        if reading {
            self.output.io(&mut ob.pool).inbuf.extend_from_slice(data);
        }
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
        let State::Handshake { continue_sent } = &mut self.state else {
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
                    self.output
                        .push_bytes(Bytes::from_static(CONTINUE), &mut ob.pool);
                    list(&mut self.listed, self.id, ob);
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
        if !self.is_handshake() {
            return;
        }
        self.output.discard_input();
        self.output.push_bytes(response, &mut ob.pool);
        self.enter(
            State::Closing {
                wait_peer: false,
                report: None,
            },
            ob,
        );
        list(&mut self.listed, self.id, ob);
    }

    /// The upgrade is accepted: `response` (the 101) goes out, and what
    /// follows the `head_len` bytes of the head is the first frames.
    pub(crate) fn upgrade(&mut self, response: Bytes, head_len: usize, ob: &mut Outbox) {
        if !self.is_handshake() {
            return;
        }
        let io = self.output.io(&mut ob.pool);
        let _ = io.inbuf.split_to(head_len.min(io.inbuf.len()));
        io.peer = None;
        self.output.push_bytes(response, &mut ob.pool);
        self.enter(
            State::Open {
                ping_out: false,
                drain: Drain::Idle,
                dropped: 0,
            },
            ob,
        );
        self.last_activity = ob.now;
        list(&mut self.listed, self.id, ob);
    }

    /// The next thing the handler is to hear of: a pending close report,
    /// drops, a drain, or the next message decoded from what was received.
    pub(crate) fn poll_event(&mut self, ob: &mut Outbox) -> Option<Event> {
        self.poll_event_in(&mut &[][..], ob)
    }

    /// [`poll_event`](Self::poll_event), reading on into `input`: bytes
    /// just received, in a buffer that goes back to the kernel after this
    /// batch. Frames that are whole in it are decoded from it; only what
    /// is left (a partial frame) is copied into the connection's buffer.
    /// What it takes is cut off the front of `input`.
    pub(crate) fn poll_event_in(&mut self, input: &mut &[u8], ob: &mut Outbox) -> Option<Event> {
        *input = self.layer.incoming(input);
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
            State::Closing { report, wait_peer } => {
                if let Some(report) = report.take() {
                    return Some(Event::Closed(*report));
                }
                if !*wait_peer {
                    return None;
                }
                // Our close is out: read on for the peer's answer, but the
                // handler, told of the close, hears of nothing more.
                self.buffer_input(std::mem::take(input), ob);
                return self.read_until_close(ob);
            }
            State::Closed { report } => return report.take().map(|r| Event::Closed(*r)),
        }
        let frame = match self.next_frame(input, ob) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(error) => return Some(self.fail(&error, ob)),
        };
        self.last_activity = ob.now;
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
            Frame::Close(frame) => {
                let (code, reason) = match &frame {
                    Some(f) => (f.code, f.reason.clone()),
                    None => (CloseCode::NO_STATUS, Utf8Bytes::from_static("")),
                };
                if let Some(reply) = self.session.reply_to_close(frame.as_ref()) {
                    self.output.push_frame(reply, &mut ob.pool);
                    list(&mut self.listed, self.id, ob);
                }
                self.output.discard_input();
                self.enter(
                    State::Closing {
                        wait_peer: false,
                        report: None,
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
    fn next_frame(&mut self, input: &mut &[u8], ob: &mut Outbox) -> Result<Option<Frame>, Error> {
        let buffered = self
            .output
            .io
            .as_ref()
            .is_some_and(|io| !io.inbuf.is_empty());
        if !buffered && !input.is_empty() {
            if let Some((frame, used)) = self.session.decode_slice(input)? {
                *input = &input[used..];
                return Ok(Some(frame));
            }
        }
        if !input.is_empty() {
            let io = self.output.io(&mut ob.pool);
            let front = if io.inbuf.is_empty() {
                *input
            } else {
                &io.inbuf[..]
            };
            if let Some(len) = self.session.decoder().frame_len_hint(front) {
                let room = len.min(RESERVE_AHEAD_MAX).saturating_sub(io.inbuf.len());
                io.inbuf.reserve(room.max(input.len()));
            }
            io.inbuf.extend_from_slice(std::mem::take(input));
        }
        match self.output.io.as_mut() {
            Some(io) => self.session.decode(&mut io.inbuf),
            None => Ok(None),
        }
    }

    /// Decodes and drops frames until the peer's close, which ends the
    /// handshake ([`is_done`](Self::is_done) turns true). Always `None`:
    /// nothing of it is for the handler.
    fn read_until_close(&mut self, ob: &mut Outbox) -> Option<Event> {
        let io = self.output.io.as_mut()?;
        loop {
            match self.session.decode(&mut io.inbuf) {
                Ok(Some(Frame::Close(_))) => {
                    self.output.discard_input();
                    return None;
                }
                Ok(Some(_)) => self.last_activity = ob.now,
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
    fn fail(&mut self, error: &Error, ob: &mut Outbox) -> Event {
        let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
        self.output.discard_input();
        if let Some(frame) = self.session.fail(error) {
            self.output.push_frame(frame, &mut ob.pool);
            list(&mut self.listed, self.id, ob);
        }
        self.enter(
            State::Closing {
                wait_peer: false,
                report: None,
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
        if self.is_open() && self.layer.sends_as_is() {
            if let Some(frame) = self.output.take_direct_reply(&mut ob.pool) {
                ob.direct.push((self.id.slot, self.id.gen, frame));
                return;
            }
        }
        // Mid-frame, the buffer holds room reserved for the frame's rest.
        let keep = self.is_handshake() || self.session.decoder().is_mid_message();
        self.output.release_io(&mut ob.pool, keep);
    }

    // ---- sends ----

    /// Queues one frame, applying the backpressure policy.
    pub(crate) fn send(&mut self, opcode: OpCode, payload: Bytes, ob: &mut Outbox) -> SendStatus {
        let status = match self.admit(ob) {
            Ok(status) => status,
            Err(status) => return status,
        };
        match self.session.encode(opcode, true, payload) {
            Ok(frame) => {
                if !opcode.is_control() {
                    ob.counters.messages_out += 1;
                }
                self.output.push_frame(frame, &mut ob.pool);
                list(&mut self.listed, self.id, ob);
                status
            }
            Err(_) => SendStatus::Dropped,
        }
    }

    /// Queues a ping or pong of the engine's own (auto-pong, keep-alive),
    /// outside the handler's backpressure bookkeeping: no drop is reported
    /// and no drain wanted. Over the limit it is not queued, so a peer that
    /// pings without reading cannot grow the queue.
    fn send_control(&mut self, opcode: OpCode, payload: Bytes, ob: &mut Outbox) {
        if !self.is_open() || self.output.queued >= ob.config.backpressure_limit {
            return;
        }
        if let Ok(frame) = self.session.encode(opcode, true, payload) {
            self.output.push_frame(frame, &mut ob.pool);
            list(&mut self.listed, self.id, ob);
        }
    }

    /// Queues a frame that is already encoded (a publication).
    pub(crate) fn send_encoded(&mut self, frame: Bytes, ob: &mut Outbox) -> SendStatus {
        let status = match self.admit(ob) {
            Ok(status) => status,
            Err(status) => return status,
        };
        ob.counters.messages_out += 1;
        if self.output.can_send_direct() && self.layer.sends_as_is() {
            self.output.queued += frame.len();
            self.output.sending = Sending::DirectQueued;
            ob.direct.push((self.id.slot, self.id.gen, frame));
        } else {
            self.output.push_bytes(frame, &mut ob.pool);
            list(&mut self.listed, self.id, ob);
        }
        status
    }

    /// Whether a new message may be queued, and with what status.
    fn admit(&mut self, ob: &mut Outbox) -> Result<SendStatus, SendStatus> {
        let State::Open { drain, dropped, .. } = &mut self.state else {
            return Err(SendStatus::Dropped);
        };
        if self.output.queued >= ob.config.backpressure_limit {
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
        if self.output.queued == 0 {
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
                self.output.push_frame(frame, &mut ob.pool);
                list(&mut self.listed, self.id, ob);
            }
            Err(_) => return self.on_transport_closed(ob),
        }
        ob.wake.push(self.id.slot);
        self.enter(
            State::Closing {
                wait_peer: true,
                report: Some(Box::new(Report {
                    code,
                    reason: Utf8Bytes::from(reason),
                })),
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

    // ---- transport ----

    /// The vectored send to submit now, if any (direct frames go by the
    /// worker's [`Outbox::direct`] list instead).
    pub(crate) fn poll_transmit(&mut self) -> Option<Box<VectoredSend>> {
        self.listed = false;
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
    pub(crate) fn on_sent(
        &mut self,
        result: i32,
        returned: Option<Box<VectoredSend>>,
        ob: &mut Outbox,
    ) {
        let Ok(sent) = usize::try_from(result) else {
            // Let go of the buffer (the pool takes Ios with one only).
            self.output.sent(0, returned);
            return self.on_transport_closed(ob);
        };
        ob.counters.bytes_out += sent as u64;
        if !self.output.sent(sent, returned) {
            return self.on_transport_closed(ob);
        }
        if self.is_closed() {
            return;
        }
        if self.output.flushed() {
            self.output.release_io(&mut ob.pool, self.is_handshake());
        } else {
            // The rest of a short send, or what was queued meanwhile.
            list(&mut self.listed, self.id, ob);
        }
        if let State::Open { drain, .. } = &mut self.state {
            if *drain == Drain::Wanted && self.output.queued < ob.config.backpressure_limit / 2 {
                // The next event: the worker polls right after a send.
                *drain = Drain::Due;
            }
        }
    }

    /// The peer shut its side of the stream. An answer being written (a
    /// final HTTP response, our close reply) still goes out; anything else
    /// ends here, as the peer can send nothing more.
    pub(crate) fn on_end_of_stream(&mut self, ob: &mut Outbox) {
        if !matches!(
            self.state,
            State::Closing {
                wait_peer: false,
                ..
            }
        ) {
            self.on_transport_closed(ob);
        }
    }

    /// The transport is gone (an error, a teardown, or the end of a stream
    /// with nothing left to write): an
    /// open connection reports 1006; nothing more is read or written.
    pub(crate) fn on_transport_closed(&mut self, ob: &mut Outbox) {
        let report = match &mut self.state {
            State::Open { .. } => Some(Box::new(Report {
                code: CloseCode::ABNORMAL,
                reason: Utf8Bytes::from_static("connection lost"),
            })),
            State::Closing { report, .. } => report.take(),
            State::Closed { .. } => return,
            State::Handshake { .. } => None,
        };
        self.output.discard();
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

    // ---- time ----

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub(crate) fn poll_timeout(&self, config: &EngineConfig) -> Option<u64> {
        match &self.state {
            State::Handshake { .. } => {
                Some(self.since.saturating_add(ms(config.handshake_timeout)))
            }
            State::Open { ping_out, .. } => {
                let idle = (!config.idle_timeout.is_zero())
                    .then(|| self.last_activity.saturating_add(ms(config.idle_timeout)));
                let ping = (!config.ping_interval.is_zero()).then(|| match ping_out {
                    true => self.since.saturating_add(ms(config.ping_interval)),
                    false => self.last_activity.saturating_add(ms(config.ping_interval)),
                });
                match (idle, ping) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closing { .. } => Some(self.since.saturating_add(ms(config.close_timeout))),
            State::Closed { .. } => None,
        }
    }

    /// Acts on the deadline if it has passed: a handshake or close that
    /// took too long ends the connection; an idle one is closed (1001); a
    /// silent one is pinged, then closed if no frame comes back in time.
    pub(crate) fn handle_timeout(&mut self, ob: &mut Outbox) -> Expired {
        let now = ob.now;
        let config = ob.config.clone();
        if self.poll_timeout(&config).is_none_or(|due| due > now) {
            return Expired::Nothing;
        }
        match self.state {
            State::Handshake { .. } => {
                self.on_transport_closed(ob);
                Expired::Handshake
            }
            State::Closing { .. } => {
                self.on_transport_closed(ob);
                Expired::Closing
            }
            State::Open { ping_out, .. } => {
                let idle = !config.idle_timeout.is_zero()
                    && now >= self.last_activity.saturating_add(ms(config.idle_timeout));
                if idle {
                    self.close(CloseCode::GOING_AWAY, "idle timeout", ob);
                    Expired::Idle
                } else if ping_out {
                    self.close(CloseCode::GOING_AWAY, "ping timeout", ob);
                    Expired::Ping
                } else {
                    self.send_control(OpCode::Ping, Bytes::new(), ob);
                    if let State::Open { ping_out, .. } = &mut self.state {
                        *ping_out = true;
                    }
                    self.since = now;
                    Expired::Nothing
                }
            }
            State::Closed { .. } => Expired::Nothing,
        }
    }

    /// Gives back the buffers of a connection that is gone.
    pub(crate) fn free(self, pool: &mut IoPool) {
        if let Some(io) = self.output.io {
            pool.give(io);
        }
    }

    fn enter(&mut self, state: State, ob: &Outbox) {
        self.state = state;
        self.since = ob.now;
    }
}

/// Puts a connection on the ready list once per turn.
fn list(listed: &mut bool, id: Id, ob: &mut Outbox) {
    if !*listed {
        *listed = true;
        ob.ready.push(id.slot);
    }
}

fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(uringws_protocol::close::MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
