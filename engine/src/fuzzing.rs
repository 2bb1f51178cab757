//! One connection's state machine with no ring and no socket, driven
//! through the same steps as the worker drives it, for the fuzz target in
//! `fuzz/`. Built only with the `fuzzing` feature and hidden from the
//! docs: it is not part of the engine's API and follows the worker.
//!
//! Each method of [`Harness`] is one path of the worker (`src/worker/`),
//! named in its doc, with the ring's part left to the caller: what the
//! worker would submit comes out of [`Harness::flush`], and its completion
//! goes in through [`Harness::complete`], in whatever order and with
//! whatever result the caller likes. Handler callbacks go to a [`Script`],
//! which gets the same [`Conn`] a handler gets.
//!
//! Publications are left out: they reach a connection as
//! [`Conn::send_encoded`] does, which a script can call.

use crate::{
    config::EngineConfig,
    conn::{Conn, Ctx},
    connection::{Connection, Id, Outbox, Tls},
    pubsub::{Publisher, TopicTable},
    remote::Mailbox,
};
use bytes::Bytes;
use std::sync::Arc;
use uringws_protocol::deflate::DeflateParams;
use uringws_ring::VectoredSend;

pub use crate::connection::{Event, Head, Report};

/// What each queued piece counts towards the backpressure limit beside its
/// bytes.
pub const PIECE: usize = std::mem::size_of::<uringws_ring::Chunk>();

const ID: Id = Id { slot: 0, gen: 1 };

/// The decision on a complete request head, as the worker's `decide`
/// makes it from the protocol's checks and the handler's answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Upgrade with this response (the 101), with permessage-deflate if
    /// the response agreed to it.
    Upgrade(Bytes, Option<DeflateParams>),
    /// Answer with this response and close.
    Respond(Bytes),
}

/// The handler's side of the connection.
pub trait Script {
    /// A complete request head.
    fn decide(&mut self, head: Head<'_>) -> Answer;
    /// `Handler::open`, right after the upgrade.
    fn open(&mut self, conn: &mut Conn<'_, ()>);
    /// One event for the handler. The worker hands events to the handler
    /// only once the connection is upgraded (before, it has no state for
    /// it); here every event comes through, so that the caller can check
    /// that none comes before.
    fn event(&mut self, conn: &mut Conn<'_, ()>, event: Event);
}

enum InFlight {
    Direct(Bytes),
    Vectored(Box<VectoredSend>),
}

impl InFlight {
    fn len(&self) -> usize {
        match self {
            InFlight::Direct(frame) => frame.len(),
            InFlight::Vectored(send) => send.len(),
        }
    }
}

/// One connection in a worker of its own.
pub struct Harness {
    conn: Connection,
    ctx: Ctx,
    /// The send the ring holds, if any: one per connection at a time.
    in_flight: Option<InFlight>,
    /// `teardown` ran: the worker has shut the socket and forgets the
    /// connection once nothing of it is in flight. Until then completions
    /// and commands still reach it, so they still can here.
    shut: bool,
}

impl Harness {
    /// A connection accepted at `now` (milliseconds on the worker's clock).
    pub fn new(config: EngineConfig, now: u64) -> Harness {
        Harness::accepted(config, None, now)
    }

    /// A connection accepted on a TLS listener with these settings.
    pub fn with_tls(
        config: EngineConfig,
        tls: Arc<rustls::ServerConfig>,
        now: u64,
    ) -> Result<Harness, rustls::Error> {
        let tls = Box::new(Tls::new(crate::connection::noting_server_names(&tls))?);
        Ok(Harness::accepted(config, Some(tls), now))
    }

    fn accepted(config: EngineConfig, tls: Option<Box<Tls>>, now: u64) -> Harness {
        let publisher = Publisher::new(Arc::from(Vec::new()), None);
        let mut out = Outbox::new(Arc::new(config));
        out.now = now;
        let peer = "192.0.2.1:40000".parse().ok();
        let conn = match tls {
            Some(tls) => Connection::with_tls(ID, peer, tls, &mut out),
            None => Connection::new(ID, peer, &mut out),
        };
        Harness {
            conn,
            ctx: Ctx {
                worker: 0,
                out,
                commands: Mailbox::new().expect("an eventfd").0,
                topics: TopicTable::new(0, publisher.interest(), 0),
                publisher,
                to_publish: Vec::new(),
            },
            in_flight: None,
            shut: false,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.ctx.out.config
    }

    pub fn now(&self) -> u64 {
        self.ctx.out.now
    }

    /// The worker's clock, read at the top of each loop turn. It never
    /// goes back.
    pub fn set_now(&mut self, now: u64) {
        self.ctx.out.now = self.ctx.out.now.max(now);
    }

    /// `on_recv` with bytes: a TLS connection's records decrypted into its
    /// buffer; otherwise, in the handshake, into the connection's buffer
    /// and on to the decision on the head; after it, read where they lie.
    pub fn receive(&mut self, data: &[u8], script: &mut impl Script) {
        self.ctx.out.counters.bytes_in += data.len() as u64;
        if self.conn.is_tls() {
            // The worker decrypts in the ring's buffer; a copy stands in.
            let mut data = data.to_vec();
            self.conn.receive_records(&mut data, &mut self.ctx.out);
            if self.conn.is_handshake() {
                self.handshake(script);
            }
            self.drive(script);
        } else if self.conn.is_handshake() {
            self.conn.receive(data, &mut self.ctx.out);
            self.handshake(script);
            self.drive(script);
        } else {
            // The worker unmasks in the ring's buffer; a copy stands in.
            let mut data = data.to_vec();
            self.drive_input(&mut &mut data[..], script);
        }
    }

    /// `on_recv` with 0: the peer shut its side.
    pub fn end_of_stream(&mut self, script: &mut impl Script) {
        self.conn.on_end_of_stream(&mut self.ctx.out);
        self.drive(script);
    }

    /// `teardown`, as after a receive error, or at the end of a forced
    /// shutdown.
    pub fn teardown(&mut self, script: &mut impl Script) {
        if std::mem::replace(&mut self.shut, true) {
            return;
        }
        self.conn.on_transport_closed(&mut self.ctx.out);
        while let Some(event) = self.conn.poll_event(&mut self.ctx.out) {
            self.dispatch(event, script);
        }
    }

    /// A command from a `ConnRef`: its send or close, done by `f` on the
    /// connection outside any callback. The worker [`drive`](Self::drive)s
    /// the connection right after; that is left to the caller, so that it
    /// can note what `f` did before callbacks do more.
    pub fn command<R>(&mut self, f: impl FnOnce(&mut Conn<'_, ()>) -> R) -> R {
        self.view(f)
    }

    /// `begin_shutdown` for this connection.
    pub fn shutdown(&mut self, script: &mut impl Script) {
        self.conn.shutdown(&mut self.ctx.out);
        self.drive(script);
    }

    /// `run_timers` at the current time: the connection's deadline is acted
    /// on while it is due, as the worker's heap would pop it again. Returns
    /// how many times it was, stopping at `max_rounds`: the worker would
    /// go on without end if a deadline never moved past the time.
    pub fn run_timers(&mut self, max_rounds: usize, script: &mut impl Script) -> usize {
        let mut rounds = 0;
        while rounds < max_rounds && self.poll_timeout().is_some_and(|at| at <= self.now()) {
            rounds += 1;
            self.conn.handle_timeout(&mut self.ctx.out);
            self.drive(script);
        }
        rounds
    }

    /// `wake_all`: drives the connection for events no input brought.
    pub fn wake(&mut self, script: &mut impl Script) {
        while !self.ctx.out.wake.is_empty() {
            for slot in std::mem::take(&mut self.ctx.out.wake) {
                assert_eq!(slot, ID.slot, "woke another connection");
                self.drive(script);
            }
        }
    }

    /// `flush`: the direct frames listed, then the vectored send of a
    /// connection on the ready list. Returns the bytes of the send in
    /// flight, if any (the one started now or an earlier one).
    ///
    /// Panics if the connection starts a second send while one is in
    /// flight: the worker relies on it not doing so.
    pub fn flush(&mut self) -> Option<usize> {
        for (slot, gen, frame) in std::mem::take(&mut self.ctx.out.direct) {
            assert_eq!(
                (slot, gen),
                (ID.slot, ID.gen),
                "a direct send for another connection"
            );
            if self.conn.start_direct() {
                assert!(
                    self.in_flight.is_none(),
                    "a direct send beside another send"
                );
                self.in_flight = Some(InFlight::Direct(frame));
            }
        }
        if std::mem::take(&mut self.ctx.out.ready).contains(&ID.slot) {
            if let Some(send) = self.conn.poll_transmit(&mut self.ctx.out) {
                assert!(
                    self.in_flight.is_none(),
                    "a vectored send beside another send"
                );
                self.in_flight = Some(InFlight::Vectored(send));
            }
        }
        self.in_flight()
    }

    /// Bytes of the send in flight.
    pub fn in_flight(&self) -> Option<usize> {
        self.in_flight.as_ref().map(InFlight::len)
    }

    /// `on_send`: the send in flight completed with `result`, the bytes
    /// written (at most [`in_flight`](Self::in_flight); less is a short
    /// write, which for a direct send means the connection failed) or a
    /// negated errno. Returns the bytes that went out.
    pub fn complete(&mut self, result: i32, script: &mut impl Script) -> Vec<u8> {
        let Some(in_flight) = self.in_flight.take() else {
            return Vec::new();
        };
        let sent = usize::try_from(result).unwrap_or(0);
        assert!(sent <= in_flight.len(), "more written than was submitted");
        let (wrote, returned) = match in_flight {
            InFlight::Direct(frame) => (frame[..sent].to_vec(), None),
            InFlight::Vectored(send) => {
                let mut wrote = send.to_vec();
                wrote.truncate(sent);
                (wrote, Some(send))
            }
        };
        if self.conn.on_sent(result, returned, &mut self.ctx.out) {
            self.drive(script);
        }
        wrote
    }

    pub fn is_handshake(&self) -> bool {
        self.conn.is_handshake()
    }

    pub fn is_open(&self) -> bool {
        self.conn.is_open()
    }

    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Whether the worker is to shut the transport now.
    pub fn is_done(&self) -> bool {
        self.conn.is_done(&self.ctx.out)
    }

    /// Whether [`teardown`](Self::teardown) ran.
    pub fn is_shut(&self) -> bool {
        self.shut
    }

    /// Bytes queued or in flight, as backpressure counts them.
    pub fn queued(&self) -> usize {
        self.conn.queued()
    }

    /// What the queue costs against the backpressure limit: its bytes and
    /// [`PIECE`] per piece.
    pub fn load(&self) -> usize {
        self.conn.load()
    }

    /// Bytes received and not yet decoded.
    pub fn buffered_input(&self) -> usize {
        self.conn.buffered_input()
    }

    /// The connection's next deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.conn
            .poll_timeout(&self.ctx.out.config, self.ctx.out.now)
    }

    /// Messages the handler was given.
    pub fn messages_in(&self) -> u64 {
        self.ctx.out.counters.messages_in
    }

    /// Bytes the completed sends wrote.
    pub fn bytes_out(&self) -> u64 {
        self.ctx.out.counters.bytes_out
    }

    fn handshake(&mut self, script: &mut impl Script) {
        let decided = self
            .conn
            .poll_head(&mut self.ctx.out, |head| script.decide(head));
        match decided {
            None => {}
            Some((Answer::Respond(response), _)) => self.conn.respond(response, &mut self.ctx.out),
            Some((Answer::Upgrade(response, deflate), head_len)) => {
                self.conn
                    .upgrade(response, head_len, deflate, &mut self.ctx.out);
                self.view(|conn| script.open(conn));
            }
        }
    }

    /// `drive`: after anything happened to the connection, its events go
    /// to the handler, and it is torn down if it is done.
    pub fn drive(&mut self, script: &mut impl Script) {
        self.drive_input(&mut &mut [][..], script);
    }

    /// `drive_input`: every event, then the connection's turn ends, and a
    /// connection that is done is torn down.
    fn drive_input(&mut self, input: &mut &mut [u8], script: &mut impl Script) {
        while let Some(event) = self.conn.poll_event_in(input, &mut self.ctx.out) {
            self.dispatch(event, script);
        }
        self.conn.after_input(&mut self.ctx.out);
        if self.conn.is_done(&self.ctx.out) {
            self.teardown(script);
        }
    }

    fn dispatch(&mut self, event: Event, script: &mut impl Script) {
        self.view(|conn| script.event(conn, event));
    }

    fn view<R>(&mut self, f: impl FnOnce(&mut Conn<'_, ()>) -> R) -> R {
        let mut state = ();
        let mut conn = Conn {
            conn: &mut self.conn,
            state: &mut state,
            ctx: &mut self.ctx,
        };
        f(&mut conn)
    }
}
