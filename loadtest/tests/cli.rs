//! The `uringws-load` binary end to end: arguments, exit status, JSON.

use std::process::Command;
use std::sync::{Arc, Mutex};
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
