//! A connection's write side: what is queued, what is in flight, and the
//! buffers it holds only while busy ([`Io`], pooled per worker).

use super::{deflate::DeflateTag, layer::ByteLayer, Outbox};
use crate::stats::Counters;
use bytes::{Bytes, BytesMut};
use std::{collections::VecDeque, net::SocketAddr};
use uringws_protocol::encoder::Frame;
use uringws_ring::{Chunk, VectoredSend};

/// Largest reply copied into one buffer to go out as a single send
/// ([`Output::take_direct_reply`]); above it a vectored send's msghdr costs
/// less than the copy.
pub(crate) const DIRECT_COPY_MAX: usize = 1024;

/// What a connection holds only while it is doing something: bytes read
/// and not yet decoded, bytes queued, the vectored send between sends, and
/// the peer's address until the handshake is over. Idle connections hold
/// none; a worker keeps a few for reuse ([`IoPool`]).
pub(crate) struct Io {
    pub inbuf: BytesMut,
    pub out: VecDeque<Chunk>,
    /// `None` while the ring holds it for a send in flight.
    pub send: Option<Box<VectoredSend>>,
    /// The client's address: the socket's peer, or what a trusted proxy
    /// said of it.
    pub peer: Option<SocketAddr>,
    /// The trusted proxy the connection came through, when `peer` is what
    /// its PROXY header said.
    pub via: Option<SocketAddr>,
}

impl Io {
    fn is_idle(&self) -> bool {
        self.inbuf.is_empty()
            && self.out.is_empty()
            && self.send.as_ref().is_some_and(|s| s.is_empty())
    }
}

/// Spare [`Io`]s, so a busy connection's buffers and vectors are reused
/// rather than allocated per message.
#[derive(Default)]
#[allow(
    clippy::vec_box,
    reason = "an Io moves in and out of connections as a pointer"
)]
pub(crate) struct IoPool(Vec<Box<Io>>);

/// Spares kept; more would be memory held by a past burst.
const IO_POOL: usize = 256;
/// Queue slots a spare keeps.
const SPARE_QUEUE: usize = 64;

impl IoPool {
    pub(crate) fn take(&mut self) -> Box<Io> {
        self.0.pop().unwrap_or_else(|| {
            Box::new(Io {
                inbuf: BytesMut::new(),
                out: VecDeque::new(),
                send: Some(Box::default()),
                peer: None,
                via: None,
            })
        })
    }

    pub(crate) fn give(&mut self, mut io: Box<Io>) {
        if self.0.len() < IO_POOL && io.send.is_some() {
            // Payloads handed out share the read buffer's allocation: let
            // them own it rather than reuse it.
            io.inbuf = BytesMut::new();
            io.out.clear();
            // A burst's queue is not kept for the next user.
            if io.out.capacity() > SPARE_QUEUE {
                io.out = VecDeque::new();
            }
            if let Some(send) = io.send.as_mut() {
                send.clear();
            }
            io.peer = None;
            io.via = None;
            self.0.push(io);
        }
    }
}

/// The send in flight, if any: one per connection at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    Nothing,
    /// A lone frame waits on the worker's direct list, to go out as one
    /// `IORING_OP_SEND` of its bytes without the connection taking an
    /// [`Io`]: how a publication, an echo or an ack reaches an idle
    /// connection.
    DirectQueued,
    /// That send is in flight.
    Direct,
    /// A vectored send of the [`Io`]'s queue is in flight.
    Vectored,
}

/// The write side of one connection.
pub(crate) struct Output {
    /// Bytes queued or in flight: what backpressure is measured by. Four
    /// bytes, as every idle connection carries it: a message that would
    /// take it past 4 GiB is refused ([`Output::has_room`]).
    queued: u32,
    pub sending: Sending,
    /// Listed in [`Outbox::ready`](super::Outbox::ready) this turn.
    pub listed: bool,
    /// The connection's byte layer: here, where it fits the padding, not
    /// in a word of its own.
    pub layer: ByteLayer,
    /// What permessage-deflate agreed to, in the last byte of padding.
    pub deflate: DeflateTag,
    pub io: Option<Box<Io>>,
}

impl Output {
    pub(crate) fn new(io: Option<Box<Io>>) -> Output {
        Output {
            queued: 0,
            sending: Sending::Nothing,
            listed: false,
            layer: ByteLayer::Plain,
            deflate: DeflateTag::OFF,
            io,
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued as usize
    }

    /// What the queue costs in memory, as the backpressure limit is held
    /// to: its bytes, and each piece at least the size of its slot, so a
    /// flood of empty frames (pongs to empty pings) is bounded like bytes.
    pub(crate) fn load(&self) -> usize {
        let pieces = self.io.as_ref().map_or(0, |io| io.out.len());
        self.queued() + pieces * std::mem::size_of::<Chunk>()
    }

    /// Whether `len` more bytes fit the count of what is queued.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        u32::try_from(len).is_ok_and(|len| self.queued.checked_add(len).is_some())
    }

    /// Counts `len` bytes queued, here and in the worker's gauge; callers
    /// checked [`has_room`](Self::has_room).
    pub(crate) fn count(&mut self, len: usize, counters: &mut Counters) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let was = self.queued;
        self.queued = self.queued.saturating_add(len);
        counters.queued_bytes += u64::from(self.queued - was);
    }

    pub(crate) fn io(&mut self, pool: &mut IoPool) -> &mut Io {
        self.io.get_or_insert_with(|| pool.take())
    }

    pub(crate) fn push_frame(&mut self, frame: Frame, ob: &mut Outbox) {
        self.count(frame.wire_len(), &mut ob.counters);
        let out = &mut self.io(&mut ob.pool).out;
        // A frame header is at most 14 bytes: it always fits inline.
        out.extend(Chunk::inline(frame.header.as_slice()));
        if !frame.payload.is_empty() {
            out.push_back(Chunk::Shared(frame.payload));
        }
    }

    pub(crate) fn push_bytes(&mut self, bytes: Bytes, ob: &mut Outbox) {
        self.count(bytes.len(), &mut ob.counters);
        self.io(&mut ob.pool).out.push_back(Chunk::Shared(bytes));
    }

    /// Whether a frame can go out as a direct send now: nothing else is
    /// queued or in flight, and no [`Io`] is held.
    pub(crate) fn can_send_direct(&self) -> bool {
        self.io.is_none() && self.sending == Sending::Nothing
    }

    /// Whether nothing is left to write.
    pub(crate) fn flushed(&self) -> bool {
        self.sending == Sending::Nothing
            && self
                .io
                .as_ref()
                .is_none_or(|io| io.out.is_empty() && io.send.as_ref().is_none_or(|s| s.is_empty()))
    }

    /// When all that is queued is one small frame (an echo, an ack, a
    /// pong) and nothing is read ahead, moves it into one buffer for a
    /// direct send and gives the [`Io`] back: the send needs no msghdr, and
    /// a storm of replies does not hold an `Io` per connection until each
    /// send completes.
    pub(crate) fn take_direct_reply(&mut self, pool: &mut IoPool) -> Option<Bytes> {
        if self.sending != Sending::Nothing {
            return None;
        }
        let io = self.io.as_mut()?;
        let idle_send = io.send.as_ref().is_some_and(|s| s.is_empty());
        if !io.inbuf.is_empty() || !idle_send || io.out.is_empty() || io.out.len() > 2 {
            return None;
        }
        let total: usize = io.out.iter().map(Chunk::len).sum();
        if total > DIRECT_COPY_MAX {
            return None;
        }
        let frame = match (io.out.len(), io.out.front()) {
            (1, Some(Chunk::Shared(bytes))) => bytes.clone(),
            _ => {
                let mut frame = BytesMut::with_capacity(total);
                for chunk in &io.out {
                    frame.extend_from_slice(chunk.as_slice());
                }
                frame.freeze()
            }
        };
        io.out.clear();
        self.sending = Sending::DirectQueued;
        self.release_io(pool, false);
        Some(frame)
    }

    /// The vectored send to submit now, if anything is queued and no send
    /// is in flight or waiting.
    pub(crate) fn poll_vectored(&mut self) -> Option<Box<VectoredSend>> {
        if self.sending != Sending::Nothing {
            return None;
        }
        let io = self.io.as_mut()?;
        let mut send = io.send.take()?;
        send.fill(&mut io.out);
        if send.is_empty() {
            io.send = Some(send);
            return None;
        }
        self.sending = Sending::Vectored;
        Some(send)
    }

    /// A send completed with `sent` bytes (all of a direct frame, or part
    /// of a vectored one, whose buffer comes back in `returned`). `false`
    /// when the stream cannot go on (a direct send cut short). A TLS
    /// connection's queue was counted down as it was encrypted: its sends
    /// carry records, not the queued bytes.
    pub(crate) fn sent(
        &mut self,
        sent: usize,
        returned: Option<Box<VectoredSend>>,
        counters: &mut Counters,
    ) -> bool {
        let unqueue = if self.layer == ByteLayer::Plain {
            sent
        } else {
            0
        };
        let was = std::mem::replace(&mut self.sending, Sending::Nothing);
        if was == Sending::Direct {
            // MSG_WAITALL: all of the frame, or the connection failed part
            // way. The frame is what was queued minus what came after it.
            let after: usize = self
                .io
                .as_ref()
                .map_or(0, |io| io.out.iter().map(Chunk::len).sum());
            if sent + after != self.queued() {
                return false;
            }
        }
        self.unqueue(unqueue, counters);
        if let Some(mut send) = returned {
            send.advance(sent);
            match self.io.as_mut() {
                Some(io) => io.send = Some(send),
                // Only a torn-down connection lets go of its Io mid-send.
                None => drop(send),
            }
        }
        true
    }

    /// Counts `len` queued bytes as gone, here and in the worker's gauge.
    pub(crate) fn unqueue(&mut self, len: usize, counters: &mut Counters) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let was = self.queued;
        self.queued = self.queued.saturating_sub(len);
        counters.unqueue(was - self.queued);
    }

    /// Gives the [`Io`] back to the pool when it holds nothing, unless
    /// told to `keep` it (during the handshake it carries the peer's
    /// address; mid-frame, room for the rest of the frame).
    pub(crate) fn release_io(&mut self, pool: &mut IoPool, keep: bool) {
        let idle = !keep
            && self.sending != Sending::Vectored
            && self.io.as_ref().is_some_and(|io| io.is_idle());
        if idle {
            if let Some(io) = self.io.take() {
                pool.give(io);
            }
        }
    }

    /// Drops what was received and not read: nothing more will be.
    pub(crate) fn discard_input(&mut self) {
        if let Some(io) = self.io.as_mut() {
            io.inbuf.clear();
        }
    }

    /// Drops what is queued and read ahead (the transport is gone); the
    /// send in flight keeps its buffer until it completes.
    pub(crate) fn discard(&mut self, counters: &mut Counters) {
        if let Some(io) = self.io.as_mut() {
            io.out.clear();
            io.inbuf = BytesMut::new();
        }
        // What is in flight is no longer waited for either.
        counters.unqueue(std::mem::take(&mut self.queued));
    }
}
