//! The `uringws` binary: echo on `/` and `/echo`, pub/sub on `/ws`, a health
//! check on `/health`, the demo page on `GET /`, on the io_uring engine.

#![forbid(unsafe_code)]

use clap::Parser;
use config::{Config, Overrides};
use mimalloc::MiMalloc;
use std::{path::PathBuf, process::ExitCode, sync::Arc};
use uringws_engine::Engine;

mod auth;
mod config;
mod deadlines;
mod demo;
mod http_publish;
mod metrics;
mod origins;
mod per_ip;
mod pubsub;
mod routes;

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
    let filter = match tracing_subscriber::EnvFilter::try_new(&config.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("uringws: bad log_level {:?}: {e}", config.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let mut builder = Engine::builder().config(config.engine()).pin(config.pin);
    for addr in &config.listen {
        builder = builder.listen(*addr);
    }
    if config.workers > 0 {
        builder = builder.workers(config.workers);
    }
    let shared = match shared(&config) {
        Ok(shared) => Arc::new(shared),
        Err(e) => {
            eprintln!("uringws: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        auth_required = config.auth_required,
        static_tokens = config.tokens.len(),
        jwt = config.jwt_secret.is_some(),
        origins = config.origins.len(),
        max_connections_per_ip = config.max_connections_per_ip,
        handshakes_per_ip_per_second = config.handshakes_per_ip_per_second,
        "access"
    );
    let engine = match builder.start(move |context| routes::Routes::new(context, shared.clone())) {
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
        tracing::info!("demo page on http://{addr}/");
    }
    match engine.run_until_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uringws: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the workers share, from a checked configuration.
fn shared(config: &Config) -> Result<routes::Shared, String> {
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
        auth_timeout: config.auth_timeout(),
        origins: origins::Origins::new(&config.origins)?,
        per_ip: per_ip::PerIp::new(
            config.max_connections_per_ip,
            config.handshakes_per_ip_per_second,
        ),
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
