//! A connection's state on its worker, its write queue, and [`Conn`], the
//! view handlers get of it.

use crate::{
    config::{BackpressurePolicy, EngineConfig},
    pubsub::{Publication, Publisher, TopicTable},
    remote::{Command, ConnRef},
    ring::Socket,
    stats::Counters,
};
use bytes::{Bytes, BytesMut};
use std::{collections::VecDeque, net::SocketAddr};
use tokio::sync::mpsc::UnboundedSender;
use uringws_protocol::{
    encoder::Frame, frame::EncodedHeader, session::CloseState, CloseCode, OpCode, Session,
    Utf8Bytes,
};

/// What became of a message handed to [`Conn::send_text`] and friends.
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

/// One piece of the write queue: an inline frame header or shared bytes.
pub(crate) enum Chunk {
    Header(EncodedHeader),
    Data(Bytes),
}

impl Chunk {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Header(h) => h.as_slice(),
            Chunk::Data(b) => b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the HTTP request head.
    Handshake,
    /// Upgraded.
    Open,
    /// Our close frame (or a final HTTP response) is queued or sent; the
    /// transport is shut once it is written and, for a close we started,
    /// the peer answered or the close timeout passed.
    Closing,
    /// The fd is being closed; the slot is freed when no operation of it
    /// is in flight.
    Dead,
}

pub(crate) mod flags {
    pub const RECV_ARMED: u16 = 1;
    pub const SENDING: u16 = 1 << 1;
    pub const DIRTY: u16 = 1 << 2;
    pub const PING_OUT: u16 = 1 << 3;
    pub const WANTS_DRAIN: u16 = 1 << 4;
    pub const NOTIFIED: u16 = 1 << 5;
    pub const CLOSING_FD: u16 = 1 << 6;
    /// Shut the transport as soon as the queue is written (HTTP answers,
    /// close replies).
    pub const SHUT_AFTER_FLUSH: u16 = 1 << 7;
    pub const REARM: u16 = 1 << 8;
    /// The handler asked to close; the close frame follows the callback.
    pub const CLOSE_REQUESTED: u16 = 1 << 9;
    /// `100 Continue` went out for a request body.
    pub const CONTINUE_SENT: u16 = 1 << 10;
    /// A lone encoded frame waits in `Ctx::direct` to be sent as it is,
    /// without the connection taking an [`Io`](super::Io).
    pub const DIRECT: u16 = 1 << 11;
    /// The send in flight is such a frame (`IORING_OP_SEND` of its bytes).
    pub const DIRECT_SENDING: u16 = 1 << 12;
}

/// Vectored-send state that must stay put while the kernel reads it.
pub(crate) struct SendBuf {
    chunks: Vec<Chunk>,
    /// Bytes of `chunks[0]` already sent.
    offset: usize,
    iovecs: Vec<libc::iovec>,
    msg: libc::msghdr,
}

/// Largest frame copied into one buffer to be sent directly
/// ([`Connection::make_direct`]); above it the vectored send's msghdr costs
/// less than the copy.
const DIRECT_COPY_MAX: usize = 1024;

/// Most pieces handed to one sendmsg; IOV_MAX is 1024.
const MAX_IOVECS: usize = 64;

impl SendBuf {
    pub(crate) fn new() -> SendBuf {
        SendBuf {
            chunks: Vec::new(),
            offset: 0,
            iovecs: Vec::new(),
            // SAFETY: msghdr is a plain C struct for which all-zero is the
            // empty message.
            msg: unsafe { std::mem::zeroed() },
        }
    }

    /// Moves pieces from `queue` into this buffer, up to the iovec limit.
    pub(crate) fn fill(&mut self, queue: &mut VecDeque<Chunk>) {
        while self.chunks.len() < MAX_IOVECS {
            match queue.pop_front() {
                Some(chunk) if chunk.as_slice().is_empty() => {}
                Some(chunk) => self.chunks.push(chunk),
                None => break,
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Points the message at the unsent bytes and returns it for the kernel.
    /// The pointers stay valid until `self` is changed or dropped.
    pub(crate) fn prepare(&mut self) -> *const libc::msghdr {
        self.iovecs.clear();
        for (i, chunk) in self.chunks.iter().enumerate() {
            let bytes = chunk.as_slice();
            let bytes = if i == 0 { &bytes[self.offset..] } else { bytes };
            self.iovecs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
        }
        self.msg.msg_iov = self.iovecs.as_mut_ptr();
        self.msg.msg_iovlen = self.iovecs.len() as _;
        &self.msg
    }

    /// Accounts `sent` bytes.
    pub(crate) fn advance(&mut self, mut sent: usize) {
        let mut done = 0;
        for chunk in &self.chunks {
            let left = chunk.as_slice().len() - self.offset;
            if sent < left {
                self.offset += sent;
                break;
            }
            sent -= left;
            self.offset = 0;
            done += 1;
        }
        self.chunks.drain(..done);
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.iovecs.clear();
        self.offset = 0;
    }
}

/// What a connection holds only while it is doing something: bytes read
/// and not yet decoded, bytes queued, the send in flight, and the peer's
/// address until the handshake is over. Idle connections hold none; a
/// worker keeps a few of these for reuse ([`IoPool`]).
pub(crate) struct Io {
    pub inbuf: BytesMut,
    pub out: VecDeque<Chunk>,
    /// Must stay put while SENDING: the kernel reads it.
    pub send: SendBuf,
    pub peer: Option<SocketAddr>,
}

impl Io {
    fn is_idle(&self) -> bool {
        self.inbuf.is_empty() && self.out.is_empty() && self.send.is_empty()
    }
}

/// Spare [`Io`]s, so a busy connection's buffers and vectors are reused
/// rather than allocated per message.
#[derive(Default)]
#[allow(
    clippy::vec_box,
    reason = "an Io moves into a connection while the kernel reads it"
)]
pub(crate) struct IoPool(Vec<Box<Io>>);

/// Spares kept; more would be memory held by a past burst.
const IO_POOL: usize = 256;

impl IoPool {
    pub(crate) fn take(&mut self) -> Box<Io> {
        self.0.pop().unwrap_or_else(|| {
            Box::new(Io {
                inbuf: BytesMut::new(),
                out: VecDeque::new(),
                send: SendBuf::new(),
                peer: None,
            })
        })
    }

    pub(crate) fn give(&mut self, mut io: Box<Io>) {
        if self.0.len() < IO_POOL {
            // Payloads handed out share the read buffer's allocation: let
            // them own it rather than reuse it.
            io.inbuf = BytesMut::new();
            io.out.clear();
            io.send.clear();
            io.peer = None;
            self.0.push(io);
        }
    }
}

pub(crate) struct Connection<S> {
    pub socket: Socket,
    pub gen: u32,
    pub flags: u16,
    pub phase: Phase,
    /// Bytes queued or in flight.
    pub queued: usize,
    pub io: Option<Box<Io>>,
    pub session: Session,
    /// When the current phase began (in `Open`: when the last ping went
    /// out), in worker milliseconds.
    pub since: u64,
    pub last_activity: u64,
    /// The deadline this connection has in the timer heap (0: none).
    pub timer_at: u64,
    pub state: Option<S>,
}

impl<S> Connection<S> {
    pub(crate) fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub(crate) fn set(&mut self, flag: u16) {
        self.flags |= flag;
    }

    pub(crate) fn unset(&mut self, flag: u16) {
        self.flags &= !flag;
    }

    pub(crate) fn io(&mut self, pool: &mut IoPool) -> &mut Io {
        self.io.get_or_insert_with(|| pool.take())
    }

    pub(crate) fn push_frame(&mut self, frame: Frame, pool: &mut IoPool) {
        self.queued += frame.wire_len();
        let out = &mut self.io(pool).out;
        out.push_back(Chunk::Header(frame.header));
        if !frame.payload.is_empty() {
            out.push_back(Chunk::Data(frame.payload));
        }
    }

    pub(crate) fn push_bytes(&mut self, bytes: Bytes, pool: &mut IoPool) {
        self.queued += bytes.len();
        self.io(pool).out.push_back(Chunk::Data(bytes));
    }

    /// Whether nothing is left to write.
    pub(crate) fn flushed(&self) -> bool {
        !self.has(flags::SENDING | flags::DIRECT)
            && self
                .io
                .as_ref()
                .is_none_or(|io| io.out.is_empty() && io.send.is_empty())
    }

    /// When all that is queued is one small frame (an echo, an ack, a
    /// pong), moves it into one buffer for a direct send and gives the I/O
    /// state back: the send needs no msghdr, and a storm of replies does
    /// not hold an [`Io`] per connection until each send completes.
    pub(crate) fn make_direct(&mut self, slot: u32, ctx: &mut Ctx) {
        if self.phase != Phase::Open || self.has(flags::SENDING | flags::DIRECT) {
            return;
        }
        let Some(io) = self.io.as_mut() else {
            return;
        };
        if !io.inbuf.is_empty() || !io.send.is_empty() || io.out.is_empty() || io.out.len() > 2 {
            return;
        }
        let total: usize = io.out.iter().map(|chunk| chunk.as_slice().len()).sum();
        if total > DIRECT_COPY_MAX {
            return;
        }
        let frame = match (io.out.len(), io.out.front()) {
            (1, Some(Chunk::Data(bytes))) => bytes.clone(),
            _ => {
                let mut frame = BytesMut::with_capacity(total);
                for chunk in &io.out {
                    frame.extend_from_slice(chunk.as_slice());
                }
                frame.freeze()
            }
        };
        io.out.clear();
        self.queue_direct(slot, frame, ctx);
        self.release_io(&mut ctx.pool);
    }

    /// Puts an already counted frame on the worker's direct-send list; it
    /// goes out before anything queued after it.
    fn queue_direct(&mut self, slot: u32, frame: Bytes, ctx: &mut Ctx) {
        self.set(flags::DIRECT);
        ctx.direct.push((slot, self.gen, frame));
    }

    /// Gives the I/O state back to the pool when the connection is idle.
    pub(crate) fn release_io(&mut self, pool: &mut IoPool) {
        let idle = !self.has(flags::SENDING)
            && self.phase != Phase::Handshake
            && self.io.as_ref().is_some_and(|io| io.is_idle());
        if idle {
            if let Some(io) = self.io.take() {
                pool.give(io);
            }
        }
    }
}

/// What a handler's sends need from the worker besides the connection.
pub(crate) struct Ctx {
    pub worker: usize,
    pub pool: IoPool,
    pub dirty: Vec<u32>,
    /// Lone encoded frames to send as they are: (slot, generation, frame).
    /// A publication reaches most subscribers this way, so a fan-out to
    /// idle connections allocates nothing per subscriber.
    pub direct: Vec<(u32, u32, Bytes)>,
    pub config: std::sync::Arc<EngineConfig>,
    pub commands: UnboundedSender<Command>,
    pub now: u64,
    /// Connections whose close the handler asked for, to start after the
    /// callback returns.
    pub to_close: Vec<(u32, CloseCode, Utf8Bytes)>,
    pub topics: TopicTable,
    pub publisher: Publisher,
    /// Publications for this worker's subscribers, delivered after the
    /// callback returns (a callback holds only its own connection): topic,
    /// frame, and the publishing slot when it wants none.
    pub to_publish: Vec<(Box<str>, Bytes, Option<u32>)>,
    pub counters: Counters,
}

impl Ctx {
    /// Sends to the other interested workers now and queues the local
    /// fan-out; both keep the publisher's order.
    pub(crate) fn publish(&mut self, topic: &str, message: &Publication, skip: Option<u32>) {
        self.publisher
            .publish_except(topic, message, Some(self.worker));
        if self.topics.has(topic) {
            self.to_publish
                .push((topic.into(), message.frame().clone(), skip));
        }
    }

    pub(crate) fn mark_dirty<S>(&mut self, slot: u32, conn: &mut Connection<S>) {
        if !conn.has(flags::DIRTY) {
            conn.set(flags::DIRTY);
            self.dirty.push(slot);
        }
    }
}

/// A connection as a handler sees it during a callback.
pub struct Conn<'a, S> {
    pub(crate) slot: u32,
    pub(crate) conn: &'a mut Connection<S>,
    pub(crate) ctx: &'a mut Ctx,
}

impl<'a, S> Conn<'a, S> {
    /// The connection's state. Present from `open` to `close` included.
    pub fn state(&mut self) -> &mut S {
        self.conn
            .state
            .as_mut()
            .expect("handler callbacks run only on upgraded connections")
    }

    /// An id unique on this worker while the connection lives.
    pub fn id(&self) -> (usize, u32, u32) {
        (self.ctx.worker, self.slot, self.conn.gen)
    }

    /// Bytes queued for this connection and not yet written.
    pub fn buffered(&self) -> usize {
        self.conn.queued
    }

    /// A handle that reaches this connection from any thread or task.
    pub fn handle(&self) -> ConnRef {
        ConnRef::new(
            self.ctx.worker,
            self.slot,
            self.conn.gen,
            self.ctx.commands.clone(),
        )
    }

    pub fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> SendStatus {
        self.send(OpCode::Text, text.into().into_bytes())
    }

    /// Subscribes this connection to `topic`; false if it already was. Once
    /// this returns, every later publication to `topic`, from any worker or
    /// thread, reaches it. Subscriptions end with the connection.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        self.ctx.topics.subscribe(self.slot, topic)
    }

    /// False if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.ctx.topics.unsubscribe(self.slot, topic)
    }

    /// Topics this connection is subscribed to.
    pub fn subscriptions(&self) -> usize {
        self.ctx.topics.count(self.slot)
    }

    /// Publishes to every subscriber of `topic`, this connection included
    /// if it is one. Subscribers over their backpressure limit miss it (or
    /// are closed, per [`BackpressurePolicy`]).
    pub fn publish(&mut self, topic: &str, message: &Publication) {
        self.ctx.publish(topic, message, None);
    }

    /// Publishes to every subscriber of `topic` but this connection.
    pub fn publish_to_others(&mut self, topic: &str, message: &Publication) {
        self.ctx.publish(topic, message, Some(self.slot));
    }

    /// A handle that publishes from any thread or task.
    pub fn publisher(&self) -> Publisher {
        self.ctx.publisher.clone()
    }

    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> SendStatus {
        self.send(OpCode::Binary, data.into())
    }

    /// A ping; the payload is cut to 125 bytes.
    pub fn ping(&mut self, payload: impl Into<Bytes>) -> SendStatus {
        let mut payload: Bytes = payload.into();
        payload.truncate(125);
        self.send(OpCode::Ping, payload)
    }

    /// A frame encoded once for many connections
    /// ([`encode_shared`](uringws_protocol::encoder::encode_shared)).
    pub fn send_encoded(&mut self, frame: Bytes) -> SendStatus {
        send_encoded(self.conn, self.ctx, self.slot, frame)
    }

    /// Starts the close handshake with `code` and `reason` (cut to fit).
    /// Data queued before is written first.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        let reason = truncate_reason(reason);
        // Later sends in this callback must not overtake the close frame.
        self.conn.set(flags::CLOSE_REQUESTED);
        self.ctx
            .to_close
            .push((self.slot, code, Utf8Bytes::from(reason)));
    }

    fn send(&mut self, opcode: OpCode, payload: Bytes) -> SendStatus {
        send_frame(self.conn, self.ctx, self.slot, opcode, payload)
    }
}

/// Queues one frame, applying the backpressure policy.
pub(crate) fn send_frame<S>(
    conn: &mut Connection<S>,
    ctx: &mut Ctx,
    slot: u32,
    opcode: OpCode,
    payload: Bytes,
) -> SendStatus {
    let status = match admit(conn, ctx, slot) {
        Ok(status) => status,
        Err(status) => return status,
    };
    match conn.session.encode(opcode, true, payload) {
        Ok(frame) => {
            if !opcode.is_control() {
                ctx.counters.messages_out += 1;
            }
            conn.push_frame(frame, &mut ctx.pool);
            ctx.mark_dirty(slot, conn);
            status
        }
        Err(_) => SendStatus::Dropped,
    }
}

/// Queues a frame that is already encoded.
pub(crate) fn send_encoded<S>(
    conn: &mut Connection<S>,
    ctx: &mut Ctx,
    slot: u32,
    frame: Bytes,
) -> SendStatus {
    match admit(conn, ctx, slot) {
        Ok(status) => {
            ctx.counters.messages_out += 1;
            if conn.io.is_none() && !conn.has(flags::SENDING | flags::DIRECT) {
                conn.queued += frame.len();
                conn.queue_direct(slot, frame, ctx);
            } else {
                conn.push_bytes(frame, &mut ctx.pool);
                ctx.mark_dirty(slot, conn);
            }
            status
        }
        Err(status) => status,
    }
}

/// Whether a new message may be queued, and with what status.
fn admit<S>(conn: &mut Connection<S>, ctx: &mut Ctx, slot: u32) -> Result<SendStatus, SendStatus> {
    if conn.phase != Phase::Open
        || conn.has(flags::CLOSE_REQUESTED)
        || matches!(
            conn.session.state(),
            CloseState::CloseSent | CloseState::Closed
        )
    {
        return Err(SendStatus::Dropped);
    }
    let limit = ctx.config.backpressure_limit;
    if conn.queued >= limit {
        conn.set(flags::WANTS_DRAIN);
        ctx.counters.backpressure_drops += 1;
        if ctx.config.backpressure_policy == BackpressurePolicy::Close {
            ctx.counters.backpressure_closes += 1;
            // Once: later sends are refused as for any close requested.
            conn.set(flags::CLOSE_REQUESTED);
            ctx.to_close.push((
                slot,
                CloseCode::POLICY_VIOLATION,
                Utf8Bytes::from_static("backpressure limit"),
            ));
        }
        return Err(SendStatus::Dropped);
    }
    if conn.queued == 0 {
        Ok(SendStatus::Sent)
    } else {
        conn.set(flags::WANTS_DRAIN);
        Ok(SendStatus::Queued)
    }
}

fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(uringws_protocol::close::MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
