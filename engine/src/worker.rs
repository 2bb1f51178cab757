//! One worker: a thread pinned to a core, owning its ring, its listeners,
//! its connections and its handler. Nothing here is shared with other
//! workers; they reach it only through its command channel.

use crate::{
    config::EngineConfig,
    conn::{flags, send_encoded, send_frame, Conn, Connection, Ctx, Io, IoPool, Phase, SendStatus},
    handler::{Handler, Peer},
    pubsub::{Publisher, TopicTable},
    remote::Command,
    ring::{Completion, Ring, RingConfig, Socket},
    stats::{Counters, RequestOutcome, WorkerStats},
    token::{Kind, Token},
};
use bytes::{Buf, BytesMut};
use slab::Slab;
use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    io,
    net::SocketAddr,
    os::fd::AsRawFd,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use uringws_protocol::{
    handshake::{error_response, error_response_for, Request},
    session::CloseState,
    CloseCode, Message, OpCode, Role, Session,
};

/// Completions taken off the queue per batch.
const BATCH: usize = 512;
/// Longest the loop runs without letting other tasks of the worker run.
const YIELD_EVERY_MS: u64 = 2;
/// How long to wait before accepting again when the file table is full.
const ACCEPT_BACKOFF_MS: u64 = 100;
/// Single-shot accepts kept in flight per listener when peer addresses are
/// wanted: enough that a connection storm never waits for a re-arm.
const ACCEPTS_PER_LISTENER: u32 = 8;

pub(crate) struct Worker<H: Handler> {
    id: usize,
    ring: Ring,
    conns: Slab<Connection<H::State>>,
    handler: H,
    listeners: Vec<socket2::Socket>,
    accepting: bool,
    accept_retry_at: Option<u64>,
    /// Accepts that stopped on a full file table, re-armed after a pause.
    accepts_paused: Vec<Token>,
    ctx: Ctx,
    rx: UnboundedReceiver<Command>,
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    rearm: Vec<u32>,
    next_gen: u32,
    open: usize,
    started: Instant,
    shutdown_at: Option<u64>,
    forced: bool,
    stats: Arc<WorkerStats>,
}

/// The answer to a complete request head.
enum Outcome<S> {
    /// A plain request whose body is still coming.
    Wait { expects: bool },
    /// The response to a plain request.
    Answer(bytes::Bytes),
    /// The response refusing an upgrade (or an unparsable head).
    Refuse(bytes::Bytes),
    Upgrade {
        response: bytes::Bytes,
        state: S,
        head_len: usize,
    },
}

impl<H: Handler> Worker<H> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        handler: H,
        listeners: Vec<socket2::Socket>,
        config: Arc<EngineConfig>,
        (commands, rx): (UnboundedSender<Command>, UnboundedReceiver<Command>),
        publisher: Publisher,
        stats: Arc<WorkerStats>,
    ) -> io::Result<Self> {
        // Room for every allowed connection plus some still in their
        // handshake or closing; the kernel caps it at the open-files limit.
        let files = config
            .max_connections_per_worker
            .saturating_add(1024)
            .min(u32::MAX as usize) as u32;
        let ring = Ring::new(&RingConfig {
            entries: config.ring_entries,
            recv_buffers: config.recv_buffers,
            recv_buffer_size: config.recv_buffer_size,
            files,
        })?;
        tracing::debug!(
            worker = id,
            files = ring.files(),
            connection_bytes = std::mem::size_of::<Connection<H::State>>(),
            "ring ready"
        );
        // Reserved, not touched: pages become resident only as slots fill,
        // and the slab never moves (a doubling copy would leave the old
        // block resident in the allocator).
        let conns = Slab::with_capacity(ring.files() as usize);
        Ok(Worker {
            id,
            ring,
            conns,
            handler,
            listeners,
            accepting: true,
            accept_retry_at: None,
            accepts_paused: Vec::new(),
            ctx: Ctx {
                worker: id,
                pool: IoPool::default(),
                dirty: Vec::new(),
                direct: Vec::new(),
                config,
                commands,
                now: 0,
                to_close: Vec::new(),
                topics: TopicTable::new(id, publisher.interest()),
                publisher,
                to_publish: Vec::new(),
                counters: Counters::default(),
            },
            rx,
            timers: BinaryHeap::new(),
            rearm: Vec::new(),
            next_gen: 0,
            open: 0,
            started: Instant::now(),
            shutdown_at: None,
            forced: false,
            stats,
        })
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn config(&self) -> &EngineConfig {
        &self.ctx.config
    }

    pub(crate) async fn run(mut self) -> io::Result<()> {
        let ring_fd = self.ring.watch()?;
        self.arm_accepts()?;
        let mut completions = Vec::with_capacity(BATCH);
        let mut last_wait = 0;
        loop {
            self.ctx.now = self.now();
            // Before the submit: a forced end of a shutdown queues cancels
            // and closes that must go out now, not after the next wake.
            if self.finished() {
                break;
            }
            self.flush()?;
            self.ring.submit()?;
            if !self.ring.has_completions() {
                self.trim();
                let deadline = self
                    .next_deadline()
                    .map(|ms| self.started + Duration::from_millis(ms));
                // Woken by completions, a command from another thread, or
                // the next deadline.
                let command = tokio::select! {
                    biased;
                    guard = ring_fd.readable() => {
                        guard?.clear_ready();
                        None
                    }
                    Some(command) = self.rx.recv() => Some(command),
                    _ = sleep_until(deadline) => None,
                };
                self.ctx.now = self.now();
                if let Some(command) = command {
                    self.command(command);
                }
                last_wait = self.ctx.now;
            } else if self.ctx.now >= last_wait + YIELD_EVERY_MS {
                // Under constant load the loop never waits: let the
                // handlers' own tasks (spawn_local) run now and then. Not
                // every turn: a yield costs tokio a poll of its driver.
                tokio::task::yield_now().await;
                last_wait = self.now();
            }
            self.ctx.now = self.now();
            loop {
                completions.clear();
                self.ring.drain(&mut completions, BATCH);
                if completions.is_empty() {
                    break;
                }
                for &completion in &completions {
                    self.complete(completion);
                }
            }
            while let Ok(command) = self.rx.try_recv() {
                self.command(command);
            }
            self.run_timers();
            // Publications from callbacks outside apply_closes' reach.
            self.apply_closes();
            self.rearm_recvs();
            self.stats.sync(&self.ctx.counters);
        }
        Ok(())
    }

    /// About to sleep: what the last burst grew beyond everyday needs goes
    /// back, so an idle server's memory does not stay at its largest
    /// fan-out's (the allocator returns freed large blocks to the system).
    fn trim(&mut self) {
        const KEEP: usize = 4096;
        self.ring.trim(KEEP);
        if self.ctx.direct.is_empty() && self.ctx.direct.capacity() > KEEP {
            self.ctx.direct = Vec::with_capacity(KEEP);
        }
    }

    // ---- accepting ----

    fn arm_accepts(&mut self) -> io::Result<()> {
        for i in 0..self.listeners.len() as u32 {
            if self.ctx.config.peer_addresses {
                for k in 0..ACCEPTS_PER_LISTENER {
                    self.arm_accept(Token::new(Kind::Accept, 0, i * ACCEPTS_PER_LISTENER + k))?;
                }
            } else {
                self.arm_accept(Token::new(Kind::Accept, 0, i * ACCEPTS_PER_LISTENER))?;
            }
        }
        Ok(())
    }

    fn arm_accept(&mut self, token: Token) -> io::Result<()> {
        let Some(listener) = self
            .listeners
            .get((token.slot / ACCEPTS_PER_LISTENER) as usize)
        else {
            return Ok(());
        };
        let fd = listener.as_raw_fd();
        if self.ctx.config.peer_addresses {
            self.ring.accept(fd, token.encode())
        } else {
            self.ring.accept_multi(fd, token.encode())
        }
    }

    fn on_accept(&mut self, token: Token, c: Completion) {
        if let Some(socket) = c.socket() {
            self.accepted(socket, c.peer());
        } else if c.result != -libc::ECANCELED {
            tracing::warn!(worker = self.id, error = %io::Error::from_raw_os_error(-c.result), "accept failed");
        }
        if c.more() || !self.accepting {
            return;
        }
        let out_of_room =
            [libc::ENFILE, libc::EMFILE, libc::ENOMEM, libc::ENOBUFS].contains(&-c.result);
        if out_of_room {
            // Retrying at once would spin until a connection closes.
            self.accepts_paused.push(token);
            self.accept_retry_at
                .get_or_insert(self.ctx.now + ACCEPT_BACKOFF_MS);
        } else if let Err(e) = self.arm_accept(token) {
            tracing::error!(worker = self.id, error = %e, "cannot re-arm accept");
        }
    }

    fn accepted(&mut self, socket: Socket, peer: Option<SocketAddr>) {
        let gen = self.next_gen;
        self.next_gen = Token::next_gen(gen);
        let now = self.ctx.now;
        let mut io = None;
        if peer.is_some() {
            let io = io.insert(self.ctx.pool.take());
            io.peer = peer;
        }
        let entry = self.conns.vacant_entry();
        let slot = entry.key() as u32;
        entry.insert(Connection {
            socket,
            gen,
            phase: Phase::Handshake,
            flags: flags::RECV_ARMED,
            queued: 0,
            io,
            session: Session::new(Role::Server, self.ctx.config.decoder),
            since: now,
            last_activity: now,
            timer_at: 0,
            state: None,
        });
        if let Err(e) = self
            .ring
            .recv_multi(socket, Token::new(Kind::Recv, gen, slot).encode())
        {
            tracing::error!(worker = self.id, error = %e, "cannot arm recv");
            self.conns[slot as usize].unset(flags::RECV_ARMED);
            self.teardown(slot);
            return;
        }
        self.schedule(slot);
    }

    // ---- completions ----

    fn complete(&mut self, c: Completion) {
        let Some(token) = Token::decode(c.user_data) else {
            // Cancellations (`ring::IGNORED`).
            return;
        };
        match token.kind {
            Kind::Accept => self.on_accept(token, c),
            Kind::Recv => self.on_recv(token, c),
            Kind::Send => self.on_send(token, c),
            Kind::Close => {
                if let Some(conn) = live(&mut self.conns, token.slot, token.gen) {
                    conn.unset(flags::CLOSING_FD);
                    self.try_free(token.slot);
                }
            }
        }
    }

    fn on_recv(&mut self, token: Token, c: Completion) {
        let slot = token.slot;
        let Some(conn) = live(&mut self.conns, slot, token.gen) else {
            self.ring.recycle(&c);
            return;
        };
        if !c.more() {
            conn.unset(flags::RECV_ARMED);
        }
        match c.result {
            n if n > 0 => {
                let Some(data) = self.ring.received(&c) else {
                    self.teardown(slot);
                    return;
                };
                self.ctx.counters.bytes_in += data.len() as u64;
                if conn.phase != Phase::Dead {
                    conn.io(&mut self.ctx.pool).inbuf.extend_from_slice(data);
                }
                self.ring.recycle(&c);
                self.on_input(slot);
                if let Some(conn) = self.conns.get_mut(slot as usize) {
                    if !conn.has(flags::RECV_ARMED)
                        && conn.phase != Phase::Dead
                        && !conn.has(flags::REARM)
                    {
                        conn.set(flags::REARM);
                        self.rearm.push(slot);
                    }
                }
            }
            0 => self.teardown(slot),
            e if e == -libc::ENOBUFS => {
                // The ring ran dry: the data waits in the socket until the
                // buffers of this batch are recycled and recv is re-armed.
                self.stats
                    .buffer_exhaustions
                    .fetch_add(1, Ordering::Relaxed);
                if conn.phase != Phase::Dead && !conn.has(flags::REARM) {
                    conn.set(flags::REARM);
                    self.rearm.push(slot);
                }
            }
            e if e == -libc::ECANCELED => {}
            _ => self.teardown(slot),
        }
        self.try_free(slot);
    }

    fn rearm_recvs(&mut self) {
        for slot in std::mem::take(&mut self.rearm) {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            conn.unset(flags::REARM);
            if conn.phase == Phase::Dead || conn.has(flags::RECV_ARMED) {
                continue;
            }
            let token = Token::new(Kind::Recv, conn.gen, slot);
            if self.ring.recv_multi(conn.socket, token.encode()).is_ok() {
                conn.set(flags::RECV_ARMED);
            } else {
                self.teardown(slot);
            }
        }
    }

    fn on_send(&mut self, token: Token, c: Completion) {
        let slot = token.slot;
        let limit = self.ctx.config.backpressure_limit;
        let Some(conn) = live(&mut self.conns, slot, token.gen) else {
            return;
        };
        conn.unset(flags::SENDING);
        if c.result < 0 || conn.phase == Phase::Dead {
            self.teardown(slot);
            self.try_free(slot);
            return;
        }
        let sent = c.result as usize;
        self.ctx.counters.bytes_out += sent as u64;
        let direct = conn.has(flags::DIRECT_SENDING);
        if direct {
            conn.unset(flags::DIRECT_SENDING);
            // MSG_WAITALL: all of the frame, or the connection failed part
            // way and the stream cannot go on. The frame is what was queued
            // minus what was queued after it.
            let after: usize = conn.io.as_ref().map_or(0, |io| {
                io.out.iter().map(|chunk| chunk.as_slice().len()).sum()
            });
            if sent + after != conn.queued {
                self.teardown(slot);
                self.try_free(slot);
                return;
            }
        }
        conn.queued = conn.queued.saturating_sub(sent);
        if let (false, Some(io)) = (direct, conn.io.as_mut()) {
            io.send.advance(sent);
        }
        if conn.flushed() {
            conn.release_io(&mut self.ctx.pool);
        } else {
            // The rest of a partial send, or what was queued meanwhile.
            self.ctx.mark_dirty(slot, conn);
        }
        if conn.has(flags::WANTS_DRAIN) && conn.queued < limit / 2 && conn.phase == Phase::Open {
            conn.unset(flags::WANTS_DRAIN);
            let mut view = Conn {
                slot,
                conn,
                ctx: &mut self.ctx,
            };
            self.handler.drain(&mut view);
            self.apply_closes();
        }
        self.maybe_shut(slot);
    }

    // ---- input ----

    fn on_input(&mut self, slot: u32) {
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return;
        };
        match conn.phase {
            Phase::Handshake => self.handshake(slot),
            Phase::Open | Phase::Closing if conn.state.is_some() => self.read_frames(slot),
            // A refused request's connection: nothing more is read.
            _ => {
                if let Some(io) = conn.io.as_mut() {
                    io.inbuf.clear();
                }
            }
        }
    }

    fn handshake(&mut self, slot: u32) {
        let peer_worker = self.id;
        let max_head = self.ctx.config.max_head;
        let full = self.open >= self.ctx.config.max_connections_per_worker;
        let shutting_down = self.shutdown_at.is_some();
        let conn = &mut self.conns[slot as usize];
        let io = conn.io(&mut self.ctx.pool);
        let mut inbuf = std::mem::take(&mut io.inbuf);
        let peer_addr = io.peer;
        let outcome = match Request::parse(&inbuf, max_head) {
            Ok(None) => {
                io.inbuf = inbuf;
                return;
            }
            Err(e) => Outcome::Refuse(error_response_for(&e)),
            Ok(Some(request)) => {
                let peer = Peer {
                    addr: peer_addr,
                    worker: peer_worker,
                };
                if !request.is_upgrade() {
                    match body_len(&request, self.ctx.config.max_body) {
                        Err(response) => Outcome::Answer(response),
                        Ok(len) if inbuf.len() < request.head_len() + len => {
                            let expects = request
                                .header("expect")
                                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
                            Outcome::Wait { expects }
                        }
                        Ok(len) => {
                            let body = &inbuf[request.head_len()..request.head_len() + len];
                            Outcome::Answer(self.handler.http(&request, body, peer))
                        }
                    }
                } else {
                    match request.upgrade() {
                        Err(e) => Outcome::Refuse(error_response_for(&e)),
                        Ok(_) if shutting_down => {
                            Outcome::Refuse(error_response(503, "server shutting down"))
                        }
                        Ok(_) if full => {
                            Outcome::Refuse(error_response(503, "too many connections"))
                        }
                        Ok(upgrade) => match self.handler.upgrade(&upgrade, peer) {
                            Err(reject) => Outcome::Refuse(reject.to_response()),
                            Ok(accept) => {
                                match upgrade.response(accept.protocol.as_deref(), None) {
                                    Ok(response) => Outcome::Upgrade {
                                        response,
                                        state: accept.state,
                                        head_len: request.head_len(),
                                    },
                                    Err(e) => {
                                        tracing::error!(worker = self.id, error = %e, "handler chose an invalid subprotocol");
                                        Outcome::Refuse(error_response_for(&e))
                                    }
                                }
                            }
                        },
                    }
                }
            }
        };
        let now = self.ctx.now;
        let conn = &mut self.conns[slot as usize];
        let plain = matches!(outcome, Outcome::Answer(_));
        match outcome {
            Outcome::Wait { expects } => {
                conn.io(&mut self.ctx.pool).inbuf = inbuf;
                // curl and others wait for this before sending a large body.
                if expects && !conn.has(flags::CONTINUE_SENT) {
                    conn.set(flags::CONTINUE_SENT);
                    conn.push_bytes(
                        bytes::Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"),
                        &mut self.ctx.pool,
                    );
                    self.ctx.mark_dirty(slot, conn);
                }
            }
            Outcome::Refuse(response) | Outcome::Answer(response) => {
                let status = status_of(&response);
                self.stats.count_request(if plain {
                    RequestOutcome::Http(status)
                } else {
                    RequestOutcome::Handshake(status)
                });
                conn.push_bytes(response, &mut self.ctx.pool);
                conn.phase = Phase::Closing;
                conn.since = now;
                conn.set(flags::SHUT_AFTER_FLUSH);
                self.ctx.mark_dirty(slot, conn);
                self.schedule(slot);
            }
            Outcome::Upgrade {
                response,
                state,
                head_len,
            } => {
                inbuf.advance(head_len);
                let io = conn.io(&mut self.ctx.pool);
                io.inbuf = inbuf;
                io.peer = None;
                conn.push_bytes(response, &mut self.ctx.pool);
                conn.state = Some(state);
                conn.phase = Phase::Open;
                conn.since = now;
                conn.last_activity = now;
                self.open += 1;
                self.stats.set_open(self.open);
                self.stats.count_request(RequestOutcome::Handshake(101));
                self.ctx.mark_dirty(slot, conn);
                let mut view = Conn {
                    slot,
                    conn,
                    ctx: &mut self.ctx,
                };
                self.handler.open(&mut view);
                self.apply_closes();
                self.schedule(slot);
                self.read_frames(slot);
            }
        }
    }

    fn read_frames(&mut self, slot: u32) {
        let auto_pong = self.ctx.config.auto_pong;
        loop {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                return;
            };
            if conn.phase == Phase::Dead {
                return;
            }
            let Connection { session, io, .. } = conn;
            let Some(io) = io.as_mut() else {
                break;
            };
            let message = match session.decode(&mut io.inbuf) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                    io.inbuf.clear();
                    if let Some(frame) = conn.session.fail(&error) {
                        conn.push_frame(frame, &mut self.ctx.pool);
                    }
                    self.notify_close(slot, code, &error.to_string());
                    self.shut_after_flush(slot);
                    break;
                }
            };
            conn.last_activity = self.ctx.now;
            conn.unset(flags::PING_OUT);
            let mut view = Conn {
                slot,
                conn,
                ctx: &mut self.ctx,
            };
            match message {
                Message::Ping(payload) => {
                    if auto_pong && view.conn.session.state() == CloseState::Open {
                        send_frame(view.conn, view.ctx, slot, OpCode::Pong, payload.clone());
                    }
                    self.handler.ping(&mut view, &payload);
                }
                Message::Pong(payload) => self.handler.pong(&mut view, &payload),
                Message::Close(frame) => {
                    let (code, reason) = match &frame {
                        Some(f) => (f.code, f.reason.as_str()),
                        None => (CloseCode::NO_STATUS, ""),
                    };
                    if !view.conn.has(flags::NOTIFIED) {
                        view.conn.set(flags::NOTIFIED);
                        self.handler.close(&mut view, code, reason);
                    }
                    if let Some(reply) = view.conn.session.reply_to_close(frame.as_ref()) {
                        view.conn.push_frame(reply, &mut view.ctx.pool);
                    }
                    if let Some(io) = view.conn.io.as_mut() {
                        io.inbuf.clear();
                    }
                    self.shut_after_flush(slot);
                    break;
                }
                message => {
                    view.ctx.counters.messages_in += 1;
                    self.handler.message(&mut view, message)
                }
            }
            self.apply_closes();
        }
        self.apply_closes();
        if let Some(conn) = self.conns.get_mut(slot as usize) {
            if conn.flushed() {
                conn.release_io(&mut self.ctx.pool);
            } else {
                conn.make_direct(slot, &mut self.ctx);
            }
        }
        self.maybe_shut(slot);
    }

    // ---- closing ----

    /// Tells the handler the connection is over, once.
    fn notify_close(&mut self, slot: u32, code: CloseCode, reason: &str) {
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if conn.state.is_none() || conn.has(flags::NOTIFIED) {
            return;
        }
        conn.set(flags::NOTIFIED);
        let mut view = Conn {
            slot,
            conn,
            ctx: &mut self.ctx,
        };
        self.handler.close(&mut view, code, reason);
        // Sends from inside `close` are refused by the session state; closes
        // it asks for are moot.
        self.ctx.to_close.retain(|(s, ..)| *s != slot);
        self.ctx.topics.remove_conn(slot);
    }

    /// What callbacks asked for that needs other connections: local
    /// fan-outs, then closes.
    fn apply_closes(&mut self) {
        if !self.ctx.to_publish.is_empty() {
            for (topic, frame, skip) in std::mem::take(&mut self.ctx.to_publish) {
                self.deliver(&topic, &frame, skip);
            }
        }
        while let Some((slot, code, reason)) = self.ctx.to_close.pop() {
            self.start_close(slot, code, &reason);
        }
    }

    /// Queues one publication to this worker's subscribers of `topic`.
    fn deliver(&mut self, topic: &str, frame: &bytes::Bytes, skip: Option<u32>) {
        let Some((id, subscribers)) = self.ctx.topics.take(topic) else {
            return;
        };
        let (mut delivered, mut dropped) = (0, 0);
        for &slot in &subscribers {
            if Some(slot) == skip {
                continue;
            }
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            match send_encoded(conn, &mut self.ctx, slot, frame.clone()) {
                SendStatus::Dropped => dropped += 1,
                _ => delivered += 1,
            }
        }
        self.ctx.topics.restore(id, subscribers);
        self.stats.publishes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .deliveries
            .fetch_add(delivered, Ordering::Relaxed);
        if dropped > 0 {
            self.stats
                .deliveries_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Sends our close frame after what is queued, and waits for the
    /// peer's answer up to the close timeout.
    fn start_close(&mut self, slot: u32, code: CloseCode, reason: &str) {
        let now = self.ctx.now;
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return;
        };
        match conn.phase {
            Phase::Open => {}
            Phase::Handshake => return self.teardown(slot),
            Phase::Closing | Phase::Dead => return,
        }
        match conn.session.close(code, reason) {
            Ok(frame) => conn.push_frame(frame, &mut self.ctx.pool),
            Err(_) => return self.teardown(slot),
        }
        conn.phase = Phase::Closing;
        conn.since = now;
        self.ctx.mark_dirty(slot, conn);
        self.notify_close(slot, code, reason);
        self.schedule(slot);
    }

    /// The close handshake is done on our side: shut the transport once the
    /// queue is written.
    fn shut_after_flush(&mut self, slot: u32) {
        let now = self.ctx.now;
        if let Some(conn) = self.conns.get_mut(slot as usize) {
            if conn.phase == Phase::Dead {
                return;
            }
            conn.phase = Phase::Closing;
            conn.since = now;
            conn.set(flags::SHUT_AFTER_FLUSH);
            self.ctx.mark_dirty(slot, conn);
            self.schedule(slot);
        }
    }

    fn maybe_shut(&mut self, slot: u32) {
        let Some(conn) = self.conns.get(slot as usize) else {
            return;
        };
        let done = conn.phase == Phase::Closing
            && conn.flushed()
            && (conn.has(flags::SHUT_AFTER_FLUSH) || conn.session.state() == CloseState::Closed);
        if done {
            self.teardown(slot);
        }
    }

    /// Closes the fd and forgets the connection once no operation of it is
    /// in flight.
    fn teardown(&mut self, slot: u32) {
        let Some(conn) = self.conns.get(slot as usize) else {
            return;
        };
        if conn.phase == Phase::Dead {
            return;
        }
        self.notify_close(slot, CloseCode::ABNORMAL, "connection lost");
        let conn = &mut self.conns[slot as usize];
        let was_open = conn.state.is_some();
        conn.phase = Phase::Dead;
        if let Some(io) = conn.io.as_mut() {
            // The send in flight (if any) keeps its chunks until it ends.
            io.out.clear();
            io.inbuf = BytesMut::new();
        }
        let (socket, gen) = (conn.socket, conn.gen);
        if conn.has(flags::RECV_ARMED) {
            let _ = self.ring.cancel(Token::new(Kind::Recv, gen, slot).encode());
        }
        if conn.has(flags::SENDING) {
            let _ = self.ring.cancel(Token::new(Kind::Send, gen, slot).encode());
        }
        if self
            .ring
            .close(socket, Token::new(Kind::Close, gen, slot).encode())
            .is_ok()
        {
            conn.set(flags::CLOSING_FD);
        } else {
            let _ = self.ring.close_now(socket);
        }
        if was_open {
            self.open -= 1;
            self.stats.set_open(self.open);
        }
        self.try_free(slot);
    }

    fn try_free(&mut self, slot: u32) {
        let Some(conn) = self.conns.get(slot as usize) else {
            return;
        };
        if conn.phase == Phase::Dead
            && !conn.has(flags::RECV_ARMED | flags::SENDING | flags::CLOSING_FD)
        {
            // Already gone for an opened connection (notify_close); this
            // catches any other path, as a stale slot would get another
            // connection's publications.
            self.ctx.topics.remove_conn(slot);
            let conn = self.conns.remove(slot as usize);
            if let Some(io) = conn.io {
                self.ctx.pool.give(io);
            }
        }
    }

    // ---- output ----

    fn flush(&mut self) -> io::Result<()> {
        // Before the queues: a direct frame was queued before anything else
        // of its connection.
        if !self.ctx.direct.is_empty() {
            let mut direct = std::mem::take(&mut self.ctx.direct);
            for (slot, gen, frame) in direct.drain(..) {
                let Some(conn) = live(&mut self.conns, slot, gen) else {
                    continue;
                };
                if !conn.has(flags::DIRECT) {
                    continue;
                }
                conn.unset(flags::DIRECT);
                if conn.phase == Phase::Dead {
                    continue;
                }
                let token = Token::new(Kind::Send, gen, slot);
                self.ring.send(conn.socket, frame, token.encode())?;
                conn.set(flags::SENDING | flags::DIRECT_SENDING);
            }
            if self.ctx.direct.is_empty() {
                self.ctx.direct = direct;
            }
        }
        let mut dirty = std::mem::take(&mut self.ctx.dirty);
        for &slot in &dirty {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            conn.unset(flags::DIRTY);
            if conn.phase == Phase::Dead || conn.has(flags::SENDING) {
                continue;
            }
            let Some(io) = conn.io.as_mut() else {
                continue;
            };
            let Io { out, send, .. } = &mut **io;
            send.fill(out);
            if send.is_empty() {
                continue;
            }
            let msg = send.prepare();
            let token = Token::new(Kind::Send, conn.gen, slot);
            // SAFETY: `msg` and the iovecs and chunks it points to live in
            // the connection's boxed Io, which is neither released
            // (`release_io`) nor freed with the slot (`try_free`) while
            // SENDING is set, and `send` is not touched until the send ends.
            unsafe { self.ring.send_msg(conn.socket, msg, token.encode())? };
            conn.set(flags::SENDING);
        }
        dirty.clear();
        if self.ctx.dirty.is_empty() {
            self.ctx.dirty = dirty;
        }
        Ok(())
    }

    // ---- commands from other threads ----

    fn command(&mut self, command: Command) {
        match command {
            Command::Send {
                slot,
                gen,
                opcode,
                payload,
            } => {
                if let Some(conn) = live(&mut self.conns, slot, gen) {
                    send_frame(conn, &mut self.ctx, slot, opcode, payload);
                }
            }
            Command::SendEncoded { slot, gen, frame } => {
                if let Some(conn) = live(&mut self.conns, slot, gen) {
                    send_encoded(conn, &mut self.ctx, slot, frame);
                }
            }
            Command::Close {
                slot,
                gen,
                code,
                reason,
            } => {
                if live(&mut self.conns, slot, gen).is_some() {
                    self.start_close(slot, code, &reason);
                }
            }
            Command::Publish { topic, frame } => self.deliver(&topic, &frame, None),
            Command::Shutdown => self.begin_shutdown(),
        }
        self.apply_closes();
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_at.is_some() {
            return;
        }
        self.shutdown_at = Some(self.ctx.now + self.ctx.config.shutdown_timeout.as_millis() as u64);
        self.accepting = false;
        for listener in &self.listeners {
            let _ = self.ring.cancel_fd(listener.as_raw_fd());
        }
        // The cancellations reference the listeners by token only; closing
        // them now refuses new connections at once.
        self.listeners.clear();
        let live: Vec<(u32, Phase)> = self
            .conns
            .iter()
            .map(|(slot, c)| (slot as u32, c.phase))
            .collect();
        for (slot, phase) in live {
            match phase {
                Phase::Open => {
                    self.start_close(slot, CloseCode::GOING_AWAY, "server shutting down")
                }
                // No complete request yet (a complete one is answered the
                // moment it arrives): nothing to answer, nothing to wait for.
                Phase::Handshake => self.teardown(slot),
                Phase::Closing | Phase::Dead => {}
            }
        }
    }

    fn finished(&mut self) -> bool {
        let Some(deadline) = self.shutdown_at else {
            return false;
        };
        if self.conns.is_empty() {
            return true;
        }
        let now = self.ctx.now;
        if now >= deadline && !self.forced {
            self.forced = true;
            let slots: Vec<u32> = self.conns.iter().map(|(slot, _)| slot as u32).collect();
            for slot in slots {
                self.teardown(slot);
            }
        }
        // Cancelled operations complete quickly; past this the kernel holds
        // nothing of ours that matters, as the ring is about to be dropped.
        now >= deadline + 2000
    }

    // ---- timers ----

    fn deadline(&self, conn: &Connection<H::State>) -> Option<u64> {
        let config = self.config();
        let ms = |d: Duration| d.as_millis() as u64;
        match conn.phase {
            Phase::Handshake => Some(conn.since + ms(config.handshake_timeout)),
            Phase::Open => {
                let idle = (!config.idle_timeout.is_zero())
                    .then(|| conn.last_activity + ms(config.idle_timeout));
                let ping = (!config.ping_interval.is_zero()).then(|| {
                    if conn.has(flags::PING_OUT) {
                        conn.since + ms(config.ping_interval)
                    } else {
                        conn.last_activity + ms(config.ping_interval)
                    }
                });
                match (idle, ping) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Phase::Closing => Some(conn.since + ms(config.close_timeout)),
            Phase::Dead => None,
        }
    }

    fn schedule(&mut self, slot: u32) {
        let Some(conn) = self.conns.get(slot as usize) else {
            return;
        };
        let Some(at) = self.deadline(conn) else {
            return;
        };
        if conn.timer_at == 0 || at < conn.timer_at {
            self.conns[slot as usize].timer_at = at;
            self.timers.push(Reverse((at, slot)));
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        let timers = self.timers.peek().map(|Reverse((at, _))| *at);
        [
            timers,
            self.accept_retry_at,
            self.shutdown_at
                .map(|at| if self.forced { at + 2000 } else { at }),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn run_timers(&mut self) {
        let now = self.ctx.now;
        if self.accept_retry_at.is_some_and(|at| at <= now) {
            self.accept_retry_at = None;
            for token in std::mem::take(&mut self.accepts_paused) {
                if self.accepting {
                    if let Err(e) = self.arm_accept(token) {
                        tracing::error!(worker = self.id, error = %e, "cannot re-arm accept");
                    }
                }
            }
        }
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if conn.timer_at != at {
                continue;
            }
            conn.timer_at = 0;
            match self.deadline(&self.conns[slot as usize]) {
                Some(due) if due > now => self.schedule(slot),
                Some(_) => self.fire(slot),
                None => {}
            }
        }
    }

    fn fire(&mut self, slot: u32) {
        let now = self.ctx.now;
        let config = self.ctx.config.clone();
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return;
        };
        match conn.phase {
            Phase::Handshake => {
                self.stats.count_request(RequestOutcome::HandshakeTimeout);
                self.teardown(slot);
            }
            Phase::Closing => self.teardown(slot),
            Phase::Open => {
                let idle = !config.idle_timeout.is_zero()
                    && now >= conn.last_activity + config.idle_timeout.as_millis() as u64;
                if idle {
                    self.start_close(slot, CloseCode::GOING_AWAY, "idle timeout");
                } else if conn.has(flags::PING_OUT) {
                    self.start_close(slot, CloseCode::GOING_AWAY, "ping timeout");
                } else {
                    conn.set(flags::PING_OUT);
                    conn.since = now;
                    send_frame(conn, &mut self.ctx, slot, OpCode::Ping, bytes::Bytes::new());
                    self.schedule(slot);
                }
                self.apply_closes();
            }
            Phase::Dead => {}
        }
    }
}

/// The status code of a response we wrote ("HTTP/1.1 NNN ...").
fn status_of(response: &[u8]) -> u16 {
    response
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The length of a plain request's body, or the response refusing it.
/// Chunked bodies are refused rather than decoded: the endpoints that take
/// a body are for backends, which can send Content-Length.
fn body_len(request: &Request<'_>, max_body: usize) -> Result<usize, bytes::Bytes> {
    if request.header("transfer-encoding").is_some() {
        return Err(error_response(
            411,
            "send the body with Content-Length, not chunked",
        ));
    }
    let mut len = None;
    for value in request.header_values("content-length") {
        let parsed = std::str::from_utf8(value)
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok());
        match (parsed, len) {
            (None, _) => return Err(error_response(400, "invalid Content-Length")),
            (Some(n), Some(previous)) if n != previous => {
                return Err(error_response(400, "conflicting Content-Length headers"))
            }
            (Some(n), _) => len = Some(n),
        }
    }
    let len = len.unwrap_or(0);
    if len > max_body as u64 {
        return Err(error_response(413, "request body too large"));
    }
    Ok(len as usize)
}

/// The connection in `slot` if it is still the one of generation `gen`.
fn live<S>(conns: &mut Slab<Connection<S>>, slot: u32, gen: u32) -> Option<&mut Connection<S>> {
    conns.get_mut(slot as usize).filter(|conn| conn.gen == gen)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
