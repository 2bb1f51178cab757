//! The server's configuration: one [`Config`], read from a TOML file
//! (`--config`), then overridden field by field by environment variables
//! and command-line flags ([`Overrides`]; a flag beats its variable).
//! `--print-config` shows the result, secrets redacted.

use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::PathBuf, time::Duration};
use uringws_engine::{BackpressurePolicy, EngineConfig};

/// Every setting, with its default. Durations are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Worker threads; 0: one per core.
    pub workers: usize,
    /// Pin worker N to CPU N.
    pub pin: bool,
    /// Largest request head in bytes (431 past it).
    pub max_head: usize,
    /// Largest frame payload in bytes (close 1009 past it).
    pub max_frame_size: usize,
    /// Largest message in bytes (close 1009 past it).
    pub max_message_size: usize,
    /// Upgraded connections per worker (503 past it).
    pub max_connections_per_worker: usize,
    /// Bytes queued per connection before it is under backpressure.
    pub backpressure_limit: usize,
    /// What a message to a connection under backpressure does: "drop" it
    /// (counted) or "close" the connection with 1008.
    pub backpressure_policy: Policy,
    /// Seconds a client has to send its request head.
    pub handshake_timeout: f64,
    /// Seconds without a frame before a connection is closed (0: never).
    pub idle_timeout: f64,
    /// Seconds of silence before the server pings (0: never).
    pub ping_interval: f64,
    /// Seconds a graceful shutdown waits for connections to close.
    pub shutdown_timeout: f64,
    /// Receive buffers per worker (a power of two, at most 32768).
    pub recv_buffers: u16,
    /// Size of each receive buffer in bytes.
    pub recv_buffer_size: usize,
    /// Topics one `/ws` connection may subscribe to at once.
    pub max_subscriptions: usize,
    /// Log filter, e.g. `info` or `uringws_engine=debug`.
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Drop,
    Close,
}

impl Default for Config {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Config {
            listen: vec!["127.0.0.1:9001".parse().expect("a literal address")],
            workers: 0,
            pin: true,
            max_head: engine.max_head,
            max_frame_size: engine.decoder.max_frame_size,
            max_message_size: engine.decoder.max_message_size,
            max_connections_per_worker: engine.max_connections_per_worker,
            backpressure_limit: engine.backpressure_limit,
            backpressure_policy: Policy::Drop,
            handshake_timeout: engine.handshake_timeout.as_secs_f64(),
            idle_timeout: engine.idle_timeout.as_secs_f64(),
            ping_interval: engine.ping_interval.as_secs_f64(),
            shutdown_timeout: engine.shutdown_timeout.as_secs_f64(),
            recv_buffers: engine.recv_buffers,
            recv_buffer_size: engine.recv_buffer_size,
            max_subscriptions: 64,
            log_level: "info".into(),
        }
    }
}

/// The same fields as flags and environment variables; only those given
/// replace what the file (or the default) says.
#[derive(Debug, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on; repeat or separate with commas for several.
    #[arg(long, env = "URINGWS_LISTEN", value_delimiter = ',')]
    listen: Option<Vec<SocketAddr>>,
    /// Worker threads (0: one per core).
    #[arg(long, env = "URINGWS_WORKERS")]
    workers: Option<usize>,
    /// Pin worker N to CPU N (true/false).
    #[arg(long, env = "URINGWS_PIN")]
    pin: Option<bool>,
    /// Same as --pin false.
    #[arg(long)]
    no_pin: bool,
    /// Largest request head in bytes (431 past it).
    #[arg(long, env = "URINGWS_MAX_HEAD")]
    max_head: Option<usize>,
    /// Largest frame payload in bytes (close 1009 past it).
    #[arg(long, env = "URINGWS_MAX_FRAME")]
    max_frame_size: Option<usize>,
    /// Largest message in bytes (close 1009 past it).
    #[arg(long, env = "URINGWS_MAX_MESSAGE")]
    max_message_size: Option<usize>,
    /// Upgraded connections per worker (503 past it).
    #[arg(long, env = "URINGWS_MAX_CONNECTIONS")]
    max_connections_per_worker: Option<usize>,
    /// Bytes queued per connection before backpressure.
    #[arg(long, env = "URINGWS_BACKPRESSURE_LIMIT")]
    backpressure_limit: Option<usize>,
    /// drop: a message to a connection over the limit is dropped (and
    /// counted); close: the connection is closed with 1008.
    #[arg(long, env = "URINGWS_BACKPRESSURE_POLICY")]
    backpressure_policy: Option<Policy>,
    /// Same as --backpressure-policy close.
    #[arg(long)]
    close_on_backpressure: bool,
    /// Seconds a client has to send its request head.
    #[arg(long, env = "URINGWS_HANDSHAKE_TIMEOUT")]
    handshake_timeout: Option<f64>,
    /// Seconds without a frame before a connection is closed (0: never).
    #[arg(long, env = "URINGWS_IDLE_TIMEOUT")]
    idle_timeout: Option<f64>,
    /// Seconds of silence before the server pings (0: never).
    #[arg(long, env = "URINGWS_PING_INTERVAL")]
    ping_interval: Option<f64>,
    /// Seconds a graceful shutdown waits for connections to close.
    #[arg(long, env = "URINGWS_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: Option<f64>,
    /// Receive buffers per worker, shared by all its connections (a power
    /// of two, at most 32768); more absorb bursts from many connections.
    #[arg(long, env = "URINGWS_RECV_BUFFERS")]
    recv_buffers: Option<u16>,
    /// Size of each receive buffer in bytes.
    #[arg(long, env = "URINGWS_RECV_BUFFER_SIZE")]
    recv_buffer_size: Option<usize>,
    /// Topics one /ws connection may subscribe to at once.
    #[arg(long, env = "URINGWS_MAX_SUBSCRIPTIONS")]
    max_subscriptions: Option<usize>,
    /// Log filter, e.g. `info` or `uringws_engine=debug`.
    #[arg(long, env = "URINGWS_LOG")]
    log_level: Option<String>,
}

impl Config {
    /// The file at `path` (or the defaults), then `overrides`.
    pub fn load(path: Option<&PathBuf>, overrides: Overrides) -> Result<Config, String> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply(overrides);
        config.check()?;
        Ok(config)
    }

    fn apply(&mut self, o: Overrides) {
        macro_rules! take {
            ($($field:ident),* $(,)?) => {
                $(if let Some(value) = o.$field { self.$field = value; })*
            };
        }
        take!(
            listen,
            workers,
            pin,
            max_head,
            max_frame_size,
            max_message_size,
            max_connections_per_worker,
            backpressure_limit,
            backpressure_policy,
            handshake_timeout,
            idle_timeout,
            ping_interval,
            shutdown_timeout,
            recv_buffers,
            recv_buffer_size,
            max_subscriptions,
            log_level,
        );
        if o.no_pin {
            self.pin = false;
        }
        if o.close_on_backpressure {
            self.backpressure_policy = Policy::Close;
        }
    }

    /// What the types cannot say.
    fn check(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("listen: no address".into());
        }
        for (name, secs) in [
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
            ("ping_interval", self.ping_interval),
            ("shutdown_timeout", self.shutdown_timeout),
        ] {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("{name} must be a non-negative number of seconds"))?;
        }
        if !self.recv_buffers.is_power_of_two() {
            return Err("recv_buffers must be a power of two".into());
        }
        Ok(())
    }

    /// The engine's part. Call after [`load`](Self::load) checked it.
    pub fn engine(&self) -> EngineConfig {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        let mut engine = EngineConfig {
            max_head: self.max_head,
            max_connections_per_worker: self.max_connections_per_worker,
            backpressure_limit: self.backpressure_limit,
            backpressure_policy: match self.backpressure_policy {
                Policy::Drop => BackpressurePolicy::Drop,
                Policy::Close => BackpressurePolicy::Close,
            },
            handshake_timeout: secs(self.handshake_timeout),
            idle_timeout: secs(self.idle_timeout),
            ping_interval: secs(self.ping_interval),
            shutdown_timeout: secs(self.shutdown_timeout),
            recv_buffers: self.recv_buffers,
            recv_buffer_size: self.recv_buffer_size,
            ..EngineConfig::default()
        };
        engine.decoder.max_frame_size = self.max_frame_size;
        engine.decoder.max_message_size = self.max_message_size;
        engine
    }

    /// The effective configuration as TOML, secrets replaced.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.redacted()).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    fn redacted(&self) -> Config {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        o: Overrides,
    }

    fn overrides(args: &[&str]) -> Overrides {
        Cli::try_parse_from(std::iter::once("uringws").chain(args.iter().copied()))
            .unwrap()
            .o
    }

    #[test]
    fn the_example_file_is_the_defaults_and_round_trips() {
        let example: Config =
            toml::from_str(include_str!("../uringws.example.toml")).expect("example parses");
        assert_eq!(example, Config::default());
        let printed: Config = toml::from_str(&Config::default().to_toml()).unwrap();
        assert_eq!(printed, Config::default());
    }

    #[test]
    fn flags_override_the_file_and_only_where_given() {
        let dir = std::env::temp_dir().join(format!("uringws-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "workers = 3\nidle_timeout = 5\nmax_subscriptions = 7\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            overrides(&["--workers", "1", "--close-on-backpressure", "--no-pin"]),
        )
        .unwrap();
        assert_eq!(c.workers, 1);
        assert_eq!(c.idle_timeout, 5.0);
        assert_eq!(c.max_subscriptions, 7);
        assert_eq!(c.backpressure_policy, Policy::Close);
        assert!(!c.pin);
        assert_eq!(c.engine().idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_files_and_values_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("uringws-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "wokers = 3\n").unwrap();
        let e = Config::load(Some(&path), Overrides::default()).unwrap_err();
        assert!(e.contains("wokers"), "{e}");
        std::fs::write(&path, "idle_timeout = -1\n").unwrap();
        let e = Config::load(Some(&path), Overrides::default()).unwrap_err();
        assert!(e.contains("idle_timeout"), "{e}");
        let e = Config::load(Some(&dir.join("missing.toml")), Overrides::default()).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        let e = Config::load(None, overrides(&["--recv-buffers", "100"])).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
    }
}
