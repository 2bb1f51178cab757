//! Receiving: multishot receive completions into the connection, the HTTP
//! request head and the upgrade decision.

use super::{live_token, ops, Worker};
use crate::{
    connection::{Head, ProxyRead},
    handler::{Accept, Handler, Peer},
    refusal::Refusal,
    stats::RequestOutcome,
};
use bytes::Bytes;
use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::atomic::Ordering,
};
use uringws_protocol::{
    deflate::{DeflateParams, ServerDeflate},
    http::Response,
    Error,
};
use uringws_ring::{Received, Token};

/// What was decided about a complete request head.
enum Decision<S> {
    /// Answer and close: the response, how it is counted and, for a
    /// refused upgrade or a request the protocol refused, why (for the log).
    Respond(Bytes, RequestOutcome, Option<Why>),
    /// Take it: the 101, the connection's state, and what
    /// permessage-deflate agreed to, if anything.
    Upgrade(Bytes, S, Option<DeflateParams>),
}

/// Why a request was refused, turned into text only for a line the log
/// throttle lets through: a storm of refusals should cost no formatting.
enum Why {
    /// The body of the response sent.
    Body(Bytes),
    Error(Error),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Body(body) => {
                let text = String::from_utf8_lossy(body);
                f.write_str(&text.chars().take(200).collect::<String>())
            }
            Why::Error(error) => error.fmt(f),
        }
    }
}

impl<H: Handler> Worker<H> {
    /// A receive completed: `result` bytes in `data` (the ring's buffer,
    /// back to the kernel when dropped), or an error; `more` while the
    /// multishot receive stays armed.
    pub(super) fn on_recv(
        &mut self,
        token: Token,
        result: i32,
        more: bool,
        data: Option<Received>,
    ) {
        let slot = token.slot;
        let Some(s) = live_token(&mut self.slots, token) else {
            return;
        };
        if !more {
            s.ops &= !ops::RECV_ARMED;
        }
        match result {
            n if n > 0 => {
                let Some(mut data) = data else {
                    self.teardown(slot);
                    return self.try_free(slot);
                };
                self.ctx.out.counters.bytes_in += data.len() as u64;
                if s.conn.awaits_proxy_header() {
                    match s.conn.receive_proxy_header(&data, &mut self.ctx.out) {
                        ProxyRead::Wait => {}
                        ProxyRead::Done => {
                            if s.conn.is_handshake() {
                                self.handshake(slot);
                            }
                            self.drive(slot);
                        }
                        ProxyRead::Refused(why) => {
                            self.stats.count_request(RequestOutcome::Handshake(400));
                            if self.logs.refused.admit(self.ctx.out.now) {
                                let peer = s.conn.peer().map(|a| a.to_string()).unwrap_or_default();
                                tracing::info!(worker = self.id, status = 400, reason = why, peer = %peer, "request refused");
                            }
                            self.drive(slot);
                        }
                    }
                } else if s.conn.is_tls() {
                    // Decrypted into the connection's buffer.
                    s.conn.receive_records(&mut data, &mut self.ctx.out);
                    if s.conn.is_handshake() {
                        self.handshake(slot);
                    }
                    self.drive(slot);
                } else if s.conn.is_handshake() {
                    s.conn.receive(&data, &mut self.ctx.out);
                    self.handshake(slot);
                    self.drive(slot);
                } else {
                    self.drive_input(slot, &mut data);
                }
                self.want_rearm(slot);
            }
            0 => {
                s.conn.on_end_of_stream(&mut self.ctx.out);
                self.drive(slot);
            }
            e if e == -libc::ENOBUFS => {
                // The ring ran dry: the data waits in the socket until the
                // buffers of this batch are recycled and recv is re-armed.
                self.stats
                    .buffer_exhaustions
                    .fetch_add(1, Ordering::Relaxed);
                self.want_rearm(slot);
            }
            e if e == -libc::ECANCELED => {}
            _ => self.teardown(slot),
        }
        self.try_free(slot);
    }

    /// A receive that stopped is re-armed at the end of the turn, once the
    /// buffers of this batch are back in the ring.
    fn want_rearm(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            if !s.has(ops::RECV_ARMED | ops::SHUT | ops::REARM) {
                s.ops |= ops::REARM;
                self.rearm.push(slot);
            }
        }
    }

    pub(super) fn rearm_recvs(&mut self) {
        for slot in std::mem::take(&mut self.rearm) {
            let Some(s) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            s.ops &= !ops::REARM;
            if s.has(ops::SHUT | ops::RECV_ARMED) {
                continue;
            }
            let token = super::Kind::Recv.token(s.conn.id.gen, slot);
            if self.ring.recv_multi(s.socket, token).is_ok() {
                s.ops |= ops::RECV_ARMED;
            } else {
                self.teardown(slot);
            }
        }
    }

    /// Decides on a complete request head: the protocol's checks, the
    /// engine's own limits, then the handler.
    fn handshake(&mut self, slot: u32) {
        let refusal = if self.shutdown.started() {
            Some(Refusal::ShuttingDown)
        } else if self.open >= self.capacity {
            Some(Refusal::AtCapacity)
        } else {
            None
        };
        let s = &mut self.slots[slot as usize];
        let mut peer = Peer {
            addr: s.conn.peer(),
            via: s.conn.via(),
            worker: self.id,
            tls: s.conn.is_tls(),
            server_name: s.conn.server_name(&self.ctx.out).map(std::sync::Arc::from),
        };
        let mut addr = peer.addr;
        let handler = &mut self.handler;
        let worker = self.id;
        let config = self.ctx.out.config.clone();
        let deflate = config.compression.map(|c| c.policy);
        let Some((decision, head_len)) = s.conn.poll_head(&mut self.ctx.out, |head| {
            let request = match &head {
                Head::Http { request, .. } => Some(*request),
                Head::Upgrade(upgrade) => Some(upgrade.request()),
                Head::Invalid(_) => None,
            };
            if let (Some(request), Some(from)) = (request, peer.addr) {
                peer.forwarded(config.trusted_proxies.client(request, from.ip()), from);
            }
            addr = peer.addr;
            decide(handler, head, peer, refusal, deflate, worker)
        }) else {
            return;
        };
        match decision {
            Decision::Respond(response, outcome, refused) => {
                self.stats.count_request(outcome);
                s.conn.respond(response, &mut self.ctx.out);
                if let (Some(why), RequestOutcome::Handshake(status)) = (refused, outcome) {
                    if self.logs.refused.admit(self.ctx.out.now) {
                        let peer = addr.map(|a| a.to_string()).unwrap_or_default();
                        let reason = why.to_string();
                        tracing::info!(worker, status, reason, peer = %peer, "request refused");
                    }
                }
            }
            Decision::Upgrade(response, state, deflate) => {
                s.conn
                    .upgrade(response, head_len, deflate, &mut self.ctx.out);
                s.state = Some(state);
                self.open += 1;
                self.stats.set_open(self.open);
                self.stats.count_request(RequestOutcome::Handshake(101));
                if let Some(at) = self.accepted_at.remove(&slot) {
                    self.stats.handshake_duration.record(at.elapsed());
                }
                self.call(slot, |handler, conn| handler.open(conn));
                // What `open` published reaches this worker's subscribers
                // now, not with the next frame anyone sends.
                self.deliver_published();
            }
        }
    }
}

/// The answer to a request head. A handler that panics gets its request
/// a 500, and the worker goes on.
fn decide<H: Handler>(
    handler: &mut H,
    head: Head<'_>,
    peer: Peer,
    refusal: Option<Refusal>,
    deflate: Option<ServerDeflate>,
    worker: usize,
) -> Decision<H::State> {
    let refuse = |response: Response| {
        let status = response.status();
        let why = Why::Body(response.body().clone());
        Decision::Respond(
            response.encode(),
            RequestOutcome::Handshake(status),
            Some(why),
        )
    };
    match head {
        Head::Invalid(error) => Decision::Respond(
            Response::from(&error).encode(),
            RequestOutcome::Handshake(error.http_status().unwrap_or(500)),
            Some(Why::Error(error)),
        ),
        Head::Http { request, body } => {
            let response = catch_unwind(AssertUnwindSafe(|| handler.http(request, body, peer)))
                .unwrap_or_else(|_| {
                    tracing::error!(worker, path = request.path(), "http handler panicked");
                    Refusal::HandlerPanicked.response()
                });
            let status = response.status();
            Decision::Respond(response.encode(), RequestOutcome::Http(status), None)
        }
        Head::Upgrade(upgrade) => {
            if let Some(refusal) = refusal {
                return refuse(refusal.response());
            }
            match catch_unwind(AssertUnwindSafe(|| handler.upgrade(&upgrade, peer))) {
                Ok(Ok(accept)) => {
                    let agreed = deflate.and_then(|policy| policy.negotiate(upgrade.extensions()));
                    let extensions = agreed.as_ref().map(|agreed| agreed.response());
                    match response_101(&upgrade, &accept, extensions) {
                        Ok(response) => Decision::Upgrade(
                            response,
                            accept.state,
                            agreed.map(|agreed| agreed.params),
                        ),
                        Err(error) => {
                            tracing::error!(worker, %error, "handler's upgrade answer cannot be sent");
                            refuse(Refusal::InvalidHandlerAnswer.response())
                        }
                    }
                }
                Ok(Err(reject)) => refuse(reject.into_response()),
                Err(_) => {
                    tracing::error!(worker, "upgrade handler panicked");
                    refuse(Refusal::HandlerPanicked.response())
                }
            }
        }
    }
}

fn response_101<S>(
    upgrade: &uringws_protocol::handshake::Upgrade<'_>,
    accept: &Accept<S>,
    extensions: Option<&str>,
) -> Result<Bytes, Error> {
    let headers: Vec<(&str, &str)> = accept
        .headers
        .iter()
        .map(|(name, value)| (&**name, &**value))
        .collect();
    upgrade.response_with_headers(accept.protocol.as_deref(), extensions, &headers)
}
