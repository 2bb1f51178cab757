//! `uringws-load`, the load generator (issue 5, in progress: see the crate
//! doc for what is built).

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    eprintln!("uringws-load: the scenarios are not built yet (issue 5 in progress)");
    std::process::ExitCode::from(2)
}
