//! The server's configuration: one [`Config`], read from a TOML file
//! (`--config`), then overridden setting by setting by environment
//! variables (`URINGWS_KEY`) and command-line flags (`--key`); a flag beats
//! its variable. Each setting is declared once, in the list below: its
//! field, default, flag, variable, `--help` text and, for the engine's
//! settings, its place in [`EngineConfig`](uringws_engine::EngineConfig)
//! all come from there. `--print-config` shows the result, secrets
//! redacted.

mod environment;
mod flags;
mod setting;
mod value;

use std::{collections::HashSet, ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

use crate::{auth, origins::Origins};
use setting::settings;

pub use environment::CONFIG_VARIABLE;
pub use flags::Overrides;
pub use value::{BusUrl, Compression, LogFormat, Policy, Secret, StaticToken};

settings! {
    /// Addresses to listen on.
    listen: Vec<SocketAddr> = vec![SocketAddr::from(([127, 0, 0, 1], 9001))];
    /// Addresses to listen on with TLS (`wss://`, `https://`), beside
    /// `listen` (set `listen = []` for TLS only).
    tls_listen: Vec<SocketAddr> = Vec::new();
    /// PEM files, each a certificate chain for `tls_listen` whose key is
    /// at the same place in `tls_key`. A client gets the first valid for
    /// the name it asks for (SNI), or the first if it sends none; an
    /// unknown name is refused. Read again on SIGHUP.
    tls_cert: Vec<String> = Vec::new();
    /// PEM files of the private keys of `tls_cert`, in the same order.
    tls_key: Vec<String> = Vec::new();
    /// Worker threads, each with its own io_uring and listener; 0: one per
    /// core.
    workers: usize = 0;
    /// Pin worker N to CPU N.
    pin: bool = true;
    /// Largest request head in bytes (431 past it).
    max_head: usize => engine.max_head;
    /// Largest body of a plain HTTP request, e.g. `POST /publish` (413 past
    /// it).
    max_body: usize => engine.max_body;
    /// Largest frame payload in bytes (close 1009 past it).
    max_frame_size: usize => engine.decoder.max_frame_size;
    /// Largest message in bytes (close 1009 past it).
    max_message_size: usize => engine.decoder.max_message_size;
    /// permessage-deflate for clients that offer it (browsers do): `off`,
    /// `shared` (no context takeover: one compressor and one decompressor
    /// per worker, nothing held by an idle connection) or `dedicated`
    /// (context takeover where the client allows it: better compression,
    /// streams held by each connection).
    compression: Compression = Compression::Shared;
    /// The largest window the server compresses with, as a power of two
    /// (9 to 15); none: 15 with `shared`, 9 with `dedicated` (a compressor
    /// of 9 KB a connection; 2^15 would be 138 KB). With
    /// `compression_dedicated_decompressor`, clients are asked to keep to
    /// it too.
    compression_window_bits: Option<u8> = None;
    /// Messages shorter than this many bytes go out uncompressed.
    compression_min_size: usize = 128;
    /// zlib's compression level, 0 (store) to 9 (smallest).
    compression_level: u8 = 6;
    /// zlib's memory level of each connection's compressor with
    /// `dedicated`, 1 to 9: 2^(9 + this) bytes beside twice the window
    /// (1 at window 2^9: about 8 KB a connection).
    compression_mem_level: u8 = 1;
    /// With `dedicated`, a decompressor per connection too (clients keep
    /// their context); otherwise clients are asked not to, and each
    /// worker's one decompressor serves all.
    compression_dedicated_decompressor: bool = false;
    /// Upgraded connections per worker (503 past it).
    max_connections_per_worker: usize => engine.max_connections_per_worker;
    /// Bytes queued per connection before it is under backpressure.
    backpressure_limit: usize => engine.backpressure_limit;
    /// What a message to a connection under backpressure does: `drop` it
    /// (counted) or `close` the connection with 1008.
    backpressure_policy: Policy => engine.backpressure_policy;
    /// Seconds a client has to send its request head.
    handshake_timeout: f64 => engine.handshake_timeout;
    /// Seconds without a frame before a connection is closed (0: never).
    idle_timeout: f64 => engine.idle_timeout;
    /// Seconds of silence before the server pings (0: never).
    ping_interval: f64 => engine.ping_interval;
    /// Seconds a graceful shutdown waits for connections to close.
    shutdown_timeout: f64 => engine.shutdown_timeout;
    /// Receive buffers per worker, shared by all its connections (a power
    /// of two, at most 32768). Their total absorbs bursts; large buffers
    /// let frames be read where they arrived, without a copy.
    recv_buffers: u16 => engine.recv_buffers;
    /// Size of each receive buffer in bytes (on kernels before 6.12, cut
    /// into 16 KiB buffers).
    recv_buffer_size: usize => engine.recv_buffer_size;
    /// Submission queue entries of each worker's io_uring (8 to 16384; the
    /// completion queue has four times as many). A ring costs 128 B of
    /// kernel memory mapped into the server per entry, 512 KiB at the
    /// default: shrink it where many workers each hold few busy
    /// connections.
    ring_entries: u32 => engine.ring_entries;
    /// Topics one `/ws` connection may subscribe to at once.
    max_subscriptions: usize = 64;
    /// `/ws` needs a token. When false, connections without one may
    /// subscribe to every topic (a token that is given must still be good).
    auth_required: bool = false;
    /// Connections without a token (when `auth_required` is false) may
    /// also publish to every topic. Off: publishing needs a token that
    /// grants it.
    anonymous_publish: bool = false;
    /// Key of HS256 JWT tokens (at least 32 bytes).
    jwt_secret: Option<Secret> = None;
    /// Static tokens, each `<token>:<subscribe patterns>[|<publish
    /// patterns>]`, lists comma-separated, e.g. `reader:news,chat/*` or
    /// `writer:chat/*|chat/*`.
    tokens: Vec<StaticToken> = Vec::new();
    /// Seconds a `/ws` connection without a token has to send `auth`.
    auth_timeout: f64 = 5.0;
    /// Bearer key of HTTP publishing; none: HTTP publishing is refused.
    publish_key: Option<Secret> = None;
    /// Allowed `Origin`s of WebSocket upgrades (`scheme://host[:port]`,
    /// e.g. `https://example.com`); none: same-origin (the Origin's host
    /// and port are the request's `Host`); `*`: any. Requests without
    /// `Origin` (not from a browser) are allowed.
    origins: Vec<String> = Vec::new();
    /// WebSocket connections open at once per IP (IPv6: per /64); 0: no
    /// limit.
    max_connections_per_ip: usize = 0;
    /// WebSocket handshakes per second per IP, burst as many (at least 1);
    /// 0: no limit.
    handshakes_per_ip_per_second: f64 = 0.0;
    /// Proxies (addresses or CIDR networks, e.g. `10.0.0.0/8`) whose word
    /// on the client's address is taken: a connection from one may start
    /// with a PROXY protocol header (v1 or v2), and its requests'
    /// `X-Forwarded-For` is read (the rightmost address that is not a
    /// trusted proxy), so per-IP limits and logs see the client. From
    /// anyone else both are ignored (a PROXY header is a bad request).
    trusted_proxies: Vec<String> = Vec::new();
    /// Redis to run several nodes as one:
    /// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`. Every publish goes to
    /// Redis once, and this node subscribes to a topic's channel while it
    /// has a subscriber to it; none: a single node. Redis pub/sub ignores
    /// the database number, so a DB other than 0 joins the channel names
    /// (`bus_prefix` + `DB:`) to keep nodes on different DBs apart.
    bus: Option<BusUrl> = None;
    /// `bus` is a node of a Redis 7 cluster, and topics go over sharded
    /// pub/sub (SPUBLISH, SSUBSCRIBE): each channel lives on the shard
    /// that owns its slot, so publishes spread over the cluster rather than
    /// reaching every node of it.
    bus_sharded: bool = false;
    /// Start of every Redis channel name, before the topic: nodes that
    /// should share topics share it.
    bus_prefix: String = "uringws:".into();
    /// Publishes waiting for Redis at most; past it (Redis slower than
    /// the publishers) they are dropped and counted, as they are while
    /// Redis is down.
    bus_queue: usize = 65536;
    /// Address of a separate listener for `/health` and `/metrics` (then
    /// not served on `listen`), e.g. `127.0.0.1:9090`; none: both on
    /// `listen`.
    admin_listen: Option<SocketAddr> = None;
    /// Log filter, e.g. `info` or `uringws_engine=debug`.
    log_level: String = "info".into();
    /// Log lines as `text` (coloured only on a terminal, and never with
    /// `NO_COLOR` set) or `json` (one object per line).
    log_format: LogFormat = LogFormat::Text;
}

impl Config {
    /// The file at `path` (or the defaults), then the `URINGWS_` variables
    /// of `environment`, then `flags`, checked.
    pub fn load(
        path: Option<&PathBuf>,
        environment: impl IntoIterator<Item = (OsString, OsString)>,
        flags: Overrides,
    ) -> Result<Config, String> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        environment::apply(&mut config, environment)?;
        flags.apply(&mut config)?;
        config.check()?;
        Ok(config)
    }

    /// What the types cannot say.
    fn check(&self) -> Result<(), String> {
        for setting in SETTINGS {
            setting.check(self)?;
        }
        if self.listen.is_empty() && self.tls_listen.is_empty() {
            return Err("listen: no address (and no tls_listen)".into());
        }
        if self.tls_listen.is_empty() != self.tls_cert.is_empty() {
            return Err("tls_listen needs tls_cert and tls_key, and they need tls_listen".into());
        }
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(format!(
                "tls_cert and tls_key must name as many files ({} and {} given)",
                self.tls_cert.len(),
                self.tls_key.len()
            ));
        }
        if !self.recv_buffers.is_power_of_two() {
            return Err("recv_buffers must be a power of two".into());
        }
        if !(8..=16384).contains(&self.ring_entries) {
            return Err("ring_entries must be from 8 to 16384".into());
        }
        if self
            .compression_window_bits
            .is_some_and(|bits| !(9..=15).contains(&bits))
        {
            return Err("compression_window_bits must be from 9 to 15".into());
        }
        if self.compression_level > 9 {
            return Err("compression_level must be from 0 to 9".into());
        }
        if !(1..=9).contains(&self.compression_mem_level) {
            return Err("compression_mem_level must be from 1 to 9".into());
        }
        self.check_access()
    }

    fn check_access(&self) -> Result<(), String> {
        if self.auth_timeout <= 0.0 {
            return Err("auth_timeout must be more than 0 seconds".into());
        }
        let mut seen = HashSet::new();
        for entry in &self.tokens {
            let entry = auth::parse_static(entry.expose())?;
            if !seen.insert(entry.token) {
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
        if self.auth_required && self.anonymous_publish {
            return Err(
                "anonymous_publish is for connections without a token, which auth_required refuses"
                    .into(),
            );
        }
        if self.auth_required && self.tokens.is_empty() && self.jwt_secret.is_none() {
            return Err("auth_required needs tokens or a jwt_secret".into());
        }
        Origins::new(&self.origins)?;
        if self.bus_sharded && self.bus.is_none() {
            return Err("bus_sharded needs a bus (a node of the Redis cluster)".into());
        }
        uringws_engine::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| format!("trusted_proxies: {e}"))?;
        Ok(())
    }

    /// What [`engine`](Self::engine) takes from settings that are not
    /// one engine field each.
    fn engine_rest(&self, engine: &mut uringws_engine::EngineConfig) {
        let bits = self
            .compression_window_bits
            .unwrap_or(match self.compression {
                Compression::Dedicated => 9,
                _ => 15,
            });
        let mut compression = match self.compression {
            Compression::Off => None,
            Compression::Shared => Some(uringws_engine::Compression::shared()),
            Compression::Dedicated => Some(uringws_engine::Compression::dedicated(bits)),
        };
        if let Some(compression) = &mut compression {
            compression.policy.server_max_window_bits = bits;
            compression.min_size = self.compression_min_size;
            compression.level = u32::from(self.compression_level);
            compression.mem_level = self.compression_mem_level;
            // A client's window matters only to a decompressor of its own:
            // the worker's reads any.
            if self.compression == Compression::Dedicated && self.compression_dedicated_decompressor
            {
                compression.policy.client_no_context_takeover = false;
                compression.policy.client_max_window_bits = bits;
            }
        }
        engine.compression = compression;
        // Checked by `check`.
        engine.trusted_proxies =
            uringws_engine::TrustedProxies::parse(&self.trusted_proxies).unwrap_or_default();
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.auth_timeout).unwrap_or_default()
    }

    /// The effective configuration as TOML, secrets replaced.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.redacted()).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use uringws_engine::protocol::deflate::ServerDeflate;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        o: Overrides,
    }

    fn no_env() -> Vec<(OsString, OsString)> {
        Vec::new()
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect()
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
        // Defaults would hide a setting the file forgot: each is there,
        // set or commented out.
        let text = include_str!("../uringws.example.toml");
        for s in SETTINGS {
            let line = |l: &str| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{} =", s.key))
            };
            assert!(
                text.lines().any(line),
                "{} is not in the example file",
                s.key
            );
        }
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
            no_env(),
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
        let e = Config::load(Some(&path), no_env(), Overrides::default()).unwrap_err();
        assert!(e.contains("wokers"), "{e}");
        std::fs::write(&path, "idle_timeout = -1\n").unwrap();
        let e = Config::load(Some(&path), no_env(), Overrides::default()).unwrap_err();
        assert!(e.contains("idle_timeout"), "{e}");
        let e = Config::load(
            Some(&dir.join("missing.toml")),
            no_env(),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        let e = Config::load(None, no_env(), overrides(&["--recv-buffers", "100"])).unwrap_err();
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
            let e = Config::load(None, no_env(), overrides(args)).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-jwt";

    #[test]
    fn access_settings_from_flags() {
        let c = Config::load(
            None,
            no_env(),
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
        let tokens: Vec<&str> = c.tokens.iter().map(StaticToken::expose).collect();
        assert_eq!(tokens, ["demo:*", "reader:news,chat/*", "x:y"]);
        assert_eq!(c.origins, ["http://a:1", "https://b"]);
        assert_eq!(c.max_connections_per_ip, 3);
        assert_eq!(c.handshakes_per_ip_per_second, 0.5);
        assert_eq!(c.auth_timeout(), Duration::from_millis(2500));
        let off = Config::load(None, no_env(), overrides(&["--auth-required", "false"])).unwrap();
        assert!(!off.auth_required);
    }

    #[test]
    fn secrets_are_redacted_in_print_and_debug() {
        let c = Config::load(
            None,
            no_env(),
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
        let flags = format!(
            "{:?}",
            overrides(&["--jwt-secret", SECRET, "--token", "tok-secret:news"])
        );
        for text in [&printed, &debug, &flags] {
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

    #[test]
    fn bus_urls_are_checked_and_their_passwords_never_shown() {
        let c = Config::load(
            None,
            env(&[("URINGWS_BUS", "redis://app:bus-secret@10.0.0.5:6380/2")]),
            Overrides::default(),
        )
        .unwrap();
        let url = c.bus.as_ref().unwrap();
        assert_eq!(url.expose(), "redis://app:bus-secret@10.0.0.5:6380/2");
        assert_eq!(url.shown(), "redis://app:<redacted>@10.0.0.5:6380/2");
        let printed = c.to_toml();
        assert!(
            printed.contains(r#"bus = "redis://app:<redacted>@10.0.0.5:6380/2""#),
            "{printed}"
        );
        assert!(!format!("{c:?}").contains("bus-secret"));
        let plain =
            Config::load(None, no_env(), overrides(&["--bus", "redis://127.0.0.1"])).unwrap();
        assert_eq!(plain.bus.unwrap().shown(), "redis://127.0.0.1");
        for bad in [
            "127.0.0.1:6379",
            "http://h:1",
            "rediss://:bus-secret@h",
            "redis://:bus-secret@h:notaport",
        ] {
            let e =
                Config::load(None, env(&[("URINGWS_BUS", bad)]), Overrides::default()).unwrap_err();
            assert!(e.contains("bus must be a Redis URL"), "{e}");
            assert!(!e.contains("bus-secret"), "{e}");
        }
        let file = std::env::temp_dir().join(format!("uringws-bus-{}.toml", std::process::id()));
        std::fs::write(&file, "bus = \"tcp://h\"\n").unwrap();
        let e = Config::load(Some(&file), no_env(), Overrides::default()).unwrap_err();
        assert!(e.contains("bus must be a Redis URL"), "{e}");
        let _ = std::fs::remove_file(&file);
    }

    fn by_key(key: &str) -> &'static setting::Setting {
        SETTINGS.iter().find(|s| s.key == key).expect("a setting")
    }

    #[test]
    fn variables_are_the_keys_upper_cased_and_sit_between_file_and_flags() {
        for s in SETTINGS {
            assert_eq!(s.variable(), format!("URINGWS_{}", s.key.to_uppercase()));
            assert_eq!(s.flag(), s.key.replace('_', "-"));
        }
        let dir = std::env::temp_dir().join(format!("uringws-config-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "max_frame_size = 3\nworkers = 3\nidle_timeout = 3\n").unwrap();
        let vars = env(&[
            ("URINGWS_MAX_FRAME_SIZE", "5"),
            ("URINGWS_WORKERS", "5"),
            ("PATH", "/bin"),
        ]);
        let c = Config::load(Some(&path), vars, overrides(&["--workers", "7"])).unwrap();
        assert_eq!(c.max_frame_size, 5);
        assert_eq!(c.engine().decoder.max_frame_size, 5);
        assert_eq!(c.workers, 7);
        assert_eq!(c.idle_timeout, 3.0);
    }

    #[test]
    fn an_unknown_variable_is_refused_with_a_hint_and_the_valid_names() {
        for (name, hint) in [
            ("URINGWS_MAX_FRAME", "did you mean URINGWS_MAX_FRAME_SIZE?"),
            (
                "URINGWS_LOG",
                "did you mean URINGWS_LOG_LEVEL or URINGWS_LOG_FORMAT?",
            ),
            (
                "URINGWS_MAX_CONNECTIONS",
                "URINGWS_MAX_CONNECTIONS_PER_WORKER or URINGWS_MAX_CONNECTIONS_PER_IP",
            ),
            ("URINGWS_WOKERS", "URINGWS_WOKERS\n"),
        ] {
            let e = Config::load(None, env(&[(name, "1")]), Overrides::default()).unwrap_err();
            assert!(e.contains(name) && e.contains(hint), "{e}");
            for s in SETTINGS {
                assert!(e.contains(&s.variable()), "{} not listed: {e}", s.key);
            }
            assert!(e.contains(CONFIG_VARIABLE), "{e}");
        }
        let c = Config::load(
            None,
            env(&[(CONFIG_VARIABLE, "elsewhere.toml")]),
            Overrides::default(),
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn a_bad_value_names_where_it_came_from_the_key_and_the_type() {
        for (vars, args, want) in [
            (
                &[("URINGWS_WORKERS", "many")][..],
                &[][..],
                r#"URINGWS_WORKERS "many": workers must be a whole number"#,
            ),
            (
                &[],
                &["--recv-buffers", "70000"],
                r#"--recv-buffers "70000": recv_buffers must be a whole number from 0 to 65535"#,
            ),
            (
                &[("URINGWS_PIN", "yes")],
                &[],
                r#"URINGWS_PIN "yes": pin must be true or false"#,
            ),
            (
                &[],
                &["--idle-timeout", "-1"],
                r#"--idle-timeout "-1": idle_timeout must be a number, 0 or more"#,
            ),
            (
                &[("URINGWS_PING_INTERVAL", "NaN")],
                &[],
                "ping_interval must be a number",
            ),
            (
                &[],
                &["--backpressure-policy", "block"],
                "backpressure_policy must be drop or close",
            ),
            (
                &[("URINGWS_LISTEN", "127.0.0.1:1,nowhere")],
                &[],
                r#"URINGWS_LISTEN "nowhere": listen must be an IP address and port"#,
            ),
        ] {
            let e = Config::load(None, env(vars), overrides(args)).unwrap_err();
            assert!(e.contains(want), "{vars:?} {args:?}: {e}");
        }
    }

    #[test]
    fn lists_split_and_repeat_and_an_empty_variable_clears_one() {
        let c = Config::load(
            None,
            env(&[
                ("URINGWS_ORIGINS", "http://a:1,https://b"),
                ("URINGWS_TOKENS", "a:x,y;b:z"),
            ]),
            overrides(&["--listen", "127.0.0.1:1,127.0.0.1:2", "--listen", "[::1]:3"]),
        )
        .unwrap();
        assert_eq!(c.origins, ["http://a:1", "https://b"]);
        let tokens: Vec<&str> = c.tokens.iter().map(StaticToken::expose).collect();
        assert_eq!(tokens, ["a:x,y", "b:z"]);
        assert_eq!(c.listen.len(), 3);
        let dir = std::env::temp_dir().join(format!("uringws-config-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "origins = [\"http://a\"]\n").unwrap();
        let c = Config::load(
            Some(&path),
            env(&[("URINGWS_ORIGINS", "")]),
            Overrides::default(),
        )
        .unwrap();
        assert!(c.origins.is_empty());
    }

    #[test]
    fn shorthands_and_aliases_name_settings_and_beat_their_flag() {
        for (flag, key) in flags::ALIASES {
            assert!(SETTINGS.iter().any(|s| s.key == *key), "--{flag}: no {key}");
        }
        for (flag, key, _) in flags::SHORTHANDS {
            assert!(SETTINGS.iter().any(|s| s.key == *key), "--{flag}: no {key}");
        }
        let c = Config::load(
            None,
            env(&[("URINGWS_PIN", "true")]),
            overrides(&[
                "--pin",
                "true",
                "--no-pin",
                "--backpressure-policy",
                "drop",
                "--close-on-backpressure",
            ]),
        )
        .unwrap();
        assert!(!c.pin);
        assert_eq!(c.backpressure_policy, Policy::Close);
    }

    #[test]
    fn help_shows_every_default_from_the_code_and_every_variable() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        let defaults = Config::default();
        for s in SETTINGS {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(s.flag().as_str()))
                .unwrap_or_else(|| panic!("no --{}", s.flag()));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(help.contains(&format!("[env: {}]", s.variable())), "{help}");
            match s.shown(&defaults) {
                Some(default) => {
                    assert!(help.ends_with(&format!("[default: {default}]")), "{help}")
                }
                None => assert!(!help.contains("[default:"), "{help}"),
            }
        }
        assert!(by_key("ping_interval")
            .help(&defaults)
            .ends_with("[default: 30]"));
        assert!(by_key("listen")
            .help(&defaults)
            .ends_with("[default: 127.0.0.1:9001]"));
    }

    #[test]
    fn the_engine_gets_its_settings_and_its_defaults_are_the_engines() {
        // But for compression, which an embedder turns on and the server
        // has on.
        let engine = uringws_engine::EngineConfig {
            compression: Some(uringws_engine::Compression::shared()),
            ..Default::default()
        };
        assert_eq!(
            format!("{:?}", Config::default().engine()),
            format!("{engine:?}")
        );
        let c = Config::load(
            None,
            no_env(),
            overrides(&[
                "--max-message-size",
                "9",
                "--handshake-timeout",
                "0.25",
                "--close-on-backpressure",
                "--recv-buffers",
                "64",
            ]),
        )
        .unwrap();
        let engine = c.engine();
        assert_eq!(engine.decoder.max_message_size, 9);
        assert_eq!(engine.handshake_timeout, Duration::from_millis(250));
        assert_eq!(
            engine.backpressure_policy,
            uringws_engine::BackpressurePolicy::Close
        );
        assert_eq!(engine.recv_buffers, 64);
        let c = Config::load(
            None,
            env(&[("URINGWS_COMPRESSION", "dedicated")]),
            overrides(&["--compression-window-bits", "10", "--compression-level=1"]),
        )
        .unwrap();
        let compression = c.engine().compression.unwrap();
        assert_eq!(
            compression.policy,
            ServerDeflate {
                client_no_context_takeover: true,
                client_max_window_bits: 15,
                ..ServerDeflate::dedicated(10)
            }
        );
        let c = Config::load(
            None,
            no_env(),
            overrides(&[
                "--compression=dedicated",
                "--compression-window-bits=10",
                "--compression-dedicated-decompressor",
            ]),
        )
        .unwrap();
        assert_eq!(
            c.engine().compression.unwrap().policy,
            ServerDeflate::dedicated(10)
        );
        assert_eq!((compression.level, compression.min_size), (1, 128));
        let c = Config::load(None, no_env(), overrides(&["--compression", "off"])).unwrap();
        assert_eq!(c.engine().compression, None);
        for (args, want) in [
            (&["--compression", "on"][..], "compression"),
            (
                &["--compression-window-bits", "8"],
                "compression_window_bits",
            ),
            (&["--compression-level", "10"], "compression_level"),
        ] {
            let e = Config::load(None, no_env(), overrides(args)).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn the_readme_lists_every_setting_with_its_flag_variable_and_default() {
        let readme = include_str!("../README.md");
        let defaults = Config::default();
        for s in SETTINGS {
            let row = format!("| `{}` | `--{}` | `{}` | ", s.key, s.flag(), s.variable());
            let line = readme
                .lines()
                .find(|line| line.starts_with(&row))
                .unwrap_or_else(|| panic!("README has no row {row}"));
            let default = match s.shown(&defaults) {
                Some(shown) => format!("`{shown}`"),
                None => "none".into(),
            };
            assert!(
                line[row.len()..].starts_with(&format!("{default} |")),
                "{line}"
            );
        }
    }
}
