//! What each path does, and who may upgrade: the Origin allow-list and the
//! per-IP limits on every WebSocket path, tokens on `/ws`.

use std::{collections::HashMap, sync::Arc, time::Duration};
use uringws_engine::protocol::{
    handshake::{Request, Upgrade},
    http::Response,
    CloseCode,
};
use uringws_engine::{Accept, Conn, EngineHandle, Handler, Message, Peer, Reject, WorkerContext};

use crate::{
    auth::{self, Auth, Grant, Refusal},
    bus::{Bus, WorkerBus},
    deadlines::AuthDeadlines,
    demo,
    origins::Origins,
    per_ip::{IpKey, Over, PerIp},
    pubsub::{self, conn_key, Access, AuthRequest, BinaryTopics, ConnKey, Limits},
};

/// What each connection is: the path it upgraded on and, on `/ws`, what it
/// may do. One byte: idle connections are most of them, and a grant that
/// is not "everything" lives in [`Routes`]' side table instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Echo,
    /// `/ws` without a token where none is required: every topic to
    /// subscribe to, publishing as `anonymous_publish` says; an `auth`
    /// first message may still bring a token's grant.
    Anonymous,
    /// `Anonymous` after its first message, which was not `auth`.
    Guest,
    /// `/ws` without a token where one is required: only `auth` until the
    /// auth deadline.
    Unauthenticated,
    /// `/ws`, every topic allowed.
    All,
    /// `/ws`, the topics of the grant in `Routes::grants`.
    Granted,
}

/// What every worker shares, read-only but for the per-IP counts.
#[derive(Debug)]
pub struct Shared {
    pub limits: Limits,
    pub auth: Auth,
    pub auth_required: bool,
    pub anonymous_publish: bool,
    pub auth_timeout: Duration,
    pub origins: Origins,
    pub per_ip: Option<PerIp>,
    /// `/health` and `/metrics` are on the admin listener, not here.
    pub admin_listen: bool,
    /// The other nodes, over Redis.
    pub bus: Option<Bus>,
    pub started: std::time::Instant,
}

/// What `upgrade` accepted, for `open` to file under the connection's id:
/// the engine calls `open` right after a successful `upgrade`, in the same
/// turn, before any other upgrade.
#[derive(Default)]
struct Opening {
    ip: Option<IpKey>,
    grant: Option<Arc<Grant>>,
}

/// One worker's routes.
pub struct Routes {
    engine: EngineHandle,
    shared: Arc<Shared>,
    binary_topics: BinaryTopics,
    /// Grants of `Endpoint::Granted` connections.
    grants: HashMap<ConnKey, Arc<Grant>>,
    deadlines: AuthDeadlines,
    opening: Opening,
    /// The counted address of each connection, by slot (a slot is reused
    /// only after `close`); empty unless per-IP connections are limited.
    peers: Vec<IpKey>,
    nothing: Grant,
    bus: Option<WorkerBus>,
}

impl Routes {
    pub fn new(context: &WorkerContext, shared: Arc<Shared>) -> Self {
        Routes {
            engine: context.engine.clone(),
            deadlines: AuthDeadlines::new(shared.auth_timeout),
            shared: shared.clone(),
            binary_topics: BinaryTopics::default(),
            grants: HashMap::new(),
            opening: Opening::default(),
            peers: Vec::new(),
            nothing: Grant::default(),
            bus: shared.bus.as_ref().map(|bus| bus.worker(context.worker)),
        }
    }

    fn counts_connections(&self) -> Option<&PerIp> {
        self.shared
            .per_ip
            .as_ref()
            .filter(|per_ip| per_ip.counts_connections())
    }

    /// An accepted upgrade that never reached `open` (the engine refused
    /// its response) gives its count back.
    fn abandon_opening(&mut self) {
        let opening = std::mem::take(&mut self.opening);
        if let (Some(ip), Some(per_ip)) = (opening.ip, self.counts_connections()) {
            per_ip.disconnect(ip);
        }
    }

    /// Origin, handshake rate, token, connection count: the cheap checks
    /// first, and the count (which must be given back) last.
    fn admit(
        &mut self,
        upgrade: &Upgrade<'_>,
        peer: Peer,
        pubsub: bool,
    ) -> Result<(Endpoint, Option<Arc<Grant>>), Reject> {
        let shared = &*self.shared;
        if !shared
            .origins
            .allows(upgrade.origin(), upgrade.request().header("host"))
        {
            return Err(Reject::new(403, "this Origin is not allowed"));
        }
        let ip = peer.addr.map(|addr| IpKey::of(addr.ip()));
        if let (Some(per_ip), Some(ip)) = (&shared.per_ip, ip) {
            if let Err(Over::Rate { retry_after }) = per_ip.handshake(ip) {
                return Err(Reject::new(429, "too many handshakes from this address")
                    .header("Retry-After", retry_after.to_string()));
            }
        }
        let (endpoint, grant) = if pubsub {
            self.authorize(upgrade)?
        } else {
            (Endpoint::Echo, None)
        };
        self.opening.ip = match (self.counts_connections(), ip) {
            (Some(per_ip), Some(ip)) => {
                per_ip
                    .connect(ip)
                    .map_err(|_| Reject::new(429, "too many connections from this address"))?;
                Some(ip)
            }
            _ => None,
        };
        Ok((endpoint, grant))
    }

    /// What a `/ws` upgrade may do, by the token it carries.
    fn authorize(&self, upgrade: &Upgrade<'_>) -> Result<(Endpoint, Option<Arc<Grant>>), Reject> {
        let token = auth::upgrade_token(upgrade, pubsub::SUBPROTOCOL)
            .map_err(|why| Reject::new(400, why))?;
        match token {
            Some(token) => {
                let grant = self.shared.auth.verify(&token).map_err(unauthorized)?;
                Ok(granted(grant))
            }
            None if !self.shared.auth_required => Ok((Endpoint::Anonymous, None)),
            // A client that speaks uringws.v1 can send `auth` first.
            None if offers_subprotocol(upgrade) => Ok((Endpoint::Unauthenticated, None)),
            None => Err(unauthorized(Refusal::Missing)),
        }
    }

    /// An `auth` request: taken as the first message of a connection that
    /// came without a token; a bad token closes the connection.
    fn authenticate(
        &mut self,
        conn: &mut Conn<'_, Endpoint>,
        endpoint: Endpoint,
        request: AuthRequest<'_>,
    ) {
        if !matches!(endpoint, Endpoint::Anonymous | Endpoint::Unauthenticated) {
            conn.send_text(pubsub::error(
                request.id,
                "bad_request",
                "auth comes once, as the first message of a connection without a token",
            ));
            return;
        }
        let key = conn_key(conn);
        self.deadlines.done(key);
        match self.shared.auth.verify(&request.token) {
            Ok(grant) => {
                let (state, grant) = granted(grant);
                *conn.state() = state;
                if let Some(grant) = grant {
                    self.grants.insert(key, grant);
                }
                if let Some(id) = request.id {
                    conn.send_text(pubsub::ack(id));
                }
            }
            Err(refusal) => conn.close(CloseCode::POLICY_VIOLATION, refusal.reason()),
        }
    }
}

fn granted(grant: Arc<Grant>) -> (Endpoint, Option<Arc<Grant>>) {
    if grant.is_all() {
        (Endpoint::All, None)
    } else {
        (Endpoint::Granted, Some(grant))
    }
}

fn offers_subprotocol(upgrade: &Upgrade<'_>) -> bool {
    upgrade.protocols().any(|p| p == pubsub::SUBPROTOCOL)
}

fn unauthorized(refusal: Refusal) -> Reject {
    Reject::new(401, refusal.reason()).header("WWW-Authenticate", "Bearer realm=\"uringws\"")
}

impl Handler for Routes {
    type State = Endpoint;

    fn upgrade(&mut self, upgrade: &Upgrade<'_>, peer: Peer) -> Result<Accept<Endpoint>, Reject> {
        self.abandon_opening();
        let pubsub = match upgrade.request().path() {
            // Autobahn's runner connects to the root path.
            "/" | "/echo" => false,
            "/ws" => true,
            path => return Err(Reject::new(404, format!("no WebSocket endpoint at {path}"))),
        };
        let (endpoint, grant) = self.admit(upgrade, peer, pubsub)?;
        self.opening.grant = grant;
        let accept = Accept::new(endpoint);
        if pubsub && offers_subprotocol(upgrade) {
            Ok(accept.with_protocol(pubsub::SUBPROTOCOL))
        } else {
            Ok(accept)
        }
    }

    fn http(&mut self, request: &Request<'_>, body: &[u8], _: Peer) -> Response {
        if let Some(response) = demo::respond(request) {
            return response;
        }
        match (request.method(), request.path()) {
            (_, "/publish") => crate::http_publish::publish(
                request,
                body,
                &self.shared.auth,
                &self.engine.publisher(),
                self.bus.as_mut(),
            ),
            (_, "/health" | "/metrics") if self.shared.admin_listen => {
                Response::text(404, "served on the admin listener (admin_listen)")
            }
            ("GET", "/health") => {
                crate::health::response(&self.engine, self.shared.bus.as_ref(), self.shared.started)
            }
            ("GET", "/metrics") => crate::metrics::response(&self.engine, self.shared.bus.as_ref()),
            (_, "/health" | "/metrics") => Response::text(405, "use GET"),
            _ => Response::text(404, "not found"),
        }
    }

    fn open(&mut self, conn: &mut Conn<'_, Endpoint>) {
        let opening = std::mem::take(&mut self.opening);
        let key = conn_key(conn);
        if let Some(ip) = opening.ip {
            let slot = key.index();
            if self.peers.len() <= slot {
                self.peers.resize(slot + 1, IpKey::NONE);
            }
            self.peers[slot] = ip;
        }
        match *conn.state() {
            Endpoint::Granted => {
                if let Some(grant) = opening.grant {
                    self.grants.insert(key, grant);
                }
            }
            Endpoint::Unauthenticated => self.deadlines.watch(key, conn.handle()),
            _ => {}
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, Endpoint>, message: Message) {
        let endpoint = *conn.state();
        let access = match endpoint {
            Endpoint::Echo => {
                match message {
                    Message::Text(text) => conn.send_text(text),
                    Message::Binary(data) => conn.send_binary(data),
                };
                return;
            }
            Endpoint::All => Access::All,
            Endpoint::Anonymous | Endpoint::Guest => Access::Anonymous {
                publish: self.shared.anonymous_publish,
            },
            Endpoint::Unauthenticated => Access::Unauthenticated,
            Endpoint::Granted => Access::Only(
                self.grants
                    .get(&conn_key(conn))
                    .map_or(&self.nothing, |grant| &**grant),
            ),
        };
        match message {
            Message::Text(text) => {
                let auth = pubsub::on_text(
                    conn,
                    text.as_str(),
                    self.shared.limits,
                    &mut self.binary_topics,
                    access,
                    self.bus.as_mut(),
                );
                if let Some(request) = auth {
                    self.authenticate(conn, endpoint, request);
                }
            }
            Message::Binary(data) => {
                if let Err((code, why)) =
                    pubsub::on_binary(conn, &data, &self.binary_topics, access, self.bus.as_mut())
                {
                    conn.send_text(pubsub::error(None, code, why));
                }
            }
        }
        // `auth` is taken only as the first message.
        if *conn.state() == Endpoint::Anonymous {
            *conn.state() = Endpoint::Guest;
        }
    }

    fn close(&mut self, conn: &mut Conn<'_, Endpoint>, _: CloseCode, _: &str) {
        let key = conn_key(conn);
        match *conn.state() {
            Endpoint::Echo => {}
            Endpoint::Unauthenticated => self.deadlines.done(key),
            Endpoint::Granted => {
                self.grants.remove(&key);
                self.binary_topics.forget(key);
            }
            Endpoint::Anonymous | Endpoint::Guest | Endpoint::All => self.binary_topics.forget(key),
        }
        if let Some(ip) = self.peers.get_mut(key.index()) {
            let ip = std::mem::replace(ip, IpKey::NONE);
            if let (true, Some(per_ip)) = (ip != IpKey::NONE, self.counts_connections()) {
                per_ip.disconnect(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_state_stays_one_byte() {
        // The engine keeps `Option<State>` in every connection, idle ones
        // included.
        assert_eq!(std::mem::size_of::<Option<Endpoint>>(), 1);
    }
}
