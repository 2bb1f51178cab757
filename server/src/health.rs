//! `GET /health`: whether to send this node traffic. 200 while serving,
//! 503 from the moment a shutdown begins (a load balancer polling it stops
//! sending new clients while the open ones drain), with what an operator
//! checks first: version, uptime, connections against capacity.

use serde_json::json;
use std::time::Instant;
use uringws_engine::{protocol::http::Response, EngineHandle};

pub fn response(engine: &EngineHandle, started: Instant) -> Response {
    let stats = engine.stats();
    let draining = engine.is_shutting_down();
    let body = json!({
        "status": if draining { "draining" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": started.elapsed().as_secs(),
        "workers": stats.len(),
        "connections": stats.iter().map(|s| s.connections()).sum::<usize>(),
        "capacity": stats.iter().map(|s| s.capacity()).sum::<usize>(),
        "connections_per_worker": stats.iter().map(|s| s.connections()).collect::<Vec<_>>(),
        "buffer_exhaustions_per_worker":
            stats.iter().map(|s| s.buffer_exhaustions()).collect::<Vec<_>>(),
    });
    Response::bytes(
        if draining { 503 } else { 200 },
        "application/json",
        body.to_string(),
    )
}
