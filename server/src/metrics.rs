//! `GET /metrics` in the Prometheus text format (version 0.0.4), from every
//! worker's counters, labelled by worker.

use crate::bus::{Bus, Link};
use std::{fmt::Write, sync::atomic::Ordering};
use uringws_engine::{
    protocol::http::Response, EngineHandle, Histogram, RequestOutcome, WorkerStats,
    HISTOGRAM_BUCKETS,
};

pub fn response(engine: &EngineHandle, bus: Option<&Bus>) -> Response {
    let mut text = render(engine);
    if let Some(bus) = bus {
        render_bus(&mut text, bus);
    }
    Response::bytes(200, "text/plain; version=0.0.4; charset=utf-8", text)
}

/// The node's bus, one value each (the bus is per node, not per worker).
fn render_bus(out: &mut String, bus: &Bus) {
    let c = bus.counts();
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let up = |link: Link| u64::from(link == Link::Up);
    let families: [(&str, &str, &str, u64); 11] = [
        ("uringws_bus_publish_up", "gauge", "1 while the connection that publishes to Redis is up.", up(bus.publishing())),
        ("uringws_bus_subscribe_up", "gauge", "1 while the connection subscribed to Redis is up.", up(bus.subscribing())),
        ("uringws_bus_channels", "gauge", "Redis channels subscribed: topics with a subscriber on this node.", c.channels.load(Ordering::Relaxed) as u64),
        ("uringws_bus_published_total", "counter", "Publishes Redis took.", load(&c.published)),
        ("uringws_bus_publish_failed_total", "counter", "Publishes that did not reach Redis: down, too many waiting (bus_queue), or unanswered.", load(&c.publish_failed)),
        ("uringws_bus_received_total", "counter", "Messages from other nodes delivered here.", load(&c.received)),
        ("uringws_bus_missed_total", "counter", "Messages of other nodes on subscribed topics that never came (gaps in their numbers).", load(&c.missed)),
        ("uringws_bus_duplicates_total", "counter", "Messages from Redis dropped because they came before.", load(&c.duplicates)),
        ("uringws_bus_foreign_total", "counter", "Messages on the bus's channels not from a uringws node; dropped.", load(&c.foreign)),
        ("uringws_bus_reconnects_total", "counter", "Times a connection to Redis was lost.", load(&c.reconnects)),
        ("uringws_bus_node", "gauge", "This node's id on the bus, as a label.", 1),
    ];
    for (name, kind, help, value) in families {
        header(out, name, kind, help);
        if name == "uringws_bus_node" {
            let _ = writeln!(out, "{name}{{node=\"{:016x}\"}} {value}", bus.node());
        } else {
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

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
        name: "uringws_topics",
        kind: "gauge",
        help: "Topics with at least one subscriber on a worker.",
        value: |s| s.topics() as u64,
    },
    Family {
        name: "uringws_subscriptions",
        kind: "gauge",
        help: "Subscriptions of a worker's connections.",
        value: |s| s.subscriptions() as u64,
    },
    Family {
        name: "uringws_queued_bytes",
        kind: "gauge",
        help: "Bytes queued or in flight to a worker's connections (backpressure_limit bounds each).",
        value: WorkerStats::queued_bytes,
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
        name: "uringws_pings_sent_total",
        kind: "counter",
        help: "Pings sent to connections silent for ping_interval.",
        value: WorkerStats::pings_sent,
    },
    Family {
        name: "uringws_ping_timeouts_total",
        kind: "counter",
        help: "Connections closed with 1001 because a ping went unanswered.",
        value: WorkerStats::ping_timeouts,
    },
    Family {
        name: "uringws_idle_timeouts_total",
        kind: "counter",
        help: "Connections closed with 1001 after idle_timeout without a frame.",
        value: WorkerStats::idle_timeouts,
    },
    Family {
        name: "uringws_tls_failures_total",
        kind: "counter",
        help: "TLS connections ended by a failed handshake or record (plain HTTP to a TLS port, \
               an unknown SNI name, a client refusing the certificate); each got rustls's alert.",
        value: WorkerStats::tls_failures,
    },
    Family {
        name: "uringws_tls_handshakes_full_total",
        kind: "counter",
        help: "TLS handshakes completed in full (a new session).",
        value: WorkerStats::tls_handshakes_full,
    },
    Family {
        name: "uringws_tls_handshakes_resumed_total",
        kind: "counter",
        help: "TLS handshakes that resumed a session from a client's ticket.",
        value: WorkerStats::tls_handshakes_resumed,
    },
    Family {
        name: "uringws_tls_keyed_connections",
        kind: "gauge",
        help: "TLS connections holding expanded keys (a record within the last half second); the others hold raw key bytes only.",
        value: WorkerStats::tls_keyed_connections,
    },
    Family {
        name: "uringws_deflate_connections_total",
        kind: "counter",
        help: "WebSocket upgrades that agreed to permessage-deflate.",
        value: WorkerStats::deflate_connections,
    },
    Family {
        name: "uringws_deflate_messages_in_total",
        kind: "counter",
        help: "Messages received compressed (permessage-deflate) and inflated.",
        value: WorkerStats::deflate_messages_in,
    },
    Family {
        name: "uringws_deflate_messages_out_total",
        kind: "counter",
        help: "Messages sent compressed; a publication counts once per delivery.",
        value: WorkerStats::deflate_messages_out,
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
    histogram(
        &mut out,
        "uringws_handshake_duration_seconds",
        "From accepting a connection to its 101 queued.",
        &stats,
        WorkerStats::handshake_duration,
    );
    histogram(
        &mut out,
        "uringws_publish_delay_seconds",
        "From a publish on another worker (or outside the workers) to its frames queued to this worker's subscribers.",
        &stats,
        WorkerStats::publish_delay,
    );
    header(
        &mut out,
        "uringws_build_info",
        "gauge",
        "The running build; the value is always 1.",
    );
    let _ = writeln!(
        out,
        "uringws_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    process(&mut out);
    out
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    stats: &[std::sync::Arc<WorkerStats>],
    of: fn(&WorkerStats) -> &Histogram,
) {
    header(out, name, "histogram", help);
    for (worker, s) in stats.iter().enumerate() {
        let h = of(s);
        let counts = h.cumulative();
        for (le, n) in HISTOGRAM_BUCKETS.iter().zip(counts) {
            let _ = writeln!(out, "{name}_bucket{{worker=\"{worker}\",le=\"{le}\"}} {n}");
        }
        let total = counts[HISTOGRAM_BUCKETS.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{worker=\"{worker}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(out, "{name}_sum{{worker=\"{worker}\"}} {}", h.sum());
        let _ = writeln!(out, "{name}_count{{worker=\"{worker}\"}} {total}");
    }
}

/// The standard process metrics (Prometheus client libraries' names), from
/// /proc. Connections are direct descriptors of the rings, not in the fd
/// table: `uringws_connections` counts them.
fn process(out: &mut String) {
    // The Linux ABI's USER_HZ, which /proc's times are counted in.
    const TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // stat(5) numbers fields from 1, the first two being pid and comm.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        header(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", (utime + stime) / TICKS);
    }
    if let Some(rss) = field(24) {
        header(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * 4096.0);
    }
    if let Some(vsize) = field(23) {
        header(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        let _ = writeln!(out, "process_virtual_memory_bytes {vsize}");
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        header(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {}", boot + start / TICKS);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        header(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors (connections are not among them).",
        );
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        header(
            out,
            "process_max_fds",
            "gauge",
            "The soft open-files limit, which also bounds each worker's connections.",
        );
        let _ = writeln!(out, "process_max_fds {soft}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
