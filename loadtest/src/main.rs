//! `uringws-load`, the load generator (issue 5). It uses the client role of
//! `uringws-protocol`; the scenarios are not built yet.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    let _ = uringws_protocol::handshake::WEBSOCKET_VERSION;
    eprintln!("uringws-load: not built yet (issue 5)");
    std::process::ExitCode::from(2)
}
