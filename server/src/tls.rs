//! TLS for `tls_listen`: certificates read from PEM files, the one to
//! present chosen by the name the client asks for (SNI), all read again on
//! SIGHUP. A reload changes what new handshakes get; open connections keep
//! the keys they agreed on.

use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};
use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

/// The certificates of the TLS listeners and the files they come from.
#[derive(Debug)]
pub struct Certificates {
    /// (certificate chain, private key) PEM files, in the order given.
    files: Vec<(PathBuf, PathBuf)>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Vec<Arc<CertifiedKey>>>>,
}

/// The provider, with the suites in the order the server prefers:
/// AES-128-GCM first, whose SHA-256 handshake hash is the cheaper one.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        use rustls::CipherSuite::*;
        match suite.suite() {
            TLS13_AES_128_GCM_SHA256 => 0,
            TLS13_CHACHA20_POLY1305_SHA256 => 1,
            TLS13_AES_256_GCM_SHA384 => 2,
            _ => 3,
        }
    });
    Arc::new(provider)
}

impl Certificates {
    /// Reads each `certs[i]` with `keys[i]` (as many of each, at least
    /// one: the configuration's check); the first pair is presented to
    /// clients that send no name.
    pub fn load(certs: &[String], keys: &[String]) -> Result<Arc<Certificates>, String> {
        let files: Vec<(PathBuf, PathBuf)> = certs
            .iter()
            .zip(keys)
            .map(|(c, k)| (PathBuf::from(c), PathBuf::from(k)))
            .collect();
        let provider = provider();
        let loaded = read(&files, &provider)?;
        Ok(Arc::new(Certificates {
            files,
            provider,
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    /// Reads the files again. On an error the certificates in use stay.
    pub fn reload(&self) -> Result<usize, String> {
        let loaded = read(&self.files, &self.provider)?;
        let count = loaded.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(count)
    }

    /// Settings for the TLS listeners: TLS 1.2 and 1.3, ALPN `http/1.1`,
    /// the server's suite order.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ignore_client_order = true;
        // Stateless session tickets: a returning client resumes without the
        // server keeping anything per session (rustls's default is a
        // 256-entry cache, which a busy server outgrows at once).
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
        Ok(Arc::new(config))
    }

    fn current(&self) -> Arc<Vec<Arc<CertifiedKey>>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Certificates {
    /// The first certificate valid for the name asked for; none (the
    /// handshake fails with an alert) for a name no certificate has. A
    /// client that sends no name (one that connects by IP address) gets
    /// the first.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.current();
        let Some(name) = hello.server_name() else {
            return certificates.first().cloned();
        };
        let name = ServerName::try_from(name).ok()?;
        certificates
            .iter()
            .find(|key| {
                key.end_entity_cert().is_ok_and(|der| {
                    webpki::EndEntityCert::try_from(der)
                        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
                })
            })
            .cloned()
    }
}

fn read(
    files: &[(PathBuf, PathBuf)],
    provider: &CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, String> {
    files
        .iter()
        .map(|(cert, key)| {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("tls_cert {}: no certificate in it", cert.display()));
            }
            let private = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls_key {}: {e}", key.display()))?;
            CertifiedKey::from_der(chain, private, provider)
                .map(Arc::new)
                .map_err(|e| {
                    format!(
                        "tls_cert {} with tls_key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })
        })
        .collect()
}
