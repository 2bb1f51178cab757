//! `wss://`: which certificates connections trust ([`TlsConfig`]), and
//! TLS as a connection's byte layer, on rustls's unbuffered client
//! connection: received records are decrypted where they arrived (the
//! ring's buffer; rustls 0.23 then hands the plaintext over in a Vec of
//! its own), and records are written straight into the bytes of the next
//! send. An idle connection keeps no buffer of its own: only the start of
//! a record that came in part waits (`pending`), and TLS's own records
//! (handshake, alerts) wait in `out` for the next send.

use bytes::{Bytes, BytesMut};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConnectionData, Resumption, UnbufferedClientConnection};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Plaintext put into one record at most (TLS's limit).
const MAX_RECORD: usize = 16 << 10;

/// What a [`TlsConfig`] trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// No certificate: every handshake fails (no system roots are used).
    Nothing,
    /// Certificates issued by the CAs given.
    Ca,
    /// Any certificate, unchecked; the handshake's signatures still are.
    Anything,
}

/// How connections to `wss://` targets speak TLS, shared by all of them:
/// TLS 1.2 and 1.3 on the ring provider, ALPN `http/1.1`, and a full
/// handshake every time (no session resumption, unless
/// [`resuming`](Self::resuming)), so that every connection costs the server
/// what a new client's would.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    trust: Trust,
}

impl TlsConfig {
    /// Trusts the CA certificates in the PEM file at `path`, and nothing
    /// else.
    pub fn with_ca_file(path: &Path) -> Result<TlsConfig, String> {
        let pem = std::fs::read(path).map_err(|e| format!("--ca {}: {e}", path.display()))?;
        TlsConfig::with_ca_pem(&pem).map_err(|e| format!("--ca {}: {e}", path.display()))
    }

    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE`
    /// blocks), and nothing else.
    pub fn with_ca_pem(pem: &[u8]) -> Result<TlsConfig, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("not a CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("no CERTIFICATE in it".into());
        }
        let config = builder()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfig::finish(config, Trust::Ca))
    }

    /// Accepts any server certificate (`--insecure`).
    pub fn insecure() -> Result<TlsConfig, String> {
        let verifier = AnyCertificate(provider().signature_verification_algorithms);
        let config = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(TlsConfig::finish(config, Trust::Anything))
    }

    /// Trusts no certificate: what a `wss://` target has until told what
    /// to trust.
    pub fn trusting_nothing() -> Result<TlsConfig, String> {
        let config = builder()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        Ok(TlsConfig::finish(config, Trust::Nothing))
    }

    fn finish(mut config: ClientConfig, trust: Trust) -> TlsConfig {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = Resumption::disabled();
        TlsConfig {
            config: Arc::new(config),
            trust,
        }
    }

    /// The same, resuming sessions: the tickets servers send are kept (in
    /// memory, shared by the connections) and each new connection to a
    /// server offers one.
    pub fn resuming(&self) -> TlsConfig {
        let mut config = (*self.config).clone();
        config.resumption = Resumption::default();
        TlsConfig {
            config: Arc::new(config),
            trust: self.trust,
        }
    }

    pub fn trust(&self) -> Trust {
        self.trust
    }

    /// A failed TLS connection's reason, as the report counts it.
    pub fn reason(&self, error: &rustls::Error) -> String {
        match (self.trust, error) {
            (Trust::Nothing, rustls::Error::InvalidCertificate(_)) => {
                format!("tls: {error} (no CA trusted: give --ca FILE, or --insecure)")
            }
            _ => format!("tls: {error}"),
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// The same shared configuration.
impl PartialEq for TlsConfig {
    fn eq(&self, other: &TlsConfig) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsConfig {}

/// A `wss://` target's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTls {
    /// What the certificate must be for; sent as SNI when a DNS name
    /// (rustls sends none for an IP address).
    pub server_name: ServerName<'static>,
    pub config: TlsConfig,
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))
}

/// `--insecure`: any certificate for any name, but the handshake's
/// signatures checked with the provider's algorithms, so the handshake
/// costs what a verifying client's would (bar the chain) and a broken
/// server still fails.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// One connection's TLS, boxed in the connection: plain connections carry
/// only the empty pointer.
pub(crate) struct TlsConn {
    conn: UnbufferedClientConnection,
    /// Received ciphertext not yet processed: the start of a record.
    pending: Vec<u8>,
    /// TLS's own records, to go out before any application data.
    out: Vec<u8>,
    /// A record could not be read: nothing more is read or encrypted.
    failed: bool,
    /// When the current phase began (TCP connected, then TLS established),
    /// for the report's `tls handshake` and `upgrade` times.
    pub(crate) since: Instant,
}

impl TlsConn {
    /// Starts the handshake: the ClientHello waits for the first send.
    pub(crate) fn new(target: &TargetTls, now: Instant) -> Result<TlsConn, rustls::Error> {
        let mut conn = UnbufferedClientConnection::new(
            target.config.config.clone(),
            target.server_name.clone(),
        )?;
        let mut out = Vec::new();
        process(&mut conn, &mut out, &mut [], &mut BytesMut::new())?;
        Ok(TlsConn {
            conn,
            pending: Vec::new(),
            out,
            failed: false,
            since: now,
        })
    }

    /// Whether the handshake that ended resumed a session.
    pub(crate) fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Whether the handshake is still going on.
    pub(crate) fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Reads what arrived: application data is appended to `plain`, TLS's
    /// answers wait for the next send ([`seal`](Self::seal)). An error is
    /// the server's (a certificate not trusted, a bad record): the alert
    /// for it is queued, and nothing more is read.
    pub(crate) fn receive(
        &mut self,
        data: &mut [u8],
        plain: &mut BytesMut,
    ) -> Result<(), rustls::Error> {
        if self.failed {
            return Ok(());
        }
        let result = if self.pending.is_empty() {
            // The usual case: whole records, decrypted in the ring's buffer.
            process(&mut self.conn, &mut self.out, data, plain).map(|used| {
                self.pending.extend_from_slice(&data[used..]);
            })
        } else {
            self.pending.extend_from_slice(data);
            let mut pending = std::mem::take(&mut self.pending);
            let result = process(&mut self.conn, &mut self.out, &mut pending, plain);
            if let Ok(used) = result {
                pending.drain(..used);
                // A burst's buffer is not kept by an idle connection.
                if !pending.is_empty() {
                    self.pending = pending;
                }
            }
            result.map(drop)
        };
        if result.is_err() {
            // rustls is not asked again: it would read on from where it
            // failed.
            self.failed = true;
            self.pending = Vec::new();
        }
        result
    }

    /// The bytes of the next send: TLS's own records, then `plain`
    /// encrypted once the handshake allows (until then it stays where it
    /// is). `None`: nothing to send.
    pub(crate) fn seal(&mut self, plain: &mut BytesMut) -> Option<Bytes> {
        let mut wire = BytesMut::new();
        if !plain.is_empty() && !self.failed && !self.conn.is_handshaking() {
            let sealed = self.write_state(|traffic, own| {
                wire.reserve(own.len() + plain.len() + (plain.len() / MAX_RECORD + 1) * 64);
                // TLS's records first. Any rustls makes while encrypting
                // (a key update, sealed with the keys before the data's)
                // it writes before the data itself.
                wire.extend_from_slice(own);
                own.clear();
                encrypt_into(&mut wire, plain.len(), |buf| traffic.encrypt(plain, buf))
            });
            // What is not sealed now never will be: the connection is
            // closed, or its keys are spent.
            plain.clear();
            if sealed != Some(true) {
                self.failed = true;
            }
        }
        wire.extend_from_slice(&self.out);
        self.out = Vec::new();
        (!wire.is_empty()).then(|| wire.freeze())
    }

    /// Runs `write` in rustls's write state, with TLS's own records queued
    /// so far (some may be met on the way there).
    fn write_state<R>(
        &mut self,
        write: impl FnOnce(&mut WriteTraffic<'_, ClientConnectionData>, &mut Vec<u8>) -> R,
    ) -> Option<R> {
        loop {
            // The unprocessed bytes, so the deframer sees the same buffer
            // as when it read them.
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.pending);
            debug_assert_eq!(discard, 0, "records left unread");
            match state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    return Some(write(&mut traffic, &mut self.out))
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut self.out, |buf| encode.encode(buf));
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                // The server's close_notify, seen once: we may still write.
                Ok(ConnectionState::PeerClosed) => {}
                _ => return None,
            }
        }
    }
}

/// Processes the records in `buf`: returns how many bytes were used (the
/// rest is the start of a record). On an error, the alert for it is in
/// `out`.
fn process(
    conn: &mut UnbufferedClientConnection,
    out: &mut Vec<u8>,
    buf: &mut [u8],
    plain: &mut BytesMut,
) -> Result<usize, rustls::Error> {
    let mut used = 0;
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut buf[used..]);
        let state = match state {
            Ok(state) => state,
            Err(error) => {
                alert(conn, out, &mut buf[used + discard..]);
                return Err(error);
            }
        };
        match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            plain.extend_from_slice(record.payload);
                        }
                        Err(error) => {
                            drop(traffic);
                            alert(conn, out, &mut buf[used + discard..]);
                            return Err(error);
                        }
                    }
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(out, |buf| encode.encode(buf));
            }
            // `out` goes with the connection's next send.
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::PeerClosed => {}
            // Everything whole is read (write state, handshake waiting for
            // more, closed).
            _ => return Ok(used + discard),
        }
        used += discard;
    }
}

/// Queues the alert rustls has for the error it just returned. Given the
/// rest of the buffer it failed in, as every call must be: the handshake
/// deframer may hold messages of it, and would panic on another buffer.
fn alert(conn: &mut UnbufferedClientConnection, out: &mut Vec<u8>, buf: &mut [u8]) {
    let mut used = 0;
    loop {
        let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut buf[used..]);
        match state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                encode_into(out, |buf| encode.encode(buf));
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            _ => return,
        }
        used += discard;
    }
}

/// Appends what `encode` writes to `out`, growing it to the size asked.
fn encode_into(out: &mut Vec<u8>, mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>) {
    let start = out.len();
    let mut need = 1024;
    loop {
        out.resize(start + need, 0);
        match encode(&mut out[start..]) {
            Ok(n) => return out.truncate(start + n),
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                need = required_size;
            }
            Err(EncodeError::AlreadyEncoded) => return out.truncate(start),
        }
    }
}

/// Appends what `encrypt` writes for `len` bytes of plaintext to `wire`.
fn encrypt_into(
    wire: &mut BytesMut,
    len: usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> bool {
    let start = wire.len();
    // A record's header, tag and content type, per record.
    let mut need = len + (len / MAX_RECORD + 1) * 64;
    loop {
        wire.resize(start + need, 0);
        match encrypt(&mut wire[start..]) {
            Ok(n) => {
                wire.truncate(start + n);
                return true;
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                need = required_size;
            }
            Err(_) => {
                wire.truncate(start);
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The layer against rustls's own server connection, bytes handed
    //! over in memory, in pieces as small as one byte.

    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, ServerConnection};
    use std::io::{Read, Write};

    struct Pki {
        ca_pem: String,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    fn pki() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // A name of its own: a CA of the same name would be tried as the
        // issuer, and fail on the signature instead.
        static CAS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("uringws-load test CA {n}"),
        );
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        Pki {
            ca_pem: ca.pem(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    fn server(pki: &Pki, version: &'static rustls::SupportedProtocolVersion) -> ServerConnection {
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), pki.key.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        ServerConnection::new(Arc::new(config)).unwrap()
    }

    fn client(config: TlsConfig) -> TlsConn {
        let target = TargetTls {
            server_name: ServerName::try_from("localhost").unwrap(),
            config,
        };
        TlsConn::new(&target, Instant::now()).unwrap()
    }

    /// What the server has to send, to the client in pieces of `piece`.
    fn to_client(
        server: &mut ServerConnection,
        client: &mut TlsConn,
        piece: usize,
        plain: &mut BytesMut,
    ) -> Result<(), rustls::Error> {
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        for piece in wire.chunks_mut(piece) {
            client.receive(piece, plain)?;
        }
        Ok(())
    }

    /// The client's next send, to the server: what the server read of it.
    fn to_server(
        client: &mut TlsConn,
        plain: &mut BytesMut,
        server: &mut ServerConnection,
    ) -> Result<Vec<u8>, rustls::Error> {
        let mut read = Vec::new();
        let Some(wire) = client.seal(plain) else {
            return Ok(read);
        };
        let mut wire = &wire[..];
        while !wire.is_empty() {
            server.read_tls(&mut wire).unwrap();
            server.process_new_packets()?;
            match server.reader().read_to_end(&mut read) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => {
                    other.unwrap();
                }
            }
        }
        Ok(read)
    }

    fn handshake(client: &mut TlsConn, server: &mut ServerConnection, piece: usize) {
        let mut plain = BytesMut::new();
        for _ in 0..10 {
            to_server(client, &mut plain, server).unwrap();
            to_client(server, client, piece, &mut plain).unwrap();
            if !client.handshaking() && !server.is_handshaking() {
                assert!(plain.is_empty());
                return;
            }
        }
        panic!("no handshake after 10 round trips");
    }

    #[test]
    fn handshake_and_data_in_pieces_of_any_size() {
        let pki = pki();
        let trusted = TlsConfig::with_ca_pem(pki.ca_pem.as_bytes()).unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            for piece in [1, 7, 100, 1 << 20] {
                let mut server = server(&pki, version);
                let mut client = client(trusted.clone());
                handshake(&mut client, &mut server, piece);
                assert_eq!(server.server_name(), Some("localhost"), "SNI");
                assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));

                // More than a record each way.
                let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
                let mut plain = BytesMut::from(&big[..]);
                let got = to_server(&mut client, &mut plain, &mut server).unwrap();
                assert!(plain.is_empty(), "sealed and taken");
                assert!(got == big);
                server.writer().write_all(&big).unwrap();
                let mut plain = BytesMut::new();
                to_client(&mut server, &mut client, piece, &mut plain).unwrap();
                assert_eq!(&plain[..], &big[..], "{version:?}, pieces of {piece}");
                // Idle: nothing kept but the connection.
                assert!(client.pending.is_empty() && client.out.is_empty());
                assert_eq!(client.pending.capacity() + client.out.capacity(), 0);
            }
        }
    }

    #[test]
    fn the_request_waits_for_the_handshake() {
        let pki = pki();
        let mut server = server(&pki, &rustls::version::TLS13);
        let mut client = client(TlsConfig::with_ca_pem(pki.ca_pem.as_bytes()).unwrap());
        let mut request = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        to_server(&mut client, &mut request, &mut server).unwrap();
        assert_eq!(request.len(), 18, "kept while handshaking");
        let mut plain = BytesMut::new();
        to_client(&mut server, &mut client, 1 << 20, &mut plain).unwrap();
        assert!(!client.handshaking());
        // The client's Finished and the request, in one send.
        let got = to_server(&mut client, &mut request, &mut server).unwrap();
        assert!(request.is_empty());
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_key_update_goes_before_the_data_sealed_after_it() {
        let pki = pki();
        let mut server = server(&pki, &rustls::version::TLS13);
        let mut client = client(TlsConfig::insecure().unwrap());
        handshake(&mut client, &mut server, 1 << 20);
        for round in 0..3 {
            // The server's update asks for the client's: rustls switches the
            // client's keys at once, and queues its notice.
            server.refresh_traffic_keys().unwrap();
            let mut plain = BytesMut::new();
            to_client(&mut server, &mut client, 1 << 20, &mut plain).unwrap();
            let mut data = BytesMut::from(&b"after the update"[..]);
            let got = to_server(&mut client, &mut data, &mut server)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(got, b"after the update");
        }
    }

    #[test]
    fn an_unknown_issuer_fails_with_the_reason() {
        let pki = pki();
        let other = self::pki();
        for (config, want) in [
            (
                TlsConfig::with_ca_pem(other.ca_pem.as_bytes()).unwrap(),
                "tls: invalid peer certificate: UnknownIssuer",
            ),
            (
                TlsConfig::trusting_nothing().unwrap(),
                "tls: invalid peer certificate: UnknownIssuer (no CA trusted: give --ca FILE, or --insecure)",
            ),
        ] {
            let mut server = server(&pki, &rustls::version::TLS13);
            let mut client = client(config.clone());
            let mut plain = BytesMut::new();
            to_server(&mut client, &mut plain, &mut server).unwrap();
            let error = to_client(&mut server, &mut client, 1 << 20, &mut plain).unwrap_err();
            assert_eq!(config.reason(&error), want);
            // The alert goes to the server, and nothing more is read.
            let sent = to_server(&mut client, &mut plain, &mut server);
            assert!(sent.is_err(), "{sent:?}");
            client.receive(&mut [22, 3, 3, 0, 1, 0], &mut plain).unwrap();
        }
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        for (pem, why) in [
            (&b""[..], "no CERTIFICATE"),
            (b"not pem at all", "no CERTIFICATE"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a CA certificate",
            ),
        ] {
            let error = TlsConfig::with_ca_pem(pem).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        let error = TlsConfig::with_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        assert_eq!(
            TlsConfig::with_ca_pem(pki().ca_pem.as_bytes())
                .unwrap()
                .trust(),
            Trust::Ca
        );
    }
}
