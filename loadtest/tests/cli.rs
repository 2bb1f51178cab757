//! The `uringws-load` binary end to end: arguments, exit status, JSON.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uringws_engine::protocol::{handshake::Upgrade, CloseCode};
use uringws_engine::Message;
use uringws_engine::{Accept, Conn, ConnRef, Engine, Handler, Peer, Reject};

struct EchoHandler;

impl Handler for EchoHandler {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        if let Message::Text(text) = message {
            conn.send_text(text);
        }
    }
}

fn load(args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uringws-load"));
    command
        .args(["--quiet", "--workers", "2", "--timeout", "3"])
        .args(args);
    run(command)
}

/// Whether it succeeded, and what it wrote.
fn run(mut command: Command) -> (bool, String) {
    let output = command.output().expect("uringws-load runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn echo_server() -> Engine {
    Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .start(|_| EchoHandler)
        .unwrap()
}

#[test]
fn echo_run_writes_its_numbers_as_json() {
    let engine = echo_server();
    let url = format!("ws://{}/echo", engine.local_addrs()[0]);
    let json = std::env::temp_dir().join(format!("uringws-load-{}.json", std::process::id()));
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "echo",
        &url,
        "-n",
        "10",
        "--duration",
        "1",
    ]);
    assert!(ok, "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["scenario"], "echo");
    assert_eq!(report["counts"]["connections opened"], 10);
    assert!(report["counts"]["messages echoed"].as_u64().unwrap() > 0);
    assert!(report["latency"]["round trip"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["client_cpu"]["system_s"].is_number());
    assert!(text.contains("round trip"), "{text}");
    let _ = std::fs::remove_file(json);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn bad_input_is_reported_and_fails() {
    let (ok, text) = load(&["connect", "http://127.0.0.1:1/"]);
    assert!(!ok);
    assert!(text.contains("expected a ws:// or wss:// URL"), "{text}");
    let (ok, text) = load(&["connect", "ws://127.0.0.1:1/", "-n", "2"]);
    assert!(!ok);
    assert!(text.contains("error: refused"), "{text}");
    let (ok, text) = load(&["churn", "ws://127.0.0.1:1/"]);
    assert!(!ok);
    assert!(text.contains("--rate"), "{text}");
}

#[test]
fn churn_needs_descriptors_only_for_the_connections_open_at_once() {
    // 1,000 connections through a process allowed 300 open files: at
    // 500/s, each held 50 ms (or timing out after 200 ms), fewer than 150
    // are open at once.
    let engine = echo_server();
    let url = format!("ws://{}/", engine.local_addrs()[0]);
    let json = std::env::temp_dir().join(format!("uringws-churn-{}.json", std::process::id()));
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"ulimit -n 300 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_uringws-load"))
        .args(["--quiet", "--workers", "1", "--timeout", "200ms", "--json"])
        .arg(&json)
        .args([
            "churn",
            &url,
            "-n",
            "1000",
            "--rate",
            "500",
            "--concurrency",
            "16",
        ])
        .args(["--hold-for", "50ms", "--duration", "6s"]);
    let (ok, text) = run(command);
    assert!(ok, "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["counts"]["connections opened"], 1000, "{text}");
    assert_eq!(report["counts"]["connections closed"], 1000, "{text}");
    let _ = std::fs::remove_file(json);
    engine.shutdown();
    engine.join().unwrap();
}

type Members = Vec<(uringws_engine::ConnId, ConnRef)>;

/// Sends each binary message to every other connection.
#[derive(Clone, Default)]
struct Broadcast(Arc<Mutex<Members>>);

impl Handler for Broadcast {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        self.0.lock().unwrap().push((conn.id(), conn.handle()));
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        if let Message::Binary(data) = message {
            for (id, to) in self.0.lock().unwrap().iter() {
                if *id != conn.id() {
                    let _ = to.send_binary(data.clone());
                }
            }
        }
    }
    fn close(&mut self, conn: &mut Conn<'_, ()>, _: CloseCode, _: &str) {
        self.0.lock().unwrap().retain(|(id, _)| *id != conn.id());
    }
}

#[test]
fn fanout_broadcast_run_reports_reach_and_latency_as_json() {
    let room = Broadcast::default();
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .start(move |_| room.clone())
        .unwrap();
    let url = format!("ws://{}/", engine.local_addrs()[0]);
    let json =
        std::env::temp_dir().join(format!("uringws-load-fanout-{}.json", std::process::id()));
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "fanout",
        &url,
        "-n",
        "8",
        "--publishers",
        "2",
        "--rate",
        "200",
        "--duration",
        "0.5",
        "--drain",
        "1",
    ]);
    assert!(ok, "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["scenario"], "fanout");
    let fanout = &report["fanout"];
    assert_eq!(fanout["mode"], "broadcast");
    assert_eq!(fanout["publishes_sent"], 100);
    assert_eq!(fanout["deliveries_expected"], 100 * 7);
    assert_eq!(fanout["deliveries_received"], 100 * 7);
    assert_eq!(fanout["reach_percent"], 100.0);
    for zero in [
        "lost",
        "duplicates",
        "reordered",
        "self_deliveries",
        "malformed",
    ] {
        assert_eq!(fanout[zero], 0, "{zero}");
    }
    assert!(fanout["deliveries_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(report["latency"]["delivery"]["count"], 700);
    assert!(report["latency"]["delivery"]["p999_ms"].as_f64().unwrap() > 0.0);
    // The series follows deliveries, second by second, adding up to the
    // totals.
    assert_eq!(report["series_latency"], "delivery");
    let series = report["series"].as_array().unwrap();
    let sum = |key: &str| series.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("sent"), 100);
    assert_eq!(sum("received"), 700);
    assert_eq!(sum("samples"), 700);
    assert_eq!(sum("errors"), 0);
    let options = &report["options"];
    assert_eq!(options["command"], "fanout");
    assert_eq!(options["mode"], "broadcast");
    assert_eq!(options["publishers"], 2);
    assert_eq!(options["duration_s"], 0.5);
    assert_eq!(options["drain_s"], 1.0);
    for line in ["deliveries received", "reach (%)", "100.000", "delivery"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    let _ = std::fs::remove_file(json);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn fanout_bad_input_is_refused_before_connecting() {
    let (ok, text) = load(&["fanout", "ws://127.0.0.1:1/", "--size", "10"]);
    assert!(!ok);
    assert!(text.contains("--size must be at least 24"), "{text}");
    let (ok, text) = load(&[
        "fanout",
        "ws://127.0.0.1:1/ws",
        "--mode",
        "uringws",
        "--publishers",
        "2",
        "--subscribers",
        "5",
        "-n",
        "9",
    ]);
    assert!(!ok);
    assert!(text.contains("--publishers + --subscribers (7)"), "{text}");
    let (ok, text) = load(&["fanout", "ws://127.0.0.1:1/", "--subscribers", "5"]);
    assert!(!ok);
    assert!(text.contains("--mode uringws"), "{text}");
}

/// A test CA, and a certificate it signed for `localhost`.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki(ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
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

/// The PEM of `pki`'s CA in a file of its own, removed when dropped.
struct CaFile(PathBuf);

impl CaFile {
    fn new(pki: &Pki, name: &str) -> CaFile {
        let path =
            std::env::temp_dir().join(format!("uringws-load-{name}-{}-ca.pem", std::process::id()));
        std::fs::write(&path, &pki.ca_pem).unwrap();
        CaFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What the server saw in each ClientHello: the SNI and the ALPN offered.
type Hellos = Arc<Mutex<Vec<(Option<String>, Vec<Vec<u8>>)>>>;

#[derive(Debug)]
struct Recording {
    key: Arc<CertifiedKey>,
    hellos: Hellos,
}

impl ResolvesServerCert for Recording {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let alpn = hello
            .alpn()
            .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        self.hellos
            .lock()
            .unwrap()
            .push((hello.server_name().map(str::to_string), alpn));
        Some(self.key.clone())
    }
}

/// A server configuration with `pki`'s certificate.
fn wss_config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    wss_recording(pki).0
}

/// An echo engine on a TLS listener with `pki`'s certificate.
fn wss_server(pki: &Pki) -> (Engine, Hellos) {
    let (config, hellos) = wss_recording(pki);
    let engine = Engine::builder()
        .listen_tls("127.0.0.1:0".parse().unwrap(), config)
        .workers(2)
        .pin(false)
        .start(|_| EchoHandler)
        .unwrap();
    (engine, hellos)
}

/// A server configuration with `pki`'s certificate, recording what each
/// ClientHello asked for.
fn wss_recording(pki: &Pki) -> (Arc<rustls::ServerConfig>, Hellos) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = provider
        .key_provider
        .load_private_key(pki.key.clone_key())
        .unwrap();
    let hellos = Hellos::default();
    let resolver = Recording {
        key: Arc::new(CertifiedKey::new(pki.chain.clone(), key)),
        hellos: hellos.clone(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), hellos)
}

fn read_report(path: &std::path::Path) -> serde_json::Value {
    let report = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    report
}

fn json_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("uringws-load-{name}-{}.json", std::process::id()))
}

#[test]
fn wss_echo_trusting_the_given_ca_reports_the_tls_handshake_apart() {
    let pki = pki("wss echo CA");
    let ca = CaFile::new(&pki, "wss-echo");
    let (engine, hellos) = wss_server(&pki);
    // The certificate is for localhost: --sni names it, for SNI and for
    // the check, while the URL gives the address.
    let url = format!("wss://{}/echo", engine.local_addrs()[0]);
    let json = json_path("wss-echo");
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "--ca",
        ca.path(),
        "--sni",
        "localhost",
        "echo",
        &url,
        "-n",
        "10",
        "--duration",
        "1",
    ]);
    assert!(ok, "{text}");
    let report = read_report(&json);
    assert_eq!(report["errors"], serde_json::json!({}), "{text}");
    assert_eq!(report["counts"]["connections opened"], 10);
    assert!(report["counts"]["messages echoed"].as_u64().unwrap() > 0);
    let latency = &report["latency"];
    for key in ["handshake", "tls handshake", "upgrade"] {
        assert_eq!(latency[key]["count"], 10, "{key}: {text}");
    }
    // The whole handshake takes at least its TLS part.
    let ms = |key: &str, p: &str| latency[key][p].as_f64().unwrap();
    assert!(ms("tls handshake", "min_ms") > 0.0);
    assert!(ms("handshake", "max_ms") >= ms("tls handshake", "min_ms"));
    assert!(latency["round trip"]["count"].as_u64().unwrap() > 0);
    assert_eq!(report["options"]["ca"], ca.path());
    assert_eq!(report["options"]["sni"], "localhost");
    assert_eq!(report["options"]["insecure"], false);
    for line in ["tls handshake", "upgrade", "round trip"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    let hellos = hellos.lock().unwrap();
    assert_eq!(hellos.len(), 10);
    for (sni, alpn) in hellos.iter() {
        assert_eq!(sni.as_deref(), Some("localhost"));
        assert_eq!(alpn, &[b"http/1.1".to_vec()]);
    }
    drop(hellos);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn wss_insecure_accepts_a_certificate_of_any_ca_and_name() {
    let pki = pki("wss insecure CA");
    let (engine, hellos) = wss_server(&pki);
    // Neither the CA nor the name (an IP address; the certificate is for
    // localhost) would pass a check.
    let url = format!("wss://{}/", engine.local_addrs()[0]);
    let json = json_path("wss-insecure");
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "--insecure",
        "echo",
        &url,
        "-n",
        "4",
        "--duration",
        "0.5",
    ]);
    assert!(ok, "{text}");
    let report = read_report(&json);
    assert_eq!(report["errors"], serde_json::json!({}), "{text}");
    assert_eq!(report["counts"]["connections opened"], 4);
    assert!(report["counts"]["messages echoed"].as_u64().unwrap() > 0);
    assert_eq!(report["latency"]["tls handshake"]["count"], 4);
    assert_eq!(report["options"]["insecure"], true);
    // No SNI for an IP address.
    let hellos = hellos.lock().unwrap();
    assert_eq!(hellos.len(), 4);
    assert!(hellos.iter().all(|(sni, _)| sni.is_none()), "{hellos:?}");
    drop(hellos);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn wss_untrusted_certificates_fail_every_connection_with_the_tls_reason() {
    let pki = pki("wss untrusted CA");
    let (engine, _) = wss_server(&pki);
    let url = format!("wss://{}/", engine.local_addrs()[0]);
    let other = self::pki("wss some other CA");
    let other_ca = CaFile::new(&other, "wss-other");
    let right_ca = CaFile::new(&pki, "wss-right");
    for (flags, reason) in [
        (
            vec![],
            "tls: invalid peer certificate: UnknownIssuer (no CA trusted: give --ca FILE, or --insecure)",
        ),
        (
            vec!["--ca", other_ca.path()],
            "tls: invalid peer certificate: UnknownIssuer",
        ),
        // The right CA, but the certificate is for localhost, not for the
        // URL's address.
        (
            vec!["--ca", right_ca.path()],
            "tls: invalid peer certificate: certificate not valid for name",
        ),
    ] {
        let json = json_path("wss-untrusted");
        let mut args = vec!["--json", json.to_str().unwrap()];
        args.extend(flags);
        args.extend(["connect", &url, "-n", "6"]);
        let started = Instant::now();
        let (ok, text) = load(&args);
        // Failed at once, not at the 3 s timeout.
        assert!(started.elapsed() < Duration::from_secs(3), "{text}");
        assert!(!ok, "{text}");
        let report = read_report(&json);
        let errors = report["errors"].as_object().unwrap();
        assert_eq!(errors.len(), 1, "{text}");
        let (got, n) = errors.iter().next().unwrap();
        assert!(got.starts_with(reason), "{got}");
        assert_eq!(n, 6, "{text}");
        assert!(report["counts"].get("connections opened").is_none(), "{text}");
        assert!(text.contains("error: tls: invalid peer certificate"), "{text}");
    }
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn wss_hold_keeps_every_connection() {
    let pki = pki("wss hold CA");
    let ca = CaFile::new(&pki, "wss-hold");
    let (engine, _) = wss_server(&pki);
    let url = format!("wss://{}/", engine.local_addrs()[0]);
    let json = json_path("wss-hold");
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "--ca",
        ca.path(),
        "--sni",
        "localhost",
        "hold",
        &url,
        "-n",
        "200",
        "--duration",
        "2",
        "--ping-interval",
        "500ms",
    ]);
    assert!(ok, "{text}");
    let report = read_report(&json);
    assert_eq!(report["errors"], serde_json::json!({}), "{text}");
    assert_eq!(report["counts"]["alive at end"], 200, "{text}");
    assert!(report["counts"]["pongs"].as_u64().unwrap() >= 200, "{text}");
    assert_eq!(report["latency"]["tls handshake"]["count"], 200);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn wss_churn_and_fanout_run_clean() {
    let pki = pki("wss churn CA");
    let (engine, _) = wss_server(&pki);
    let url = format!("wss://{}/", engine.local_addrs()[0]);
    let json = json_path("wss-churn");
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "--insecure",
        "churn",
        &url,
        "-n",
        "40",
        "--rate",
        "40",
        "--hold-for",
        "200ms",
        "--duration",
        "2",
    ]);
    assert!(ok, "{text}");
    let report = read_report(&json);
    assert_eq!(report["counts"]["connections opened"], 40, "{text}");
    assert_eq!(report["counts"]["connections closed"], 40, "{text}");
    assert_eq!(report["latency"]["tls handshake"]["count"], 40);
    engine.shutdown();
    engine.join().unwrap();

    let room = Broadcast::default();
    let engine = Engine::builder()
        .listen_tls("127.0.0.1:0".parse().unwrap(), wss_config(&pki))
        .workers(2)
        .pin(false)
        .start(move |_| room.clone())
        .unwrap();
    let url = format!("wss://{}/", engine.local_addrs()[0]);
    let json = json_path("wss-fanout");
    let (ok, text) = load(&[
        "--json",
        json.to_str().unwrap(),
        "--insecure",
        "fanout",
        &url,
        "-n",
        "6",
        "--rate",
        "100",
        "--duration",
        "0.5",
        "--drain",
        "1",
    ]);
    assert!(ok, "{text}");
    let report = read_report(&json);
    assert_eq!(report["fanout"]["deliveries_received"], 50 * 5, "{text}");
    assert_eq!(report["fanout"]["lost"], 0, "{text}");
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn wss_bad_tls_options_are_refused_before_connecting() {
    let (ok, text) = load(&[
        "--ca",
        "/nonexistent/ca.pem",
        "connect",
        "wss://127.0.0.1:1/",
    ]);
    assert!(!ok);
    assert!(text.contains("--ca /nonexistent/ca.pem"), "{text}");
    let (ok, text) = load(&[
        "--ca",
        "/nonexistent/ca.pem",
        "--insecure",
        "connect",
        "wss://127.0.0.1:1/",
    ]);
    assert!(!ok);
    assert!(text.contains("cannot be used with"), "{text}");
    let (ok, text) = load(&["--sni", "not a name", "connect", "wss://127.0.0.1:1/"]);
    assert!(!ok);
    assert!(text.contains("--sni"), "{text}");
}

/// `--resume`: connections after the first offer the tickets the server
/// sent, and the server resumes them (it counts the kinds apart); without
/// it every handshake is a full one.
#[test]
fn wss_resume_offers_the_servers_tickets() {
    let pki = pki("wss resume CA");
    let (engine, _) = wss_server(&pki);
    let url = format!("wss://{}/", engine.local_addrs()[0]);
    let count = |engine: &Engine| {
        let stats = engine.handle().stats();
        (
            stats.iter().map(|s| s.tls_handshakes_full()).sum::<u64>(),
            stats
                .iter()
                .map(|s| s.tls_handshakes_resumed())
                .sum::<u64>(),
        )
    };
    let (ok, text) = load(&[
        "--insecure",
        "connect",
        &url,
        "-n",
        "50",
        "--concurrency",
        "1",
    ]);
    assert!(ok, "{text}");
    let wait_for = |what: &str, check: &dyn Fn((u64, u64)) -> bool| {
        let started = std::time::Instant::now();
        while !check(count(&engine)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {:?}",
                count(&engine)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("50 full handshakes", &|(full, resumed)| {
        full == 50 && resumed == 0
    });
    let (ok, text) = load(&[
        "--insecure",
        "--resume",
        "connect",
        &url,
        "-n",
        "50",
        "--concurrency",
        "1",
    ]);
    assert!(ok, "{text}");
    // Each worker's first connection has no ticket yet.
    wait_for("the rest resumed", &|(full, resumed)| {
        full <= 52 && full + resumed == 100
    });
    // The client counts the same resumptions the server does.
    let (_, resumed) = count(&engine);
    let line = text
        .lines()
        .find(|l| l.contains("tls sessions resumed"))
        .unwrap_or_else(|| panic!("no resumption count: {text}"));
    assert!(
        line.split_whitespace().any(|w| w == resumed.to_string()),
        "{line} against {resumed}"
    );
    engine.shutdown();
    engine.join().unwrap();
}
