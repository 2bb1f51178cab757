//! The `uringws-load` binary end to end: arguments, exit status, JSON.

use std::process::Command;
use uringws_engine::protocol::{handshake::Upgrade, Message};
use uringws_engine::{Accept, Conn, Engine, Handler, Peer, Reject};

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
    let output = Command::new(env!("CARGO_BIN_EXE_uringws-load"))
        .args(["--quiet", "--workers", "2", "--timeout", "3"])
        .args(args)
        .output()
        .expect("uringws-load runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn echo_run_writes_its_numbers_as_json() {
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .start(|_| EchoHandler)
        .unwrap();
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
    assert!(text.contains("expected a ws:// URL"), "{text}");
    let (ok, text) = load(&["connect", "ws://127.0.0.1:1/", "-n", "2"]);
    assert!(!ok);
    assert!(text.contains("error: refused"), "{text}");
    let (ok, text) = load(&["churn", "ws://127.0.0.1:1/"]);
    assert!(!ok);
    assert!(text.contains("--rate"), "{text}");
}
