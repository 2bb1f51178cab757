//! One connection as a sans-IO state machine: bytes received, the time,
//! and the handler's sends and closes go in; bytes to send
//! ([`Connection::poll_transmit`]), events for the handler
//! ([`Connection::poll_event`]) and the next deadline
//! ([`Connection::poll_timeout`]) come out. It owns no socket and calls no
//! handler, so it is tested without either (`tests/`); the worker only
//! moves bytes between it and the ring.

mod deflate;
mod input;
mod layer;
mod output;
mod proxy_header;
mod records;
mod send;
#[cfg(test)]
mod tests;
mod time;
use time::Stamp;
mod tls;
mod transport;

pub(crate) use deflate::{Deflating, Published};
pub(crate) use input::Incoming;
pub(crate) use output::IoPool;
use output::Sending;
pub(crate) use proxy_header::ProxyRead;
pub(crate) use tls::{noting_server_names, Tls};

use crate::{
    config::{BackpressurePolicy, EngineConfig},
    handler::Message,
    stats::Counters,
};
use bytes::{Bytes, BytesMut};
use layer::ByteLayer;
use output::Output;
use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};
use uringws_protocol::{
    deflate::DeflateParams,
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
    /// Reading the HTTP request head (and a plain request's body); first,
    /// from a trusted proxy, maybe a PROXY protocol header.
    Handshake {
        continue_sent: bool,
        proxy_header: bool,
    },
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
        /// A report waits in [`Outbox::reports`].
        report: bool,
    },
    /// The transport is shut or to be shut now.
    Closed { report: bool },
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
/// exactly once, when the connection leaves [`State::Open`]. Kept in the
/// [`Outbox`] until then rather than in the connection: it lives for a
/// moment, and every idle connection would carry the room for it.
///
/// This and [`Event`] and [`Head`] are `pub` only for the `fuzzing`
/// module to hand on; the module they are in is private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub code: CloseCode,
    pub reason: Utf8Bytes,
}

/// What the handler is to hear of, one at a time.
#[derive(Debug)]
pub enum Event {
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
pub enum Head<'a> {
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
    /// Where small frames for [`direct`](Self::direct) are copied whole:
    /// one allocation for many echoes and acks instead of one each.
    arena: BytesMut,
    /// Connections with an event for the handler that no input brought
    /// (a backpressure drop or close while another connection's callback
    /// ran).
    pub wake: Vec<u32>,
    /// Close reports not yet handed to the handler, by slot.
    pub reports: HashMap<u32, Report>,
    pub counters: Counters,
    /// The TLS state of each TLS connection, by slot (see `layer`).
    pub tls: HashMap<u32, Box<Tls>>,
    /// permessage-deflate's streams.
    pub deflate: Deflating,
    /// Where queued frames are gathered into a record's plaintext.
    scratch: Vec<u8>,
    /// TLS connections holding expanded keys, by slot, and when they are
    /// next swept ([`sweep_keys`](Self::sweep_keys)).
    keyed: Vec<u32>,
    keys_due: u64,
    sweeps: u32,
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
            arena: BytesMut::new(),
            wake: Vec::new(),
            reports: HashMap::new(),
            counters: Counters::default(),
            tls: HashMap::new(),
            deflate: Deflating::new(),
            scratch: Vec::new(),
            keyed: Vec::new(),
            keys_due: 0,
            sweeps: 0,
            now: 0,
        }
    }

    /// A TLS connection expanded its keys: it is swept from now on.
    fn list_keys(&mut self, slot: u32) {
        if self.keyed.is_empty() {
            self.keys_due = self.now + KEY_SWEEP_MS;
        }
        self.keyed.push(slot);
        self.counters.tls_keyed = self.keyed.len() as u64;
    }

    /// When the next key sweep is due, if a connection holds keys.
    pub(crate) fn keys_due(&self) -> Option<u64> {
        (!self.keyed.is_empty()).then_some(self.keys_due)
    }

    /// Drops the expanded keys of TLS connections that used none since the
    /// last sweep: 1.1 KB each, made again in 0.2 µs when a record comes.
    /// The sweep walks only the connections holding keys, so a million
    /// idle ones cost it nothing.
    pub(crate) fn sweep_keys(&mut self) {
        if self.keys_due().is_none_or(|due| due > self.now) {
            return;
        }
        self.sweeps = self.sweeps.wrapping_add(1);
        let (tls, epoch) = (&mut self.tls, self.sweeps);
        self.keyed
            .retain(|slot| tls.get_mut(slot).is_some_and(|tls| tls.age(epoch)));
        self.keys_due = self.now + KEY_SWEEP_MS;
        self.counters.tls_keyed = self.keyed.len() as u64;
    }

    /// `frame` in one piece, for a single send of its bytes. Blocks are
    /// small: a send that stalls (a peer that does not read) keeps its
    /// whole block, and `reserve` takes a block back once no frame holds it.
    pub(crate) fn contiguous(&mut self, frame: &uringws_protocol::encoder::Frame) -> Bytes {
        const BLOCK: usize = 4 << 10;
        let len = frame.wire_len();
        if self.arena.capacity() - self.arena.len() < len {
            self.arena.reserve(BLOCK.max(len));
        }
        self.arena.extend_from_slice(frame.header.as_slice());
        self.arena.extend_from_slice(&frame.payload);
        self.arena.split().freeze()
    }
}

/// How often TLS connections that went quiet drop their expanded keys: a
/// connection storm's keys are gone soon after (each second, the peak RSS
/// of 19,000 wss connections was 1.9–2.0 KB each; every 250 ms, 1.5 KB).
const KEY_SWEEP_MS: u64 = 250;

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
    since: Stamp,
    last_activity: Stamp,
}

impl Connection {
    /// A connection just accepted; `peer` is kept until the handshake ends.
    pub(crate) fn new(id: Id, peer: Option<SocketAddr>, ob: &mut Outbox) -> Connection {
        let io = peer.map(|peer| {
            let mut io = ob.pool.take();
            io.peer = Some(peer);
            io
        });
        let proxy_header = peer.is_some_and(|p| ob.config.trusted_proxies.trusts(p.ip()));
        Connection {
            id,
            state: State::Handshake {
                continue_sent: false,
                proxy_header,
            },
            // RSV1 only once permessage-deflate is agreed (`upgrade`),
            // whatever the settings say.
            session: Session::new(
                Role::Server,
                uringws_protocol::DecoderConfig {
                    allow_rsv1: false,
                    ..ob.config.decoder
                },
            ),
            output: Output::new(io),
            since: Stamp::at(ob.now),
            last_activity: Stamp::at(ob.now),
        }
    }

    /// A connection accepted on a TLS listener: the TLS handshake comes
    /// first, and counts against the handshake timeout.
    pub(crate) fn with_tls(
        id: Id,
        peer: Option<SocketAddr>,
        tls: Box<Tls>,
        ob: &mut Outbox,
    ) -> Connection {
        let mut conn = Connection::new(id, peer, ob);
        conn.output.layer = ByteLayer::Tls;
        ob.tls.insert(id.slot, tls);
        conn
    }

    fn layer(&self) -> ByteLayer {
        self.output.layer
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.layer() == ByteLayer::Tls
    }

    /// The SNI name a TLS client asked for.
    pub(crate) fn server_name<'a>(&self, ob: &'a Outbox) -> Option<&'a str> {
        ob.tls.get(&self.id.slot)?.server_name()
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// What the queue costs against the backpressure limit.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn load(&self) -> usize {
        self.output.load()
    }

    /// Bytes received and not yet decoded.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn buffered_input(&self) -> usize {
        self.output.io.as_ref().map_or(0, |io| io.inbuf.len())
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
        self.output.queued()
    }

    /// The client's address, as the socket or a trusted proxy's PROXY
    /// header says.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.output.io.as_ref().and_then(|io| io.peer)
    }

    /// The trusted proxy whose PROXY header gave [`peer`](Self::peer).
    pub(crate) fn via(&self) -> Option<SocketAddr> {
        self.output.io.as_ref().and_then(|io| io.via)
    }

    /// Gives back the buffers of a connection that is gone.
    pub(crate) fn free(mut self, ob: &mut Outbox) {
        // Whatever path ended it, its queue leaves the worker's gauge.
        self.output.discard(&mut ob.counters);
        if self.is_tls() {
            ob.tls.remove(&self.id.slot);
        }
        ob.deflate.close(self.id.slot, self.output.deflate);
        if let Some(io) = self.output.io {
            ob.pool.give(io);
        }
        // Taken before a connection is freed; this keeps a slot's next
        // connection from inheriting one in any case.
        ob.reports.remove(&self.id.slot);
    }

    /// Leaves [`State::Open`] with `report` for the handler.
    fn report(&mut self, report: Report, ob: &mut Outbox) {
        ob.reports.insert(self.id.slot, report);
    }

    /// An open connection that can exchange no close frame any more: the
    /// handler hears 1006 with `reason`, and the connection closes without
    /// waiting for the peer.
    fn lose(&mut self, reason: Utf8Bytes, ob: &mut Outbox) {
        let code = CloseCode::ABNORMAL;
        self.report(Report { code, reason }, ob);
        self.enter(
            State::Closing {
                wait_peer: false,
                report: true,
            },
            ob,
        );
    }

    /// The report waiting for this connection, if its state says one does.
    fn take_report(&mut self, ob: &mut Outbox) -> Option<Event> {
        let (State::Closing { report, .. } | State::Closed { report }) = &mut self.state else {
            return None;
        };
        if !std::mem::take(report) {
            return None;
        }
        ob.reports.remove(&self.id.slot).map(Event::Closed)
    }

    fn enter(&mut self, state: State, ob: &Outbox) {
        self.state = state;
        self.since = Stamp::at(ob.now);
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
