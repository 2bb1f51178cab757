//! `uringws-load`: load-test any WebSocket server over io_uring.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mimalloc::MiMalloc;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uringws_load::client::{self, Live, Measured, Outcome, Plan, Scenario};
use uringws_load::deflate::DeflateOffer;
use uringws_load::duration::{self, serialize_secs as secs};
use uringws_load::fanout::{Fanout, FanoutConfig, Phase};
use uringws_load::report::{self, CpuTime, Latency, Summary};
use uringws_load::scenarios::{Churn, Connect, Echo, Hold, Payload};
use uringws_load::series::Window;
use uringws_load::target::{self, SourceRange, Target};
use uringws_load::tls::TlsConfig;
use uringws_protocol::deflate::ClientDeflate;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Load-test a WebSocket server: connection storms, idle holds, echo,
/// churn, pub/sub fan-out.
///
/// Durations take units: 500ms, 10s, 2m, 1h, 1m30s; a bare number is
/// seconds.
#[derive(Parser, Serialize)]
#[command(name = "uringws-load", version)]
struct Cli {
    /// Worker threads, each with its own io_uring and pinned to its own
    /// core (default: one per CPU this process may use).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Local source addresses, e.g. 127.0.0.2-127.0.0.40: each address has
    /// its own ~28k ephemeral ports towards one target. Plan on about 12k
    /// connections per address: the kernel hands out the even half of the
    /// range first, and past it every connect searches port by port.
    #[arg(long, global = true)]
    connect_from: Option<String>,
    /// Time allowed for connect + upgrade (fanout in uringws mode: also
    /// for each subscribe's ack).
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    #[serde(rename = "timeout_s", serialize_with = "secs")]
    timeout: Duration,
    /// wss://: trust the CA certificates in this PEM file, and only them
    /// (no system roots are used).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "insecure")]
    #[serde(serialize_with = "lossy_path")]
    ca: Option<PathBuf>,
    /// wss://: accept any server certificate, for any name (the
    /// handshake's signatures are still checked).
    #[arg(long, global = true)]
    insecure: bool,
    /// wss://: the server name to send (SNI) and to check the certificate
    /// against, instead of each URL's host.
    #[arg(long, global = true, value_name = "NAME")]
    sni: Option<String>,
    /// wss://: resume TLS sessions (the tickets a server sends, kept per
    /// worker), as returning browsers do; without it every connection is a
    /// full handshake.
    #[arg(long, global = true)]
    resume: bool,
    /// Offer permessage-deflate (RFC 7692): where the server agrees, data
    /// messages are compressed as sent and inflated as received. A server
    /// that declines is counted ("deflate agreed on N of M connections"),
    /// not a failure; one whose answer breaks the RFC fails the connection.
    #[arg(long, global = true)]
    deflate: bool,
    /// --deflate: compress each message on its own, and say so
    /// (client_no_context_takeover); one compressor per worker then serves
    /// every connection, instead of one per connection that sends.
    #[arg(long, global = true, requires = "deflate")]
    deflate_client_no_context_takeover: bool,
    /// --deflate: ask the server to compress each message on its own
    /// (server_no_context_takeover); one decompressor per worker then
    /// serves every connection.
    #[arg(long, global = true, requires = "deflate")]
    deflate_server_no_context_takeover: bool,
    /// --deflate: compress within a window of 2^N bytes, offered as
    /// client_max_window_bits=N (15: the parameter without a value); the
    /// server may ask for less.
    #[arg(long, global = true, value_name = "N", default_value_t = 15, requires = "deflate",
          value_parser = clap::value_parser!(u8).range(9..=15))]
    deflate_client_max_window_bits: u8,
    /// --deflate: ask the server to compress within 2^N bytes
    /// (server_max_window_bits=N; 15 asks nothing). A server that answers
    /// with a larger window, or none, fails the connection.
    #[arg(long, global = true, value_name = "N", default_value_t = 15, requires = "deflate",
          value_parser = clap::value_parser!(u8).range(9..=15))]
    deflate_server_max_window_bits: u8,
    /// --deflate: zlib's level for what is sent, 0 (stored) to 9.
    #[arg(long, global = true, value_name = "N", default_value_t = 6, requires = "deflate",
          value_parser = clap::value_parser!(u32).range(0..=9))]
    deflate_level: u32,
    /// Write the summary as JSON to this file.
    #[arg(long, global = true)]
    #[serde(serialize_with = "lossy_path")]
    json: Option<PathBuf>,
    /// No progress on stderr. Otherwise a live line on a terminal, and
    /// elsewhere (CI, a log file) a plain line every --progress-interval.
    #[arg(long, global = true)]
    quiet: bool,
    /// How often the plain progress line comes when stderr is not a
    /// terminal; each shows the figures of that interval alone.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = duration::parse_at_least_a_second)]
    #[serde(rename = "progress_interval_s", serialize_with = "secs")]
    progress_interval: Duration,
    #[command(subcommand)]
    #[serde(flatten)]
    command: Command,
}

fn lossy_path<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => s.serialize_str(&path.to_string_lossy()),
        None => s.serialize_none(),
    }
}

#[derive(Args, Clone, Serialize)]
struct Common {
    /// ws:// or wss:// URLs; connections are spread over them.
    #[arg(required = true)]
    urls: Vec<String>,
    /// Connections in all.
    #[arg(short = 'n', long, default_value_t = 100)]
    connections: usize,
    /// New connections per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Handshakes in progress at most, per worker.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

#[derive(Subcommand, Serialize)]
#[serde(tag = "command", rename_all = "lowercase")]
enum Command {
    /// Open connections as fast as allowed, upgrade, close: handshake
    /// latency and failures by reason.
    Connect {
        #[command(flatten)]
        #[serde(flatten)]
        common: Common,
    },
    /// Hold upgraded idle connections, pinging each periodically; reports
    /// how many are alive at the end.
    Hold {
        #[command(flatten)]
        #[serde(flatten)]
        common: Common,
        /// How long to hold.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
        #[serde(rename = "duration_s", serialize_with = "secs")]
        duration: Duration,
        /// Time between pings per connection (0: none).
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration::parse)]
        #[serde(rename = "ping_interval_s", serialize_with = "secs")]
        ping_interval: Duration,
        /// Each connection sends one JSON message of this many bytes (at
        /// least 64) right after its upgrade, to an echo endpoint, and
        /// takes the echo: what a server holds for a connection that has
        /// talked (with --deflate, a compressor of its own, if it keeps
        /// them). 0: none.
        #[arg(long, value_name = "BYTES", default_value_t = 0)]
        first_message: usize,
    },
    /// Closed-loop echo: messages in flight per connection, every echo
    /// checked; round-trip latency.
    Echo {
        #[command(flatten)]
        #[serde(flatten)]
        common: Common,
        /// How long to run.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
        #[serde(rename = "duration_s", serialize_with = "secs")]
        duration: Duration,
        /// Message size in bytes (at least 16).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Binary messages instead of text.
        #[arg(long)]
        binary: bool,
        /// What messages hold, after their sequence number: filler (`x`
        /// to the size; deflate shrinks it to almost nothing) or json (a
        /// JSON document of small records whose values vary, at least 64
        /// bytes; deflate shrinks it about as much as real traffic).
        #[arg(long, value_enum, default_value_t = PayloadArg::Filler)]
        payload: PayloadArg,
        /// Messages in flight per connection (closed loop).
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// Open loop instead: messages per second in all, sent on schedule
        /// whatever the answers do; latency counts from the intended send
        /// time.
        #[arg(long)]
        message_rate: Option<f64>,
    },
    /// Open connections at --rate for --duration, each closed after
    /// --hold-for: handshake latency and failures while connections come
    /// and go.
    Churn {
        #[command(flatten)]
        #[serde(flatten)]
        common: Common,
        /// How long to run (at most -n connections).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
        #[serde(rename = "duration_s", serialize_with = "secs")]
        duration: Duration,
        /// How long each connection stays open.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration::parse)]
        #[serde(rename = "hold_for_s", serialize_with = "secs")]
        hold_for: Duration,
    },
    /// Publishers and subscribers through a pub/sub server: delivery
    /// latency (from the intended send time), reach, loss, duplicates,
    /// reordering. Publishing starts once every connection is ready (and,
    /// in uringws mode, subscribed), runs for --duration at --rate, then
    /// --drain lets the last deliveries arrive. Exits non-zero on any
    /// failure, loss, duplicate or reordering.
    Fanout(FanoutArgs),
}

#[derive(Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum PayloadArg {
    Filler,
    Json,
}

impl From<PayloadArg> for Payload {
    fn from(arg: PayloadArg) -> Payload {
        match arg {
            PayloadArg::Filler => Payload::Filler,
            PayloadArg::Json => Payload::Json,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum ModeArg {
    /// Any server that sends each message to every other connection.
    Broadcast,
    /// The uringws.v1 protocol of `/ws` (docs/protocol.md): subscribe and
    /// wait for the ack; publish binary frames [n][topic][payload].
    Uringws,
}

#[derive(Args, Serialize)]
struct FanoutArgs {
    /// ws:// or wss:// URLs (uringws mode: the server's /ws): receivers
    /// go round robin over them, publishers over those --publish-to
    /// names; with several, the summary also gives each one's figures.
    #[arg(required = true)]
    urls: Vec<String>,
    /// What the server speaks.
    #[arg(long, value_enum, default_value_t = ModeArg::Broadcast)]
    mode: ModeArg,
    /// Broadcast: connections in all, every one receives [default: 100].
    /// Uringws: leave it out; the connections are --publishers +
    /// --subscribers (if given, it must be that sum).
    #[arg(short = 'n', long)]
    connections: Option<usize>,
    /// Connections that publish. Broadcast: that many of the -n, spread
    /// evenly over them (and so over the workers). Uringws: connections of
    /// their own, which do not subscribe.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Put the publishers on this URL only, by its place among the URLs
    /// from 0; repeat it (or give a list, 0,2) for several, which take the
    /// publishers round robin. Receivers still go to every URL. With
    /// nodes joined by a bus, `--publish-to 0` measures what reaches the
    /// other nodes through it [default: every URL].
    #[arg(long, value_name = "N", value_delimiter = ',')]
    publish_to: Vec<usize>,
    /// Uringws: subscribing connections [default: 100].
    #[arg(long)]
    subscribers: Option<usize>,
    /// Uringws: topics t0..t{K-1}. Subscribers take them round robin, and
    /// each publisher publishes to them round robin.
    #[arg(long, default_value_t = 1)]
    topics: usize,
    /// Payload bytes per message, at least 24 (publisher, sequence, send
    /// time, check word; then filler). Uringws frames add the topic.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Publishes per second, all publishers together, sent on schedule
    /// whatever the server does (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to publish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    #[serde(rename = "duration_s", serialize_with = "secs")]
    duration: Duration,
    /// Time after publishing during which deliveries may still arrive;
    /// what has not arrived by then is lost.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration::parse)]
    #[serde(rename = "drain_s", serialize_with = "secs")]
    drain: Duration,
    /// Time from the start for every connection to be ready; publishing
    /// then starts with those that are, and later ones are failures.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::parse)]
    #[serde(rename = "ready_timeout_s", serialize_with = "secs")]
    ready_timeout: Duration,
    /// Once every connection is ready, hold them idle this long before
    /// publishing: does a publish still reach a crowd that has sat idle?
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration::parse)]
    #[serde(rename = "hold_s", serialize_with = "secs")]
    hold: Duration,
    /// Ping every connection at this interval (0: none); one whose pong
    /// does not come within two intervals is closed and counted.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration::parse)]
    #[serde(rename = "ping_interval_s", serialize_with = "secs")]
    ping_interval: Duration,
    /// New connections per second while connecting (0: as fast as
    /// possible).
    #[arg(long, default_value_t = 0.0)]
    connect_rate: f64,
    /// Handshakes in progress at most, per worker.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

impl FanoutArgs {
    fn config(&self, ack_timeout: Duration) -> Result<FanoutConfig, String> {
        let mut config = match self.mode {
            ModeArg::Broadcast => {
                if self.subscribers.is_some() {
                    return Err(
                        "--subscribers is for --mode uringws; in a broadcast every connection (-n) receives"
                            .into(),
                    );
                }
                FanoutConfig::broadcast(self.connections.unwrap_or(100), self.publishers)
            }
            ModeArg::Uringws => {
                let subscribers = self.subscribers.unwrap_or(100);
                let sum = self.publishers + subscribers;
                match self.connections {
                    Some(n) if n != sum => {
                        return Err(format!(
                            "in uringws mode the connections are --publishers + --subscribers ({sum}); -n {n} disagrees (leave -n out)"
                        ))
                    }
                    _ => FanoutConfig::uringws(self.publishers, subscribers, self.topics),
                }
            }
        };
        config.topics = self.topics;
        config.size = self.size;
        config.rate = self.rate;
        config.duration = self.duration;
        config.drain = self.drain;
        config.ready_timeout = self.ready_timeout;
        config.ack_timeout = ack_timeout;
        config.publish_to = self.publish_to.clone();
        config.hold = self.hold;
        config.ping_interval = self.ping_interval;
        config.validate()?;
        config.validate_targets(self.urls.len())?;
        Ok(config)
    }

    fn common(&self, connections: usize) -> Common {
        Common {
            urls: self.urls.clone(),
            connections,
            rate: self.connect_rate,
            concurrency: self.concurrency,
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("uringws-load: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(mut cli: Cli) -> Result<ExitCode, String> {
    let timeout = cli.timeout;
    let mut fanout = None;
    let (common, name, duration) = match &cli.command {
        Command::Connect { common } => (common.clone(), "connect", None),
        Command::Hold {
            common, duration, ..
        } => (common.clone(), "hold", Some(*duration)),
        Command::Echo {
            common, duration, ..
        } => (common.clone(), "echo", Some(*duration)),
        Command::Churn {
            common, duration, ..
        } => {
            if common.rate <= 0.0 {
                return Err("churn needs --rate (connections per second)".into());
            }
            (common.clone(), "churn", Some(*duration))
        }
        Command::Fanout(args) => {
            let config = args.config(timeout)?;
            let common = args.common(config.connections);
            fanout = Some(Fanout::new(config)?);
            (common, "fanout", None)
        }
    };
    // The latency the per-second series and progress line follow: the
    // scenario's own, or the handshake where that is all there is.
    let series_latency = match name {
        "hold" => "ping to pong",
        "echo" => "round trip",
        "fanout" => "delivery",
        _ => "handshake",
    };
    let mut targets = common
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    // Built even without a wss:// target, so a bad --ca fails every run
    // alike, before anything connects.
    let tls = match (&cli.ca, cli.insecure) {
        (Some(ca), _) => Some(TlsConfig::with_ca_file(ca)?),
        (None, true) => Some(TlsConfig::insecure()?),
        (None, false) => None,
    };
    let tls = match tls {
        Some(tls) if cli.resume => Some(tls.resuming()),
        tls => tls,
    };
    let sni = cli
        .sni
        .as_deref()
        .map(|name| target::server_name(name).map_err(|e| format!("--sni: {e}")))
        .transpose()?;
    let deflate = cli.deflate.then(|| {
        DeflateOffer::new(
            ClientDeflate {
                server_no_context_takeover: cli.deflate_server_no_context_takeover,
                client_no_context_takeover: cli.deflate_client_no_context_takeover,
                server_max_window_bits: cli.deflate_server_max_window_bits,
                client_max_window_bits: cli.deflate_client_max_window_bits,
            },
            cli.deflate_level,
        )
    });
    for target in &mut targets {
        target.secure_with(tls.as_ref(), sni.as_ref());
        if let Some(offer) = &deflate {
            target.offer_deflate(offer);
        }
    }
    let sources = cli
        .connect_from
        .as_deref()
        .map(SourceRange::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    cli.workers = Some(workers);
    // Churn's connections come and go: only those open at once (a
    // handshake can take the whole timeout) need a descriptor.
    let at_once = match &cli.command {
        Command::Churn { hold_for, .. } => {
            let lifetime = (*hold_for + timeout).as_secs_f64();
            let starting = common.concurrency * workers;
            ((common.rate * lifetime).ceil() as usize + starting).min(common.connections)
        }
        _ => common.connections,
    };
    // Each ring's table of direct descriptors is capped by the soft limit.
    if let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX) {
        if (limit as usize) < at_once.div_ceil(workers) {
            eprintln!(
                "uringws-load: open-files limit is {limit}; each worker holds at most that many connections at once"
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .map_err(|e| e.to_string())?;
    }
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let started = Instant::now();
    let live = Arc::new(Live::new(started));
    let cpu_start = CpuTime::now().unwrap_or_default();
    // `connect` ends when every connection was tried and closed, `fanout`
    // after its phases; the others after their duration.
    let until = match &fanout {
        Some(fanout) => fanout.until(),
        None => started + duration.unwrap_or(Duration::from_secs(24 * 3600)),
    };
    let whole = Plan {
        targets: targets.clone(),
        sources,
        first: 0,
        connections: common.connections,
        at_once,
        rate: common.rate,
        concurrency: common.concurrency.max(1),
        timeout,
        until,
    };
    let mut threads = Vec::new();
    for (w, plan) in whole.split(workers).into_iter().enumerate() {
        let (live, stop) = (live.clone(), stop.clone());
        let handle = match &cli.command {
            Command::Connect { .. } => spawn(plan, Connect, live, stop, w),
            Command::Hold {
                ping_interval,
                first_message,
                ..
            } => {
                let mut hold = Hold::new(*ping_interval);
                if *first_message > 0 {
                    hold = hold.with_first_message(*first_message);
                }
                spawn(plan, hold, live, stop, w)
            }
            Command::Echo {
                size,
                binary,
                payload,
                in_flight,
                message_rate,
                ..
            } => {
                let payload = Payload::from(*payload);
                if payload == Payload::Json && *size < payload.min_size() {
                    return Err(format!(
                        "--size {size}: --payload json needs at least {} bytes",
                        payload.min_size()
                    ));
                }
                let echo = match message_rate {
                    Some(rate) if *rate > 0.0 => {
                        Echo::open_loop(*size, *binary, rate / common.connections.max(1) as f64)
                    }
                    Some(_) => return Err("--message-rate must be positive".into()),
                    None => Echo::new(*size, *binary, *in_flight),
                };
                let echo = echo.with_payload(payload);
                spawn(plan, echo, live, stop, w)
            }
            Command::Churn { hold_for, .. } => spawn(plan, Churn::new(*hold_for), live, stop, w),
            Command::Fanout(_) => match &fanout {
                Some(fanout) => {
                    let scenario = fanout.worker(&plan);
                    spawn(plan, scenario, live, stop, w)
                }
                None => return Err("fanout without its shared state".into()),
            },
        };
        threads.push(handle);
    }
    let mut progress = if cli.quiet {
        Progress::Off
    } else if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Progress::Live(bar)
    } else {
        let every = cli.progress_interval.as_secs_f64();
        Progress::Plain { every, next: every }
    };
    let total = common.connections as u64;
    let phase = || {
        fanout.as_ref().map(|f| match f.progress().0 {
            Phase::Ready(ready) => format!("ready {ready}/{total}"),
            Phase::Holding => "holding".into(),
            Phase::Publishing => "publishing".into(),
            Phase::Draining => "draining".into(),
            Phase::Over => "over".into(),
        })
    };
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        match &mut progress {
            Progress::Off => {}
            Progress::Live(bar) => {
                let last = live.series().seconds().last().cloned();
                let mut message = format!(
                    "opened {}/{total}  open {}  failed {}",
                    live.opened.load(Ordering::Relaxed),
                    live.open_now.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                );
                if let Some(phase) = phase() {
                    message = format!("{phase}  {message}");
                }
                // The last whole second, not the average since the start:
                // a run has a connecting phase that would drag it down.
                if let Some(s) = last {
                    message += &format!("  sent {}/s  received {}/s", s.sent, s.received);
                    if let Some(p99) = s.p99_ms {
                        message += &format!("  {series_latency} p99 {p99:.3} ms");
                    }
                }
                bar.set_message(message);
                bar.tick();
            }
            Progress::Plain { every, next } => {
                let mut series = live.series();
                let settled = series.seconds().len() as f64;
                if settled < *next {
                    continue;
                }
                let window = series.take_window();
                drop(series);
                while *next <= settled {
                    *next += *every;
                }
                if let Some(window) = window {
                    let line = plain_line(name, series_latency, phase().as_deref(), &window);
                    // A closed stderr is no reason to stop a run.
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            }
        }
    }
    if let Progress::Live(bar) = progress {
        bar.finish_and_clear();
    }
    let mut merged = Outcome::default();
    let mut scenario_latency: BTreeMap<String, Latency> = BTreeMap::new();
    for thread in threads {
        let Ok((outcome, extra)) = thread.join() else {
            return Err("a worker panicked".into());
        };
        merged.merge(outcome);
        for m in extra {
            scenario_latency
                .entry(m.name)
                .or_default()
                .merge(&m.latency);
            if let Some((counter, n)) = m.count {
                *merged.counts.entry(counter).or_default() += n;
            }
        }
    }
    if name == "hold" {
        merged
            .counts
            .insert("alive at end".into(), merged.alive_at_end);
    }
    let mut latency = BTreeMap::new();
    for (key, l) in [
        ("handshake", &merged.handshake),
        ("tls handshake", &merged.tls_handshake),
        ("upgrade", &merged.upgrade),
    ] {
        if let Some(p) = l.percentiles() {
            latency.insert(key.to_string(), p);
        }
    }
    for (name, l) in &scenario_latency {
        if let Some(p) = l.percentiles() {
            latency.insert(name.clone(), p);
        }
    }
    let fanout = fanout.map(|f| f.report());
    if let Some(report) = &fanout {
        for (reason, n) in &report.errors {
            *merged.errors.entry(reason.clone()).or_default() += n;
        }
        if let Some(p) = &report.latency {
            latency.insert("delivery".to_string(), p.clone());
        }
    }
    let elapsed = started.elapsed();
    let duration_s = elapsed.as_secs_f64();
    let mut options = serde_json::to_value(&cli).map_err(|e| e.to_string())?;
    if let Some(options) = options.as_object_mut() {
        let args = std::env::args_os().skip(1);
        let args = args.map(|a| a.to_string_lossy().into_owned());
        options.insert("args".into(), args.collect::<Vec<_>>().into());
    }
    let summary = Summary {
        scenario: name.to_string(),
        started_at,
        targets: targets.iter().map(|t| t.url.clone()).collect(),
        duration_s,
        rates_per_second: report::per_second(&merged.counts, duration_s),
        counts: merged.counts,
        errors: merged.errors,
        latency,
        bytes: merged.bytes,
        client_cpu: CpuTime::now().unwrap_or_default().since(cpu_start),
        workers,
        fanout,
        options,
        series_latency: series_latency.to_string(),
        series: live.series().finish(elapsed),
    };
    print!("{}", summary.table());
    if let Some(path) = &cli.json {
        std::fs::write(path, summary.to_json()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let failed = !summary.errors.is_empty()
        || (name == "hold" && merged.alive_at_end < total)
        || summary.fanout.as_ref().is_some_and(|f| !f.clean());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Progress on stderr.
enum Progress {
    Off,
    /// A terminal: one line redrawn in place.
    Live(ProgressBar),
    /// Anything else: a plain line every `every` seconds of the run, when
    /// the seconds up to `next` are in.
    Plain {
        every: f64,
        next: f64,
    },
}

/// One plain progress line: what happened in `window` alone, as
/// `key=value` pairs a log search or a script can pick out.
fn plain_line(scenario: &str, latency: &str, phase: Option<&str>, w: &Window) -> String {
    let rate = |n: u64| {
        let r = w.rate(n);
        if r >= 100.0 || r == r.trunc() {
            format!("{r:.0}/s")
        } else {
            format!("{r:.1}/s")
        }
    };
    let key = latency.replace(' ', "_");
    let ms = |p: Option<f64>| p.map_or_else(|| "-".to_string(), |p| format!("{p:.3}ms"));
    let mut line = format!("uringws-load {scenario} t={}s-{}s", w.from_s, w.to_s);
    if let Some(phase) = phase {
        line += &format!(" phase={}", phase.replace(' ', ":"));
    }
    line += &format!(
        " alive={} opened={} sent={} received={} errors={} {key}_p50={} {key}_p99={}",
        w.connections,
        rate(w.opened),
        rate(w.sent),
        rate(w.received),
        w.errors,
        ms(w.latency.as_ref().map(|p| p.p50_ms)),
        ms(w.latency.as_ref().map(|p| p.p99_ms)),
    );
    line
}

fn spawn<S: Scenario>(
    plan: Plan,
    scenario: S,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    worker: usize,
) -> std::thread::JoinHandle<(Outcome, Vec<Measured>)> {
    // The cores this process may use (a `taskset` narrows them): worker N
    // goes on the Nth, round robin.
    let core = core_affinity::get_core_ids()
        .and_then(|cores| cores.get(worker % cores.len().max(1)).copied());
    std::thread::Builder::new()
        .name(format!("load-{worker}"))
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            let (outcome, scenario) = client::run(plan, scenario, live, stop);
            (outcome, scenario.measured())
        })
        .expect("spawning a worker thread")
}
