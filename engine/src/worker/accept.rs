//! Accepting connections: accepts kept armed on each listener, paused
//! with a back-off when the file table is full.

use super::{ops, Kind, Slot, Worker};
use crate::{
    connection::{Connection, Id},
    handler::Handler,
};
use std::{io, net::SocketAddr, os::fd::AsRawFd};
use uringws_ring::{Completion, Socket, Token};

/// How long to wait before accepting again when the file table is full.
const ACCEPT_BACKOFF_MS: u64 = 100;
/// Single-shot accepts kept in flight per listener when peer addresses are
/// wanted: enough that a connection storm never waits for a re-arm.
const ACCEPTS_PER_LISTENER: u32 = 8;
/// Entries kept free for what a cancelled multishot accept still takes.
const MULTISHOT_MARGIN: u32 = 32;

pub(super) struct Accepts {
    listeners: Vec<socket2::Socket>,
    /// Single-shot accepts, which report the peer's address; otherwise one
    /// multishot accept per listener.
    peer_addresses: bool,
    accepting: bool,
    /// Paused because the file table is about full: an accept the kernel
    /// completes without a free entry takes the connection off the
    /// backlog and closes it, so the client would get nothing at all.
    full: bool,
    /// Slots in use at which accepts pause, and below which they resume.
    pause_at: u32,
    resume_below: u32,
    retry_at: Option<u64>,
    /// Accepts that stopped on a full file table, re-armed after a pause.
    paused: Vec<Token>,
}

impl Accepts {
    pub(super) fn new(listeners: Vec<socket2::Socket>, peer_addresses: bool) -> Accepts {
        Accepts {
            listeners,
            peer_addresses,
            accepting: true,
            full: false,
            pause_at: u32::MAX,
            resume_below: u32::MAX,
            retry_at: None,
            paused: Vec::new(),
        }
    }

    pub(super) fn retry_at(&self) -> Option<u64> {
        self.retry_at
    }

    /// File-table entries that accepts in flight may take at once.
    pub(super) fn in_flight(&self) -> u32 {
        let listeners = self.listeners.len() as u32;
        match self.peer_addresses {
            true => ACCEPTS_PER_LISTENER * listeners,
            // A multishot accept goes on until its cancellation runs.
            false => MULTISHOT_MARGIN * listeners,
        }
    }

    /// A table of `files` entries, `reserve` of them beyond the capacity:
    /// accepts pause when what they have in flight could fill it, and
    /// resume once half the reserve is free, which a worker at its
    /// capacity always comes back to.
    pub(super) fn size_for(&mut self, files: u32, reserve: u32) {
        let margin = self.in_flight().min(reserve / 2);
        self.pause_at = files - margin;
        self.resume_below = files - reserve / 2;
    }
}

impl<H: Handler> Worker<H> {
    pub(super) fn arm_accepts(&mut self) -> io::Result<()> {
        let per_listener = match self.accept.peer_addresses {
            true => ACCEPTS_PER_LISTENER,
            false => 1,
        };
        for i in 0..self.accept.listeners.len() as u32 {
            for k in 0..per_listener {
                let slot = i * ACCEPTS_PER_LISTENER + k;
                self.arm_accept(Token::new(Kind::Accept as u8, 0, slot))?;
            }
        }
        Ok(())
    }

    fn arm_accept(&mut self, token: Token) -> io::Result<()> {
        let index = (token.slot / ACCEPTS_PER_LISTENER) as usize;
        let Some(listener) = self.accept.listeners.get(index) else {
            return Ok(());
        };
        let fd = listener.as_raw_fd();
        match self.accept.peer_addresses {
            true => self.ring.accept(fd, token.encode()),
            false => self.ring.accept_multi(fd, token.encode()),
        }
    }

    pub(super) fn on_accept(&mut self, token: Token, c: &Completion) {
        if let Some(socket) = c.socket() {
            if self.accept.accepting {
                self.accepted(socket, c.peer());
            } else {
                // Accepted as the shutdown began: nothing will serve it.
                let _ = self.ring.close_now(socket);
            }
        } else if c.result != -libc::ECANCELED && self.logs.accept.admit(self.ctx.out.now) {
            let error = io::Error::from_raw_os_error(-c.result);
            tracing::warn!(
                worker = self.id,
                %error,
                open = self.open,
                files = self.ring.files(),
                "accept failed"
            );
        }
        let in_use = self.slots.len() as u32;
        if self.accept.accepting && !self.accept.full && in_use >= self.accept.pause_at {
            self.accept.full = true;
            if !self.accept.peer_addresses {
                for listener in &self.accept.listeners {
                    let _ = self.ring.cancel_fd(listener.as_raw_fd());
                }
            }
        }
        if c.more() || !self.accept.accepting {
            return;
        }
        if self.accept.full {
            // Re-armed when connections leave room (`freed`).
            self.accept.paused.push(token);
            return;
        }
        let out_of_room =
            [libc::ENFILE, libc::EMFILE, libc::ENOMEM, libc::ENOBUFS].contains(&-c.result);
        if out_of_room {
            // Retrying at once would spin until a connection closes.
            self.accept.paused.push(token);
            let at = self.ctx.out.now + ACCEPT_BACKOFF_MS;
            self.accept.retry_at.get_or_insert(at);
        } else if let Err(e) = self.arm_accept(token) {
            tracing::error!(worker = self.id, error = %e, "cannot re-arm accept");
        }
    }

    fn accepted(&mut self, socket: Socket, peer: Option<SocketAddr>) {
        let gen = self.next_gen;
        // 32 bits here (a `ConnId` or `ConnRef` outlives its connection by
        // 4 billion accepts before it could name another), 24 in the ring's
        // tokens, whose completions arrive while the slot is still held.
        self.next_gen = gen.wrapping_add(1);
        let entry = self.slots.vacant_entry();
        let slot = entry.key() as u32;
        entry.insert(Slot {
            conn: Connection::new(Id { slot, gen }, peer, &mut self.ctx.out),
            state: None,
            socket,
            ops: ops::RECV_ARMED,
            timer_at: 0,
        });
        self.accepted_at.insert(slot, std::time::Instant::now());
        if let Err(e) = self.ring.recv_multi(socket, Kind::Recv.token(gen, slot)) {
            tracing::error!(worker = self.id, error = %e, "cannot arm recv");
            self.slots[slot as usize].ops &= !ops::RECV_ARMED;
            self.teardown(slot);
            return;
        }
        self.schedule(slot);
    }

    /// A slot was freed: accepts paused on an about full table resume once
    /// half the reserve is free.
    pub(super) fn freed(&mut self) {
        if self.accept.full && (self.slots.len() as u32) < self.accept.resume_below {
            self.accept.full = false;
            self.accept.retry_at.get_or_insert(self.ctx.out.now);
        }
    }

    /// Accepts paused on a full file table are due again.
    pub(super) fn retry_accepts(&mut self) {
        if self.accept.full {
            // `freed` asks again when there is room; a deadline left here
            // would wake the worker every turn for nothing.
            self.accept.retry_at = None;
            return;
        }
        if self.accept.retry_at.is_none_or(|at| at > self.ctx.out.now) {
            return;
        }
        self.accept.retry_at = None;
        for token in std::mem::take(&mut self.accept.paused) {
            if self.accept.accepting {
                if let Err(e) = self.arm_accept(token) {
                    tracing::error!(worker = self.id, error = %e, "cannot re-arm accept");
                }
            }
        }
    }

    /// No more connections: accepts are cancelled and the listeners
    /// closed, so new connections are refused at once.
    pub(super) fn stop_accepting(&mut self) {
        self.accept.accepting = false;
        for listener in &self.accept.listeners {
            let _ = self.ring.cancel_fd(listener.as_raw_fd());
        }
        // A cancellation by fd finds its requests when the kernel runs it:
        // submit before the listeners close, or it would find no fd and
        // leave the accepts (and the listening sockets they hold) alive.
        if let Err(e) = self.ring.submit() {
            tracing::error!(worker = self.id, error = %e, "cannot cancel the accepts");
        }
        self.accept.listeners.clear();
    }
}
