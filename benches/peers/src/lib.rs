//! What every peer echo server shares: the command line, the runtime, the
//! accept loop. Each binary in `src/bin/` only says how its library turns a
//! TCP stream into an echoing WebSocket, so the libraries are the only
//! difference between the servers.

use clap::Parser;
use std::{future::Future, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};
use tokio::net::{TcpListener, TcpStream};

/// The largest message the peers accept, as uringws's default (64 MiB
/// messages, 16 MiB frames): Autobahn 9.x sends up to 16 MiB.
pub const MAX_MESSAGE: usize = 64 << 20;
/// The largest frame, where a library limits frames apart from messages.
pub const MAX_FRAME: usize = 16 << 20;

/// Paths the echo is served on, as `uringws`'s `/echo` route (Autobahn's
/// runner connects to `/`).
pub fn is_echo_path(path: &str) -> bool {
    matches!(path, "/" | "/echo")
}

/// tokio-tungstenite's echo, over any stream (plain or TLS): every text and
/// binary message back as it came. Reading flushes the queued pong or
/// close reply; the stream ends once the close handshake is done or the
/// connection failed.
pub async fn tungstenite_echo<S>(mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(_) | Message::Binary(_) = message {
            if ws.send(message).await.is_err() {
                return;
            }
        }
    }
}

/// tungstenite's limits set to uringws's; buffer sizes at the library's
/// defaults.
pub fn tungstenite_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_FRAME))
}

/// A peer library's WebSocket echo server.
#[derive(Debug, Parser)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Worker threads: 1 runs tokio's current-thread runtime, more its
    /// multi-thread runtime with that many workers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// PEM certificate chain, for the peers that serve wss:// (with
    /// `--tls-key`).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
}

/// Parses the command line, builds the runtime, and runs `connection` in a
/// task of its own for every accepted TCP stream, forever.
pub fn serve<F, Fut>(connection: F) -> ExitCode
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_with(Args::parse(), connection)
}

/// [`serve`] with the command line already parsed.
pub fn serve_with<F, Fut>(args: Args, connection: F) -> ExitCode
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.into())
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("bind {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let bound = listener.local_addr().unwrap_or(args.listen);
        eprintln!("listening on {bound}");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    // Echo latency must not wait for Nagle's algorithm, as
                    // in uringws.
                    if let Err(e) = stream.set_nodelay(true) {
                        eprintln!("TCP_NODELAY: {e}");
                    }
                    tokio::spawn(connection(stream));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: pause instead
                    // of spinning on the same error.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}
