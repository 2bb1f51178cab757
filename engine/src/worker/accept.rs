//! Accepting connections: accepts kept armed on each listener, paused
//! with a back-off when the file table is full.
//!
//! A multishot accept cannot be held back near a full table: the kernel
//! takes the whole backlog in one go, and an accept that finds no free
//! entry closes its connection. So a worker accepts with multishot only
//! while the table has room for every listener's backlog twice over, and
//! with a few single-shot accepts (whose entries it can count) beyond.

use super::{ops, Kind, Slot, Worker};
use crate::{
    connection::{Connection, Id, Tls},
    handler::Handler,
};
use rustls::ServerConfig;
use std::{io, net::SocketAddr, os::fd::AsRawFd, sync::Arc};
use uringws_ring::{Completion, Socket, Token};

/// How long to wait before accepting again when the file table is full.
const ACCEPT_BACKOFF_MS: u64 = 100;
/// Single-shot accepts kept in flight per listener when peer addresses are
/// wanted: enough that a connection storm never waits for a re-arm.
const ACCEPTS_PER_LISTENER: u32 = 8;
/// Entries kept free, beyond the backlogs, for connections that arrive
/// while a multishot accept goes through them.
const MULTISHOT_MARGIN: u32 = 32;

/// A worker's listening socket, plain or TLS.
pub(crate) struct Listener {
    pub socket: socket2::Socket,
    pub tls: Option<Arc<ServerConfig>>,
}

pub(super) struct Accepts {
    listeners: Vec<socket2::Socket>,
    /// Each listener's TLS settings, for TLS listeners (kept when the
    /// listeners close, for connections accepted before).
    tls: Vec<Option<Arc<ServerConfig>>>,
    /// Single-shot accepts only, which report the peer's address;
    /// otherwise one multishot accept per listener while there is room.
    peer_addresses: bool,
    /// Accepting with one multishot accept per listener now.
    multishot: bool,
    /// Slots in use from which multishot gives way to single-shot
    /// accepts (it comes back below half that); 0: single-shot only.
    single_from: u32,
    /// How many connections wait in a listener's backlog at most.
    backlog: u32,
    /// Per accept token (`ACCEPTS_PER_LISTENER` per listener): what is in
    /// flight for it.
    armed: Vec<Armed>,
    accepting: bool,
    /// Paused because the file table is about full: an accept the kernel
    /// completes without a free entry takes the connection off the
    /// backlog and closes it, so the client would get nothing at all.
    full: bool,
    /// Slots in use at which accepts pause, and below which they resume.
    pause_at: u32,
    resume_below: u32,
    retry_at: Option<u64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Armed {
    No,
    Single,
    Multishot,
}

impl Accepts {
    pub(super) fn new(listeners: Vec<Listener>, peer_addresses: bool, backlog: i32) -> Accepts {
        let tokens = listeners.len() * ACCEPTS_PER_LISTENER as usize;
        let (listeners, tls) = listeners.into_iter().map(|l| (l.socket, l.tls)).unzip();
        Accepts {
            listeners,
            tls,
            peer_addresses,
            multishot: false,
            single_from: 0,
            backlog: effective_backlog(backlog),
            armed: vec![Armed::No; tokens],
            accepting: true,
            full: false,
            pause_at: u32::MAX,
            resume_below: u32::MAX,
            retry_at: None,
        }
    }

    pub(super) fn retry_at(&self) -> Option<u64> {
        self.retry_at
    }

    /// File-table entries that accepts in flight may take at once near a
    /// full table, where they are single-shot.
    pub(super) fn in_flight(&self) -> u32 {
        ACCEPTS_PER_LISTENER * self.listeners.len() as u32
    }

    /// A table of `files` entries, `reserve` of them beyond the capacity:
    /// accepts pause when what they have in flight could fill it, and
    /// resume once half the reserve is free, which a worker at its
    /// capacity always comes back to.
    pub(super) fn size_for(&mut self, files: u32, reserve: u32) {
        let margin = self.in_flight().min(reserve / 2);
        self.pause_at = files - margin;
        self.resume_below = files - reserve / 2;
        if !self.peer_addresses {
            let room = (2 * self.backlog + MULTISHOT_MARGIN) * self.listeners.len() as u32;
            self.single_from = files.saturating_sub(room).min(self.pause_at);
            self.multishot = self.single_from > 0;
        }
    }
}

/// A listener's backlog as the kernel caps it (`net.core.somaxconn`).
fn effective_backlog(backlog: i32) -> u32 {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(4096);
    u32::try_from(backlog).unwrap_or(0).min(somaxconn)
}

impl<H: Handler> Worker<H> {
    /// Arms what the mode wants on every listener and is not in flight:
    /// multishot, the first token of each listener; single-shot, all.
    pub(super) fn arm_accepts(&mut self) -> io::Result<()> {
        for slot in 0..self.accept.armed.len() as u32 {
            let k = slot % ACCEPTS_PER_LISTENER;
            if self.accept.armed[slot as usize] != Armed::No || (self.accept.multishot && k > 0) {
                continue;
            }
            let Some(listener) = self
                .accept
                .listeners
                .get((slot / ACCEPTS_PER_LISTENER) as usize)
            else {
                continue; // closed by the shutdown
            };
            let fd = listener.as_raw_fd();
            let token = Token::new(Kind::Accept as u8, 0, slot).encode();
            if self.accept.multishot {
                self.ring.accept_multi(fd, token)?;
                self.accept.armed[slot as usize] = Armed::Multishot;
            } else {
                self.ring.accept(fd, token)?;
                self.accept.armed[slot as usize] = Armed::Single;
            }
        }
        Ok(())
    }

    pub(super) fn on_accept(&mut self, token: Token, c: &Completion) {
        if let Some(socket) = c.socket() {
            if self.accept.accepting {
                let listener = (token.slot / ACCEPTS_PER_LISTENER) as usize;
                let tls = self.accept.tls.get(listener).cloned().flatten();
                self.accepted(socket, c.peer(), tls);
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
        if !c.more() {
            if let Some(armed) = self.accept.armed.get_mut(token.slot as usize) {
                *armed = Armed::No;
            }
        }
        let in_use = self.slots.len() as u32;
        if self.accept.multishot && in_use >= self.accept.single_from {
            self.accept.multishot = false;
            if self.accept.armed.contains(&Armed::Multishot) {
                // Single-shot accepts are armed once these end.
                for listener in &self.accept.listeners {
                    let _ = self.ring.cancel_fd(listener.as_raw_fd());
                }
            }
        }
        if self.accept.accepting && !self.accept.full && in_use >= self.accept.pause_at {
            // Re-armed when connections leave room (`freed`).
            self.accept.full = true;
        }
        if c.more() || !self.accept.accepting || self.accept.full {
            return;
        }
        let out_of_room =
            [libc::ENFILE, libc::EMFILE, libc::ENOMEM, libc::ENOBUFS].contains(&-c.result);
        if out_of_room {
            // Retrying at once would spin until a connection closes.
            let at = self.ctx.out.now + ACCEPT_BACKOFF_MS;
            self.accept.retry_at.get_or_insert(at);
        } else if let Err(e) = self.arm_accepts() {
            tracing::error!(worker = self.id, error = %e, "cannot re-arm accept");
        }
    }

    fn accepted(
        &mut self,
        socket: Socket,
        peer: Option<SocketAddr>,
        tls: Option<Arc<ServerConfig>>,
    ) {
        let tls = match tls.map(Tls::new).transpose() {
            Ok(tls) => tls.map(Box::new),
            Err(error) => {
                // The settings, not the peer: every connection would fail.
                tracing::error!(worker = self.id, %error, "cannot start TLS");
                let _ = self.ring.close_now(socket);
                return;
            }
        };
        let gen = self.next_gen;
        // 32 bits here (a `ConnId` or `ConnRef` outlives its connection by
        // 4 billion accepts before it could name another), 24 in the ring's
        // tokens, whose completions arrive while the slot is still held.
        self.next_gen = gen.wrapping_add(1);
        let entry = self.slots.vacant_entry();
        let slot = entry.key() as u32;
        let id = Id { slot, gen };
        let conn = match tls {
            Some(tls) => Connection::with_tls(id, peer, tls, &mut self.ctx.out),
            None => Connection::new(id, peer, &mut self.ctx.out),
        };
        entry.insert(Slot {
            conn,
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
    /// half the reserve is free, and multishot comes back well below.
    pub(super) fn freed(&mut self) {
        let in_use = self.slots.len() as u32;
        if self.accept.full && in_use < self.accept.resume_below {
            self.accept.full = false;
            self.accept.retry_at.get_or_insert(self.ctx.out.now);
        }
        if !self.accept.multishot && in_use < self.accept.single_from / 2 {
            // The single-shot accepts in flight lapse as they complete;
            // the first of each listener comes back as multishot.
            self.accept.multishot = true;
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
        if self.accept.accepting {
            if let Err(e) = self.arm_accepts() {
                tracing::error!(worker = self.id, error = %e, "cannot re-arm accept");
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
