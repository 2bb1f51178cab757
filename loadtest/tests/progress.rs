//! The binary as scripts and CI run it: stderr a pipe, durations with
//! units, and the JSON report's options, start time, rates and per-second
//! series, against a real echo server.

use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};
use uringws_engine::Engine;

mod common;
use common::EchoHandler;

fn server() -> (Engine, String) {
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .pin(false)
        .start(|_| EchoHandler)
        .unwrap();
    let url = format!("ws://{}/echo", engine.local_addrs()[0]);
    (engine, url)
}

fn stop(engine: Engine) {
    engine.shutdown();
    engine.join().unwrap();
}

/// Runs the binary with stdout and stderr captured (so stderr is a pipe,
/// not a terminal), and how long it took.
fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_uringws-load"))
        .args(args)
        .output()
        .expect("uringws-load runs");
    (output, started.elapsed())
}

/// [`run`] with two workers and a short handshake timeout.
fn load(args: &[&str]) -> (Output, Duration) {
    run(&[&["--workers", "2", "--timeout", "3s"], args].concat())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("uringws-load-{name}-{}.json", std::process::id()))
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the run wrote its JSON");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("valid JSON")
}

/// `key=value` out of a plain progress line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// A `12/s` or `0.5/s` rate of a progress line.
fn rate(line: &str, key: &str) -> f64 {
    let value = field(line, key);
    value
        .strip_suffix("/s")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key}={value} is not a rate"))
}

fn sum(series: &[Value], key: &str) -> u64 {
    series.iter().map(|s| s[key].as_u64().unwrap()).sum()
}

#[test]
fn plain_progress_lines_and_a_per_second_series() {
    let (engine, url) = server();
    let json = json_path("series");
    let before = SystemTime::now();
    // 20 connections opened at 10/s: all open after 2 s, so later lines
    // show no new connections, which an average since the start would.
    let (output, _) = load(&[
        "--progress-interval",
        "1s",
        "--json",
        json.to_str().unwrap(),
        "echo",
        &url,
        "-n",
        "20",
        "--rate",
        "10",
        "--duration",
        "5s",
    ]);
    stop(engine);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(!err.contains('\x1b'), "escape codes on a pipe: {err:?}");
    assert!(!err.contains('\r'), "carriage returns on a pipe: {err:?}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("uringws-load echo t="))
        .collect();
    assert!(lines.len() >= 3, "{err}");
    // One line a second, each for the second before it alone.
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(field(line, "t"), format!("{i}s-{}s", i + 1), "{err}");
        assert_eq!(field(line, "errors"), "0", "{line}");
        assert!(rate(line, "sent") > 0.0, "{line}");
        assert!(rate(line, "received") > 0.0, "{line}");
        assert!(field(line, "round_trip_p99").ends_with("ms"), "{line}");
    }
    let first = rate(lines[0], "opened");
    assert!((5.0..=15.0).contains(&first), "{}", lines[0]);
    let third = lines[2];
    assert_eq!(rate(third, "opened"), 0.0, "{third}");
    assert_eq!(field(third, "alive"), "20", "{third}");

    let report = read_json(&json);
    let options = &report["options"];
    assert_eq!(options["command"], "echo");
    assert_eq!(options["urls"], serde_json::json!([url]));
    assert_eq!(options["connections"], 20);
    assert_eq!(options["rate"], 10.0);
    assert_eq!(options["duration_s"], 5.0);
    assert_eq!(options["timeout_s"], 3.0);
    assert_eq!(options["progress_interval_s"], 1.0);
    assert_eq!(options["workers"], 2);
    assert_eq!(options["in_flight"], 1, "defaults are filled in");
    assert!(options["message_rate"].is_null());
    assert!(options["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "5s"));

    let started_at = report["started_at"].as_str().unwrap();
    assert!(started_at.ends_with('Z'), "{started_at}");
    let started = humantime::parse_rfc3339(started_at).unwrap();
    // Milliseconds in the stamp: allow for the rounding down.
    assert!(started + Duration::from_millis(1) >= before, "{started_at}");
    assert!(started <= SystemTime::now(), "{started_at}");

    let duration = report["duration_s"].as_f64().unwrap();
    let echoed = report["counts"]["messages echoed"].as_u64().unwrap();
    assert!(echoed > 0);
    let echoed_rate = report["rates_per_second"]["messages echoed"]
        .as_f64()
        .unwrap();
    assert!((echoed_rate - echoed as f64 / duration).abs() < 1e-6);
    assert!(
        (report["rates_per_second"]["connections opened"]
            .as_f64()
            .unwrap()
            - 20.0 / duration)
            .abs()
            < 1e-6
    );

    assert_eq!(report["series_latency"], "round trip");
    let series = report["series"].as_array().unwrap();
    assert!(
        (5..=6).contains(&series.len()),
        "{} seconds in a 5 s run",
        series.len()
    );
    for (i, s) in series.iter().enumerate() {
        assert_eq!(s["t_s"], i as u64);
        if s["samples"].as_u64().unwrap() > 0 {
            assert!(s["p50_ms"].as_f64().unwrap() <= s["p99_ms"].as_f64().unwrap());
        } else {
            assert!(s["p50_ms"].is_null() && s["p99_ms"].is_null(), "{s}");
        }
    }
    assert_eq!(sum(series, "received"), echoed);
    assert_eq!(
        sum(series, "samples"),
        report["latency"]["round trip"]["count"].as_u64().unwrap()
    );
    assert_eq!(sum(series, "opened"), 20);
    assert_eq!(sum(series, "errors"), 0);
    // Closed loop, one in flight: every message but the last of each
    // connection was answered.
    let sent = sum(series, "sent");
    assert!(sent >= echoed && sent <= echoed + 20, "{sent} {echoed}");
    assert_eq!(series[3]["connections"], 20);
    assert_eq!(series[3]["opened"], 0);
}

#[test]
fn durations_take_units_or_bare_seconds() {
    let (engine, url) = server();
    let runs: Vec<_> = std::thread::scope(|s| {
        let url = &url;
        let handles: Vec<_> = [("2s", 2.0, false), ("2", 2.0, true), ("1500ms", 1.5, true)]
            .into_iter()
            .map(|(given, seconds, quiet)| {
                s.spawn(move || {
                    let json = json_path(&format!("duration-{given}"));
                    let mut args = vec!["--progress-interval", "1s", "--json"];
                    args.push(json.to_str().unwrap());
                    if quiet {
                        args.push("--quiet");
                    }
                    let hold = ["hold", url, "-n", "2", "--duration", given];
                    args.extend(hold);
                    args.extend(["--ping-interval", "250ms"]);
                    let (output, took) = load(&args);
                    (given, seconds, quiet, output, took, read_json(&json))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    stop(engine);
    for (given, seconds, quiet, output, took, report) in runs {
        let err = stderr(&output);
        assert!(output.status.success(), "--duration {given}: {err}");
        let wanted = Duration::from_secs_f64(seconds);
        // The run, then a moment for the sockets to close.
        assert!(took >= wanted, "--duration {given} took {took:?}");
        assert!(
            took < wanted + Duration::from_secs(2),
            "--duration {given} took {took:?}"
        );
        assert_eq!(report["options"]["duration_s"], seconds, "{given}");
        assert_eq!(report["options"]["ping_interval_s"], 0.25, "{given}");
        assert_eq!(report["counts"]["alive at end"], 2, "{given}");
        assert!(report["counts"]["pongs"].as_u64().unwrap() >= 2, "{given}");
        let progress = err
            .lines()
            .filter(|l| l.starts_with("uringws-load hold t="));
        if quiet {
            assert_eq!(progress.count(), 0, "--quiet: {err}");
        } else {
            assert!(progress.count() >= 1, "{err}");
        }
    }
}

#[test]
fn bad_durations_are_refused_with_the_accepted_forms() {
    for args in [
        &["echo", "ws://127.0.0.1:1/", "--duration", "10 parsecs"][..],
        &["echo", "ws://127.0.0.1:1/", "--duration=-1"],
        &["hold", "ws://127.0.0.1:1/", "--ping-interval", "soon"],
        &["--timeout", "1x", "connect", "ws://127.0.0.1:1/"],
        &["fanout", "ws://127.0.0.1:1/", "--drain", "1mm"],
    ] {
        let (output, took) = run(args);
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?}");
        assert!(err.contains("invalid value"), "{args:?}: {err}");
        assert!(err.contains("500ms, 10s, 2m, 1h, 1m30s"), "{args:?}: {err}");
        // Refused before any connection is tried.
        assert!(took < Duration::from_secs(2), "{args:?}");
    }
    let (output, _) = run(&[
        "--progress-interval",
        "100ms",
        "connect",
        "ws://127.0.0.1:1/",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("at least 1s"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_shows_defaults_with_units() {
    let help = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_uringws-load"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let words = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let echo = words(help(&["echo", "--help"]));
    for want in [
        "--duration <DURATION> How long to run [default: 10s]",
        "--timeout <DURATION>",
        "--progress-interval <DURATION>",
        "[default: 5s]",
    ] {
        assert!(echo.contains(want), "{want}: {echo}");
    }
    let hold = words(help(&["hold", "--help"]));
    assert!(
        hold.contains("Time between pings per connection (0: none) [default: 5s]"),
        "{hold}"
    );
    let fanout = words(help(&["fanout", "--help"]));
    for want in ["[default: 2s]", "[default: 30s]"] {
        assert!(fanout.contains(want), "{want}: {fanout}");
    }
}

#[test]
fn a_connect_storm_has_its_handshakes_in_the_series() {
    let (engine, url) = server();
    let json = json_path("connect");
    let (output, _) = load(&[
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "connect",
        &url,
        "-n",
        "50",
    ]);
    stop(engine);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "--quiet: {}", stderr(&output));
    let report = read_json(&json);
    assert_eq!(report["options"]["command"], "connect");
    assert_eq!(report["series_latency"], "handshake");
    let series = report["series"].as_array().unwrap();
    assert!(!series.is_empty());
    assert_eq!(sum(series, "opened"), 50);
    assert_eq!(sum(series, "samples"), 50);
    assert_eq!(sum(series, "sent") + sum(series, "received"), 0);
}
