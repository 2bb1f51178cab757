//! The `uringws` binary. The engine it runs on is issue 4; until it lands the
//! binary says so instead of pretending to serve.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    let _ = uringws_engine::protocol::handshake::WEBSOCKET_VERSION;
    eprintln!("uringws: the server is not built yet (the engine lands with issue 4)");
    std::process::ExitCode::from(2)
}
