//! `GET /metrics` in the Prometheus text format (version 0.0.4), from every
//! worker's counters, labelled by worker.

use std::fmt::Write;
use uringws_engine::{EngineHandle, RequestOutcome, WorkerStats};

/// One metric: name, type, help, and its value per worker.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&WorkerStats) -> u64,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "uringws_connections",
        kind: "gauge",
        help: "Open WebSocket connections.",
        value: |s| s.connections() as u64,
    },
    Family {
        name: "uringws_connection_capacity",
        kind: "gauge",
        help: "Open WebSocket connections a worker holds at most (503 past it): max_connections_per_worker, or what the open-files limit leaves.",
        value: |s| s.capacity() as u64,
    },
    Family {
        name: "uringws_messages_received_total",
        kind: "counter",
        help: "Text and binary messages received.",
        value: WorkerStats::messages_in,
    },
    Family {
        name: "uringws_messages_sent_total",
        kind: "counter",
        help: "Text and binary messages queued to connections, deliveries included.",
        value: WorkerStats::messages_out,
    },
    Family {
        name: "uringws_bytes_received_total",
        kind: "counter",
        help: "Bytes read from sockets.",
        value: WorkerStats::bytes_in,
    },
    Family {
        name: "uringws_bytes_sent_total",
        kind: "counter",
        help: "Bytes written to sockets.",
        value: WorkerStats::bytes_out,
    },
    Family {
        name: "uringws_publishes_total",
        kind: "counter",
        help: "Publications fanned out by a worker (once per worker with subscribers).",
        value: WorkerStats::publishes,
    },
    Family {
        name: "uringws_deliveries_total",
        kind: "counter",
        help: "Publications queued to subscribers.",
        value: WorkerStats::deliveries,
    },
    Family {
        name: "uringws_deliveries_dropped_total",
        kind: "counter",
        help: "Publications not queued to a subscriber over its backpressure limit or closing.",
        value: WorkerStats::deliveries_dropped,
    },
    Family {
        name: "uringws_backpressure_drops_total",
        kind: "counter",
        help: "Messages refused because a connection was over its backpressure limit.",
        value: WorkerStats::backpressure_drops,
    },
    Family {
        name: "uringws_backpressure_closes_total",
        kind: "counter",
        help: "Connections closed with 1008 for backpressure.",
        value: WorkerStats::backpressure_closes,
    },
    Family {
        name: "uringws_recv_buffer_exhaustions_total",
        kind: "counter",
        help: "Times a worker's receive-buffer ring ran dry (raise recv_buffers if this climbs).",
        value: WorkerStats::buffer_exhaustions,
    },
];

pub fn render(engine: &EngineHandle) -> String {
    let stats = engine.stats();
    let mut out = String::with_capacity(4096);
    for family in FAMILIES {
        header(&mut out, family.name, family.kind, family.help);
        for (worker, s) in stats.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}{{worker=\"{worker}\"}} {}",
                family.name,
                (family.value)(s)
            );
        }
    }
    // One snapshot per worker for both families, so they agree.
    let requests: Vec<_> = stats.iter().map(|s| s.requests()).collect();
    header(
        &mut out,
        "uringws_handshakes_total",
        "counter",
        "WebSocket upgrade attempts by result: the status answered, or timeout.",
    );
    for (worker, requests) in requests.iter().enumerate() {
        for (outcome, n) in requests {
            let result = match outcome {
                RequestOutcome::Handshake(status) => status.to_string(),
                RequestOutcome::HandshakeTimeout => "timeout".into(),
                RequestOutcome::Http(_) => continue,
            };
            let _ = writeln!(
                out,
                "uringws_handshakes_total{{worker=\"{worker}\",result=\"{result}\"}} {n}"
            );
        }
    }
    header(
        &mut out,
        "uringws_http_requests_total",
        "counter",
        "Plain HTTP requests by status.",
    );
    for (worker, requests) in requests.iter().enumerate() {
        for (outcome, n) in requests {
            if let RequestOutcome::Http(status) = outcome {
                let _ = writeln!(
                    out,
                    "uringws_http_requests_total{{worker=\"{worker}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
