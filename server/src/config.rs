//! The server's configuration: one [`Config`], read from a TOML file
//! (`--config`), then overridden field by field by environment variables
//! and command-line flags ([`Overrides`]; a flag beats its variable).
//! `--print-config` shows the result, secrets redacted.

use serde::{Deserialize, Serialize};
use std::{collections::HashSet, fmt, net::SocketAddr, path::PathBuf, time::Duration};
use uringws_engine::{BackpressurePolicy, EngineConfig};

use crate::{auth, origins::Origins};

/// A string that is a secret: `Debug` does not show it, so a logged
/// `Config` or `Overrides` cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// What `--print-config` shows instead of a secret.
const REDACTED: &str = "<redacted>";

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
    /// Largest body of a plain HTTP request, e.g. `POST /publish` (413 past it).
    pub max_body: usize,
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
    /// `/ws` needs a token. When false, connections without one may use
    /// every topic (a token that is given must still be good).
    pub auth_required: bool,
    /// Key of HS256 JWT tokens (at least 32 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<Secret>,
    /// Static tokens, each `"<token>:<topic patterns, comma-separated>"`.
    pub tokens: Vec<Secret>,
    /// Seconds a `/ws` connection without a token has to send `auth`.
    pub auth_timeout: f64,
    /// Bearer key of HTTP publishing; none: HTTP publishing is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_key: Option<Secret>,
    /// Allowed `Origin`s of WebSocket upgrades (`scheme://host[:port]`);
    /// empty: any. Requests without `Origin` are allowed.
    pub origins: Vec<String>,
    /// WebSocket connections open at once per IP (IPv6: per /64); 0: no limit.
    pub max_connections_per_ip: usize,
    /// WebSocket handshakes per second per IP, burst as many (at least 1);
    /// 0: no limit.
    pub handshakes_per_ip_per_second: f64,
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
            max_body: engine.max_body,
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
            auth_required: false,
            jwt_secret: None,
            tokens: Vec::new(),
            auth_timeout: 5.0,
            publish_key: None,
            origins: Vec::new(),
            max_connections_per_ip: 0,
            handshakes_per_ip_per_second: 0.0,
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
    /// Largest body of a plain HTTP request, e.g. POST /publish (413 past it).
    #[arg(long, env = "URINGWS_MAX_BODY")]
    max_body: Option<usize>,
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
    /// /ws needs a token (alone: true). Otherwise connections without one
    /// may use every topic; a token that is given must still be good.
    #[arg(long, env = "URINGWS_AUTH_REQUIRED", num_args = 0..=1, default_missing_value = "true")]
    auth_required: Option<bool>,
    /// Key of HS256 JWT tokens, at least 32 bytes. Prefer the variable or
    /// the file: flags show in the process list.
    #[arg(long, env = "URINGWS_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<Secret>,
    /// A static token, `<token>:<topic patterns, comma-separated>` (e.g.
    /// `reader:news,chat/*`); repeat, or separate with `;`.
    #[arg(
        long = "token",
        env = "URINGWS_TOKENS",
        value_delimiter = ';',
        hide_env_values = true
    )]
    tokens: Option<Vec<Secret>>,
    /// Seconds a /ws connection without a token has to send auth.
    #[arg(long, env = "URINGWS_AUTH_TIMEOUT")]
    auth_timeout: Option<f64>,
    /// Bearer key of HTTP publishing (none: refused).
    #[arg(long, env = "URINGWS_PUBLISH_KEY", hide_env_values = true)]
    publish_key: Option<Secret>,
    /// An allowed Origin of WebSocket upgrades, e.g. `https://example.com`;
    /// repeat or separate with commas. None given: any.
    #[arg(long = "origin", env = "URINGWS_ORIGINS", value_delimiter = ',')]
    origins: Option<Vec<String>>,
    /// WebSocket connections open at once per IP (0: no limit).
    #[arg(long, env = "URINGWS_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// WebSocket handshakes per second per IP (0: no limit).
    #[arg(long, env = "URINGWS_HANDSHAKES_PER_IP_PER_SECOND")]
    handshakes_per_ip_per_second: Option<f64>,
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
            max_body,
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
            auth_required,
            tokens,
            auth_timeout,
            origins,
            max_connections_per_ip,
            handshakes_per_ip_per_second,
            log_level,
        );
        if o.jwt_secret.is_some() {
            self.jwt_secret = o.jwt_secret;
        }
        if o.publish_key.is_some() {
            self.publish_key = o.publish_key;
        }
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
            ("auth_timeout", self.auth_timeout),
        ] {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("{name} must be a non-negative number of seconds"))?;
        }
        if !self.recv_buffers.is_power_of_two() {
            return Err("recv_buffers must be a power of two".into());
        }
        self.check_access()
    }

    fn check_access(&self) -> Result<(), String> {
        if self.auth_timeout <= 0.0 {
            return Err("auth_timeout must be more than 0 seconds".into());
        }
        let mut seen = HashSet::new();
        for entry in &self.tokens {
            let (token, _) = auth::parse_static(entry.expose())?;
            if !seen.insert(token) {
                return Err("tokens: a token is listed twice".into());
            }
        }
        // RFC 7518 3.2: an HS256 key must be at least as long as the hash.
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < 32)
        {
            return Err("jwt_secret must be at least 32 bytes".into());
        }
        if self
            .publish_key
            .as_ref()
            .is_some_and(|k| k.expose().is_empty())
        {
            return Err("publish_key must not be empty".into());
        }
        if self.auth_required && self.tokens.is_empty() && self.jwt_secret.is_none() {
            return Err("auth_required needs tokens or a jwt_secret".into());
        }
        Origins::new(&self.origins)?;
        let rate = self.handshakes_per_ip_per_second;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err("handshakes_per_ip_per_second must be a number, at least 0".into());
        }
        Ok(())
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.auth_timeout).unwrap_or_default()
    }

    /// The engine's part. Call after [`load`](Self::load) checked it.
    pub fn engine(&self) -> EngineConfig {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        let mut engine = EngineConfig {
            max_head: self.max_head,
            max_body: self.max_body,
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
        let secret = || Secret(REDACTED.into());
        Config {
            jwt_secret: self.jwt_secret.as_ref().map(|_| secret()),
            publish_key: self.publish_key.as_ref().map(|_| secret()),
            // The topics a token grants are not secret, and worth seeing.
            tokens: self
                .tokens
                .iter()
                .map(|entry| match entry.expose().split_once(':') {
                    Some((_, patterns)) => Secret(format!("{REDACTED}:{patterns}")),
                    None => secret(),
                })
                .collect(),
            ..self.clone()
        }
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
        for (args, want) in [
            (&["--auth-required"][..], "auth_required needs"),
            (&["--jwt-secret", "short"], "at least 32 bytes"),
            (&["--token", "nocolon"], "tokens"),
            (&["--token", "a:x", "--token", "a:y"], "twice"),
            (&["--origin", "http://x/"], "origins"),
            (&["--auth-timeout", "0"], "auth_timeout"),
            (&["--handshakes-per-ip-per-second=-1"], "handshakes"),
            (&["--publish-key", ""], "publish_key"),
        ] {
            let e = Config::load(None, overrides(args)).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-jwt";

    #[test]
    fn access_settings_from_flags() {
        let c = Config::load(
            None,
            overrides(&[
                "--auth-required",
                "--jwt-secret",
                SECRET,
                "--token",
                "demo:*;reader:news,chat/*",
                "--token",
                "x:y",
                "--origin",
                "http://a:1,https://b",
                "--max-connections-per-ip",
                "3",
                "--handshakes-per-ip-per-second",
                "0.5",
                "--auth-timeout",
                "2.5",
            ]),
        )
        .unwrap();
        assert!(c.auth_required);
        let tokens: Vec<&str> = c.tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["demo:*", "reader:news,chat/*", "x:y"]);
        assert_eq!(c.origins, ["http://a:1", "https://b"]);
        assert_eq!(c.max_connections_per_ip, 3);
        assert_eq!(c.handshakes_per_ip_per_second, 0.5);
        assert_eq!(c.auth_timeout(), Duration::from_millis(2500));
        let off = Config::load(None, overrides(&["--auth-required", "false"])).unwrap();
        assert!(!off.auth_required);
    }

    #[test]
    fn secrets_are_redacted_in_print_and_debug() {
        let c = Config::load(
            None,
            overrides(&[
                "--jwt-secret",
                SECRET,
                "--publish-key",
                "pk-secret",
                "--token",
                "tok-secret:news,chat/*",
            ]),
        )
        .unwrap();
        let printed = c.to_toml();
        let debug = format!("{c:?}");
        for text in [&printed, &debug] {
            for secret in [SECRET, "pk-secret", "tok-secret"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        assert!(printed.contains("jwt_secret = \"<redacted>\""), "{printed}");
        assert!(
            printed.contains("publish_key = \"<redacted>\""),
            "{printed}"
        );
        assert!(printed.contains("\"<redacted>:news,chat/*\""), "{printed}");
    }
}
