//! `GET /health`: whether to send this node traffic. 200 while serving,
//! 503 from the moment a shutdown begins (a load balancer polling it stops
//! sending new clients while the open ones drain), with what an operator
//! checks first: version, uptime, connections against capacity, and the
//! bus. While Redis is down the status is `degraded` but the answer stays
//! 200: the node still serves its own clients, and a balancer that took
//! every node out for it would leave none.

use crate::bus::Bus;
use serde_json::json;
use std::{sync::atomic::Ordering, time::Instant};
use uringws_engine::{protocol::http::Response, EngineHandle};

pub fn response(engine: &EngineHandle, bus: Option<&Bus>, started: Instant) -> Response {
    let stats = engine.stats();
    let draining = engine.is_shutting_down();
    let status = match () {
        () if draining => "draining",
        () if bus.is_some_and(|bus| !bus.is_up()) => "degraded",
        () => "ok",
    };
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": started.elapsed().as_secs(),
        "workers": stats.len(),
        "connections": stats.iter().map(|s| s.connections()).sum::<usize>(),
        "capacity": stats.iter().map(|s| s.capacity()).sum::<usize>(),
        "connections_per_worker": stats.iter().map(|s| s.connections()).collect::<Vec<_>>(),
        "buffer_exhaustions_per_worker":
            stats.iter().map(|s| s.buffer_exhaustions()).collect::<Vec<_>>(),
    });
    if let Some(bus) = bus {
        let counts = bus.counts();
        body["bus"] = json!({
            "url": bus.url(),
            "node": format!("{:016x}", bus.node()),
            "publish": bus.publishing().name(),
            "subscribe": bus.subscribing().name(),
            "channels": counts.channels.load(Ordering::Relaxed),
            "publish_failed": counts.publish_failed.load(Ordering::Relaxed),
            "missed": counts.missed.load(Ordering::Relaxed),
        });
    }
    Response::bytes(
        if draining { 503 } else { 200 },
        "application/json",
        body.to_string(),
    )
}
