//! What each path does.

use bytes::Bytes;
use uringws_engine::protocol::{
    handshake::{error_response, http_response, Request, Upgrade},
    Message,
};
use uringws_engine::{Accept, Conn, EngineHandle, Handler, Peer, Reject, WorkerContext};

/// One worker's routes.
pub struct Routes {
    engine: EngineHandle,
}

impl Routes {
    pub fn new(context: &WorkerContext) -> Self {
        Routes {
            engine: context.engine.clone(),
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
    type State = ();

    fn upgrade(&mut self, upgrade: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        match upgrade.request().path() {
            // Autobahn's runner connects to the root path.
            "/" | "/echo" => Ok(Accept::new(())),
            path => Err(Reject::new(404, format!("no WebSocket endpoint at {path}"))),
        }
    }

    fn http(&mut self, request: &Request<'_>, _: Peer) -> Bytes {
        match (request.method(), request.path()) {
            ("GET", "/health") => {
                http_response(200, "application/json", self.health().as_bytes(), &[])
                    .unwrap_or_else(|_| error_response(500, "health"))
            }
            (_, "/health") => error_response(405, "use GET"),
            _ => error_response(404, "not found"),
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        match message {
            Message::Text(text) => conn.send_text(text),
            Message::Binary(data) => conn.send_binary(data),
            _ => return,
        };
    }
}
