//! What each path does.

use bytes::Bytes;
use uringws_engine::protocol::{
    handshake::{error_response, http_response, Request, Upgrade},
    CloseCode, Message,
};
use uringws_engine::{Accept, Conn, EngineHandle, Handler, Peer, Reject, WorkerContext};

use crate::demo;
use crate::pubsub::{self, BinaryTopics, Limits};

/// What each connection is, by the path it upgraded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Echo,
    PubSub,
}

/// One worker's routes.
pub struct Routes {
    engine: EngineHandle,
    limits: Limits,
    binary_topics: BinaryTopics,
}

impl Routes {
    pub fn new(context: &WorkerContext, limits: Limits) -> Self {
        Routes {
            engine: context.engine.clone(),
            limits,
            binary_topics: BinaryTopics::default(),
        }
    }

    fn health(&self) -> String {
        let stats = self.engine.stats();
        let list = |f: &dyn Fn(&uringws_engine::WorkerStats) -> u64| {
            stats
                .iter()
                .map(|s| f(s).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let total: usize = stats.iter().map(|s| s.connections()).sum();
        format!(
            "{{\"status\":\"ok\",\"workers\":{},\"connections\":{total},\"connections_per_worker\":[{}],\"buffer_exhaustions_per_worker\":[{}]}}",
            stats.len(),
            list(&|s| s.connections() as u64),
            list(&|s| s.buffer_exhaustions()),
        )
    }
}

impl Handler for Routes {
    type State = Endpoint;

    fn upgrade(&mut self, upgrade: &Upgrade<'_>, _: Peer) -> Result<Accept<Endpoint>, Reject> {
        match upgrade.request().path() {
            // Autobahn's runner connects to the root path.
            "/" | "/echo" => Ok(Accept::new(Endpoint::Echo)),
            "/ws" => {
                let accept = Accept::new(Endpoint::PubSub);
                if upgrade.protocols().any(|p| p == pubsub::SUBPROTOCOL) {
                    Ok(accept.with_protocol(pubsub::SUBPROTOCOL))
                } else {
                    Ok(accept)
                }
            }
            path => Err(Reject::new(404, format!("no WebSocket endpoint at {path}"))),
        }
    }

    fn http(&mut self, request: &Request<'_>, _: Peer) -> Bytes {
        if let Some(response) = demo::respond(request) {
            return response;
        }
        match (request.method(), request.path()) {
            ("GET", "/health") => {
                http_response(200, "application/json", self.health().as_bytes(), &[])
                    .unwrap_or_else(|_| error_response(500, "health"))
            }
            (_, "/health") => error_response(405, "use GET"),
            _ => error_response(404, "not found"),
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, Endpoint>, message: Message) {
        match (*conn.state(), message) {
            (Endpoint::Echo, Message::Text(text)) => {
                conn.send_text(text);
            }
            (Endpoint::Echo, Message::Binary(data)) => {
                conn.send_binary(data);
            }
            (Endpoint::PubSub, Message::Text(text)) => {
                pubsub::on_text(conn, text.as_str(), self.limits, &mut self.binary_topics)
            }
            (Endpoint::PubSub, Message::Binary(data)) => {
                if let Err(why) = pubsub::on_binary(conn, &data, &self.binary_topics) {
                    conn.send_text(pubsub::binary_error(&why));
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, conn: &mut Conn<'_, Endpoint>, _: CloseCode, _: &str) {
        if *conn.state() == Endpoint::PubSub {
            self.binary_topics.forget(conn);
        }
    }
}
