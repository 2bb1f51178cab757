//! tokio-tungstenite over tokio-rustls (the common Rust wss:// stack):
//! the echo of `peer-tungstenite` behind a TLS handshake, with the same
//! rustls version and crypto provider (ring) as uringws, TLS 1.2 and 1.3,
//! ALPN http/1.1, AES-128-GCM preferred, as the `uringws` binary does.

use clap::Parser;
use mimalloc::MiMalloc;
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::{process::ExitCode, sync::Arc};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use uringws_peers::{tungstenite_config, tungstenite_echo, Args};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn acceptor(args: &Args) -> Result<TlsAcceptor, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Err("needs --tls-cert and --tls-key".into());
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    // Stateless tickets, as the `uringws` binary.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn connection(acceptor: TlsAcceptor, stream: TcpStream) {
    let Ok(stream) = acceptor.accept(stream).await else {
        return;
    };
    let config = Some(tungstenite_config());
    if let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, config).await {
        tungstenite_echo(ws).await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let acceptor = match acceptor(&args) {
        Ok(acceptor) => acceptor,
        Err(e) => {
            eprintln!("peer-tungstenite-tls: {e}");
            return ExitCode::from(2);
        }
    };
    uringws_peers::serve_with(args, move |stream| connection(acceptor.clone(), stream))
}
