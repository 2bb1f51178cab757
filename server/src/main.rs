//! The `uringws` binary: an echo server on `/` and `/echo`, a health check
//! on `/health`, on the io_uring engine.

use clap::Parser;
use mimalloc::MiMalloc;
use std::{net::SocketAddr, process::ExitCode, time::Duration};
use uringws_engine::{BackpressurePolicy, Engine, EngineConfig};

mod pubsub;
mod routes;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// io_uring WebSocket server.
#[derive(Debug, Parser)]
#[command(name = "uringws", version)]
struct Cli {
    /// Address to listen on; repeat for several.
    #[arg(
        long,
        env = "URINGWS_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:9001"
    )]
    listen: Vec<SocketAddr>,
    /// Worker threads, one per core by default.
    #[arg(long, env = "URINGWS_WORKERS")]
    workers: Option<usize>,
    /// Do not pin worker N to CPU N.
    #[arg(long, env = "URINGWS_NO_PIN")]
    no_pin: bool,
    /// Largest request head in bytes (431 past it).
    #[arg(long, env = "URINGWS_MAX_HEAD", default_value_t = 8192)]
    max_head: usize,
    /// Largest frame payload in bytes (close 1009 past it).
    #[arg(long, env = "URINGWS_MAX_FRAME", default_value_t = 16 << 20)]
    max_frame_size: usize,
    /// Largest message in bytes (close 1009 past it).
    #[arg(long, env = "URINGWS_MAX_MESSAGE", default_value_t = 64 << 20)]
    max_message_size: usize,
    /// Upgraded connections per worker (503 past it).
    #[arg(long, env = "URINGWS_MAX_CONNECTIONS", default_value_t = 1 << 20)]
    max_connections_per_worker: usize,
    /// Bytes queued per connection before backpressure.
    #[arg(long, env = "URINGWS_BACKPRESSURE_LIMIT", default_value_t = 1 << 20)]
    backpressure_limit: usize,
    /// Close a connection over the backpressure limit (1008) instead of
    /// dropping the message.
    #[arg(long, env = "URINGWS_CLOSE_ON_BACKPRESSURE")]
    close_on_backpressure: bool,
    /// Seconds a client has to send its request head.
    #[arg(long, env = "URINGWS_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Seconds without a frame before a connection is closed (0: never).
    #[arg(long, env = "URINGWS_IDLE_TIMEOUT", default_value_t = 120.0)]
    idle_timeout: f64,
    /// Seconds of silence before the server pings (0: never).
    #[arg(long, env = "URINGWS_PING_INTERVAL", default_value_t = 30.0)]
    ping_interval: f64,
    /// Seconds a graceful shutdown waits for connections to close.
    #[arg(long, env = "URINGWS_SHUTDOWN_TIMEOUT", default_value_t = 10.0)]
    shutdown_timeout: f64,
    /// Receive buffers per worker, shared by all its connections (a power
    /// of two, at most 32768); more absorb bursts from many connections.
    #[arg(long, env = "URINGWS_RECV_BUFFERS", default_value_t = 256)]
    recv_buffers: u16,
    /// Size of each receive buffer in bytes.
    #[arg(long, env = "URINGWS_RECV_BUFFER_SIZE", default_value_t = 16 << 10)]
    recv_buffer_size: usize,
    /// Topics one `/ws` connection may subscribe to at once.
    #[arg(long, env = "URINGWS_MAX_SUBSCRIPTIONS", default_value_t = 64)]
    max_subscriptions: usize,
    /// Log filter, e.g. `info` or `uringws_engine=debug`.
    #[arg(long, env = "URINGWS_LOG", default_value = "info")]
    log_level: String,
}

impl Cli {
    fn engine_config(&self) -> Result<EngineConfig, String> {
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| format!("--{name} must be a non-negative number of seconds"))
        };
        let mut config = EngineConfig {
            max_head: self.max_head,
            max_connections_per_worker: self.max_connections_per_worker,
            backpressure_limit: self.backpressure_limit,
            backpressure_policy: if self.close_on_backpressure {
                BackpressurePolicy::Close
            } else {
                BackpressurePolicy::Drop
            },
            handshake_timeout: secs("handshake-timeout", self.handshake_timeout)?,
            idle_timeout: secs("idle-timeout", self.idle_timeout)?,
            ping_interval: secs("ping-interval", self.ping_interval)?,
            shutdown_timeout: secs("shutdown-timeout", self.shutdown_timeout)?,
            recv_buffers: self.recv_buffers,
            recv_buffer_size: self.recv_buffer_size,
            ..EngineConfig::default()
        };
        config.decoder.max_frame_size = self.max_frame_size;
        config.decoder.max_message_size = self.max_message_size;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("uringws: bad --log-level {:?}: {e}", cli.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = match cli.engine_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("uringws: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Engine::builder().config(config).pin(!cli.no_pin);
    for addr in &cli.listen {
        builder = builder.listen(*addr);
    }
    if let Some(workers) = cli.workers {
        builder = builder.workers(workers);
    }
    let limits = pubsub::Limits {
        max_subscriptions: cli.max_subscriptions,
    };
    let engine = match builder.start(move |context| routes::Routes::new(context, limits)) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("uringws: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in engine.local_addrs() {
        tracing::info!(
            "listening on ws://{addr} (echo on / and /echo, pub/sub on /ws, health on /health)"
        );
    }
    match engine.run_until_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uringws: {e}");
            ExitCode::FAILURE
        }
    }
}
