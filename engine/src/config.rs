//! The engine's settings: limits, timeouts, backpressure, ring sizes.

use std::time::Duration;
use uringws_protocol::{
    deflate::{ServerDeflate, MAX_WINDOW_BITS},
    DecoderConfig,
};

/// What to do with a connection whose send queue is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackpressurePolicy {
    /// Refuse the message ([`SendStatus::Dropped`](crate::SendStatus)) and
    /// keep the connection.
    Drop,
    /// Refuse the message and close the connection with 1008.
    Close,
}

/// permessage-deflate (RFC 7692), for clients that offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// What is agreed to and asked of clients; it decides whether
    /// connections share the worker's streams or keep their own.
    pub policy: ServerDeflate,
    /// Messages shorter than this go out uncompressed: deflating them
    /// costs more than the bytes it saves (128 by default: a 64 B JSON
    /// message saves 18 B for 3.8 µs, a 128 B one 58 B for 4.3 µs;
    /// `docs/decisions.md`).
    pub min_size: usize,
    /// zlib's compression level, 0..=9.
    pub level: u32,
    /// zlib's memory level (1..=9) of a connection's own compressor: its
    /// hash chains and match buffer take 2^(this + 9) bytes, beside twice
    /// the window. 1 with a window of 2^9: about 8 KB a connection.
    pub mem_level: u8,
}

impl Compression {
    /// No context takeover either way: each worker has one compressor and
    /// one decompressor for all its connections, and an idle connection
    /// holds nothing for compression.
    pub fn shared() -> Compression {
        Compression {
            policy: ServerDeflate::shared(),
            min_size: 128,
            level: 6,
            mem_level: 1,
        }
    }

    /// A compressor of its own for each connection, keeping context where
    /// the client allows it, with a window of 2^`window_bits`; clients are
    /// asked for no context takeover, so the worker's one decompressor
    /// still serves all (as uWebSockets' dedicated compressors do). For
    /// a decompressor per connection too, clear
    /// `policy.client_no_context_takeover`.
    pub fn dedicated(window_bits: u8) -> Compression {
        Compression {
            policy: ServerDeflate {
                client_no_context_takeover: true,
                // The worker's decompressor reads any window: asking the
                // client for a smaller one would only cost it compression.
                client_max_window_bits: MAX_WINDOW_BITS,
                ..ServerDeflate::dedicated(window_bits)
            },
            ..Compression::shared()
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest HTTP request head; a larger one is answered 431.
    pub max_head: usize,
    /// Largest body of a plain HTTP request ([`Handler::http`](crate::Handler::http));
    /// a larger one is answered 413.
    pub max_body: usize,
    /// Frame and message size limits (1009 past them); the message limit
    /// applies to what a compressed message inflates to.
    pub decoder: DecoderConfig,
    /// permessage-deflate; `None` declines it.
    pub compression: Option<Compression>,
    /// Upgraded connections per worker; past it upgrades get 503.
    pub max_connections_per_worker: usize,
    /// Bytes queued per connection before it counts as under backpressure.
    pub backpressure_limit: usize,
    pub backpressure_policy: BackpressurePolicy,
    /// A client must finish its request head within this (slowloris).
    pub handshake_timeout: Duration,
    /// An open connection with no frame received for this long is closed
    /// (1001). Zero: never.
    pub idle_timeout: Duration,
    /// Ping a connection silent for this long; close it if the pong does
    /// not come within the same time. Zero: no automatic pings.
    pub ping_interval: Duration,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// How long a graceful shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
    /// Answer pings with pongs without the handler's involvement.
    pub auto_pong: bool,
    /// Submission queue entries per ring.
    pub ring_entries: u32,
    /// Provided buffers per worker (a power of two) and their size. On
    /// kernels before 6.12 (no incremental buffer rings) buffers over
    /// 16 KiB are cut into 16 KiB ones, the same memory in all.
    pub recv_buffers: u16,
    pub recv_buffer_size: usize,
    /// Listen backlog.
    pub backlog: i32,
    /// Learn each peer's address at accept time (for logs and per-IP
    /// limits). Costs one accept submission per connection instead of one
    /// multishot accept per listener.
    pub peer_addresses: bool,
    /// Peers whose word on the client's address is taken: a connection
    /// from one may start with a PROXY protocol header (v1 or v2), and its
    /// requests' `X-Forwarded-For` is read (rightmost untrusted hop), to
    /// give [`Peer::addr`](crate::Peer::addr). Needs `peer_addresses`.
    /// Empty: every peer is the client.
    pub trusted_proxies: crate::TrustedProxies,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_head: 8192,
            max_body: 1 << 20,
            decoder: DecoderConfig::default(),
            compression: None,
            max_connections_per_worker: 1 << 20,
            backpressure_limit: 1 << 20,
            backpressure_policy: BackpressurePolicy::Drop,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            ping_interval: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            auto_pong: true,
            ring_entries: 4096,
            // Few large buffers: a frame rarely straddles two, so it is
            // read and echoed where it lies (see the ring's docs); 4 MiB
            // in all, as 256 × 16 KiB was.
            recv_buffers: 16,
            recv_buffer_size: 256 << 10,
            backlog: 4096,
            peer_addresses: true,
            trusted_proxies: crate::TrustedProxies::default(),
        }
    }
}
