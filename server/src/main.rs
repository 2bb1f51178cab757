//! The `uringws` binary: echo on `/` and `/echo`, pub/sub on `/ws`, a health
//! check on `/health`, the demo page on `GET /`, on the io_uring engine.

#![forbid(unsafe_code)]

use clap::Parser;
use config::{Config, Overrides};
use mimalloc::MiMalloc;
use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Instant};
use uringws_engine::Engine;

mod admin;
mod auth;
mod bus;
mod config;
mod deadlines;
mod demo;
mod health;
mod http_publish;
mod metrics;
mod origins;
mod per_ip;
mod pubsub;
mod routes;
mod tls;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// io_uring WebSocket server: echo on / and /echo, pub/sub on /ws, health
/// on /health. Settings come from the --config file, then environment
/// variables, then flags; an unknown URINGWS_ variable is an error.
#[derive(Debug, Parser)]
#[command(name = "uringws", version)]
struct Cli {
    /// TOML file with any of the settings below (see uringws.example.toml).
    #[arg(long, env = config::CONFIG_VARIABLE)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    overrides: Overrides,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_ref(), std::env::vars_os(), cli.overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("uringws: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logs(&config) {
        eprintln!("uringws: {e}");
        return ExitCode::from(2);
    }
    let mut builder = Engine::builder().config(config.engine()).pin(config.pin);
    for addr in &config.listen {
        builder = builder.listen(*addr);
    }
    if !config.tls_listen.is_empty() {
        let tls = match tls_listeners(&config) {
            Ok(tls) => tls,
            Err(e) => {
                eprintln!("uringws: {e}");
                return ExitCode::from(2);
            }
        };
        for addr in &config.tls_listen {
            builder = builder.listen_tls(*addr, tls.clone());
        }
    }
    if config.workers > 0 {
        builder = builder.workers(config.workers);
    }
    let bus = match &config.bus {
        Some(url) => match bus::Bus::new(
            url,
            &config.bus_prefix,
            config.bus_queue,
            config.bus_sharded,
        ) {
            Ok(bus) => Some(bus),
            Err(e) => {
                eprintln!("uringws: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if let Some(bus) = bus.clone() {
        builder = builder.on_topic_interest(move |topic| bus.on_interest(topic));
    }
    let started = Instant::now();
    let shared = match shared(&config, bus.clone(), started) {
        Ok(shared) => Arc::new(shared),
        Err(e) => {
            eprintln!("uringws: {e}");
            return ExitCode::from(2);
        }
    };
    log_start(&config, &shared.origins);
    let admin = match config.admin_listen.map(admin::Admin::bind).transpose() {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("uringws: cannot listen on admin_listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match builder.start(move |context| routes::Routes::new(context, shared.clone())) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("uringws: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (i, addr) in engine.local_addrs().iter().enumerate() {
        let scheme = if i < config.listen.len() { "ws" } else { "wss" };
        tracing::info!("listening on {scheme}://{addr} (echo on / and /echo, pub/sub on /ws)");
    }
    if let Some(admin) = admin {
        let addr = admin
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        if let Err(e) = admin.serve(engine.handle(), bus.clone(), started) {
            eprintln!("uringws: cannot start the admin listener: {e}");
            return ExitCode::FAILURE;
        }
        tracing::info!("admin listener on http://{addr} (/health, /metrics)");
    }
    if let Some(bus) = &bus {
        if let Err(e) = bus.run(engine.handle().publisher()) {
            eprintln!("uringws: cannot start the bus: {e}");
            return ExitCode::FAILURE;
        }
        tracing::info!(
            bus = %bus.url(),
            node = %format!("{:016x}", bus.node()),
            "bus: publishing to and subscribing on Redis"
        );
    }
    tracing::info!(
        "routes: GET / demo page; / and /echo echo; /ws pub/sub (uringws.v1); GET /health; \
         GET /metrics; POST /publish ({})",
        if config.publish_key.is_some() {
            "with the publish key"
        } else {
            "off: no publish_key"
        }
    );
    match engine.run_until_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uringws: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The TLS listeners' settings, their certificates read again on SIGHUP
/// (a thread of its own waits for the signal, set up before the workers
/// start, so that a SIGHUP never finds its default action, which ends the
/// process).
fn tls_listeners(config: &Config) -> Result<Arc<rustls::ServerConfig>, String> {
    let certificates = tls::Certificates::load(&config.tls_cert, &config.tls_key)?;
    let server = certificates.server_config()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    let mut hangups = {
        let _context = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?
    };
    std::thread::Builder::new()
        .name("uringws-sighup".into())
        .spawn(move || {
            runtime.block_on(async {
                while hangups.recv().await.is_some() {
                    match certificates.reload() {
                        Ok(count) => tracing::info!(count, "SIGHUP: TLS certificates reloaded"),
                        Err(error) => tracing::error!(
                            %error,
                            "SIGHUP: TLS certificates not reloaded; the previous ones stay"
                        ),
                    }
                }
            })
        })
        .map_err(|e| format!("cannot watch for SIGHUP: {e}"))?;
    Ok(server)
}

/// Text for people (coloured only on a terminal that wants colour) or
/// JSON for collectors; on stdout either way.
fn init_logs(config: &Config) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| format!("bad log_level {:?}: {e}", config.log_level))?;
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        config::LogFormat::Text => {
            // https://no-color.org: set and not empty.
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            logs.with_ansi(std::io::stdout().is_terminal() && !no_color)
                .init();
        }
        config::LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Once at start: what runs, with which limits and access rules.
fn log_start(config: &Config, origins: &origins::Origins) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        workers = config.workers,
        "uringws starting"
    );
    tracing::info!(
        max_head = config.max_head,
        max_body = config.max_body,
        max_frame_size = config.max_frame_size,
        max_message_size = config.max_message_size,
        max_connections_per_worker = config.max_connections_per_worker,
        backpressure_limit = config.backpressure_limit,
        backpressure_policy = ?config.backpressure_policy,
        handshake_timeout = config.handshake_timeout,
        idle_timeout = config.idle_timeout,
        ping_interval = config.ping_interval,
        shutdown_timeout = config.shutdown_timeout,
        max_subscriptions = config.max_subscriptions,
        "limits"
    );
    tracing::info!(
        auth_required = config.auth_required,
        anonymous_publish = config.anonymous_publish,
        static_tokens = config.tokens.len(),
        jwt = config.jwt_secret.is_some(),
        origins = origins.describe(),
        max_connections_per_ip = config.max_connections_per_ip,
        handshakes_per_ip_per_second = config.handshakes_per_ip_per_second,
        "access"
    );
    let tokens = !config.tokens.is_empty() || config.jwt_secret.is_some();
    if matches!(origins, origins::Origins::Any) && tokens {
        tracing::warn!(
            "origins = [\"*\"]: any site's page can open /ws with a visitor's uringws_token \
             cookie; list the origins instead if browsers carry tokens in cookies"
        );
    }
}

/// What the workers share, from a checked configuration.
fn shared(
    config: &Config,
    bus: Option<bus::Bus>,
    started: Instant,
) -> Result<routes::Shared, String> {
    let expose = |s: &Option<config::Secret>| s.as_ref().map(|s| s.expose().to_owned());
    Ok(routes::Shared {
        limits: pubsub::Limits {
            max_subscriptions: config.max_subscriptions,
        },
        auth: auth::Auth::new(
            config.tokens.iter().map(config::StaticToken::expose),
            expose(&config.jwt_secret).as_deref(),
            expose(&config.publish_key).as_deref(),
        )?,
        auth_required: config.auth_required,
        anonymous_publish: config.anonymous_publish,
        auth_timeout: config.auth_timeout(),
        origins: origins::Origins::new(&config.origins)?,
        per_ip: per_ip::PerIp::new(
            config.max_connections_per_ip,
            config.handshakes_per_ip_per_second,
        ),
        admin_listen: config.admin_listen.is_some(),
        bus,
        started,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks: no two flags with one name, every id known.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
