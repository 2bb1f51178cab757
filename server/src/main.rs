//! The `uringws` binary: echo on `/` and `/echo`, pub/sub on `/ws`, a health
//! check on `/health`, the demo page on `GET /`, on the io_uring engine.

use clap::Parser;
use config::{Config, Overrides};
use mimalloc::MiMalloc;
use std::{path::PathBuf, process::ExitCode};
use uringws_engine::Engine;

mod config;
mod demo;
mod pubsub;
mod routes;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// io_uring WebSocket server: echo on / and /echo, pub/sub on /ws, health
/// on /health. Settings come from the --config file, then environment
/// variables, then flags.
#[derive(Debug, Parser)]
#[command(name = "uringws", version)]
struct Cli {
    /// TOML file with any of the settings below (see uringws.example.toml).
    #[arg(long, env = "URINGWS_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    overrides: Overrides,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_ref(), cli.overrides) {
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
    let limits = pubsub::Limits {
        max_subscriptions: config.max_subscriptions,
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
