//! The bus across a real link: node B in a network namespace of the
//! test's own, joined to the host (where Redis and node A run) by a veth
//! pair, with packet loss on it (nftables in the namespace: this kernel
//! has no `netem` qdisc, so no delay), and the link cut for longer than the
//! bus's ping takes to find out. Needs root (`ip netns`, `nft`), as the
//! README's test command runs.

mod common;

use common::{next, redis::Redis, send, Server, Ws, WAIT};
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::Message;

/// A namespace and the veth pair into it, removed on drop.
struct Link {
    ns: String,
    host_if: String,
    ns_if: String,
    host_ip: String,
    ns_ip: String,
}

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} failed (the test needs root)");
}

impl Link {
    fn new() -> Link {
        let id = std::process::id() % 10_000;
        let link = Link {
            ns: format!("uringws-bus-{id}"),
            host_if: format!("uwh{id}"),
            ns_if: format!("uwn{id}"),
            host_ip: format!("10.{}.{}.1", 200 + id / 250 % 50, id % 250),
            ns_ip: format!("10.{}.{}.2", 200 + id / 250 % 50, id % 250),
        };
        run(&["ip", "netns", "add", &link.ns]);
        run(&[
            "ip",
            "link",
            "add",
            &link.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &link.ns_if,
        ]);
        run(&["ip", "link", "set", &link.ns_if, "netns", &link.ns]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", link.host_ip),
            "dev",
            &link.host_if,
        ]);
        run(&["ip", "link", "set", &link.host_if, "up"]);
        link.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", link.ns_ip),
            "dev",
            &link.ns_if,
        ]);
        link.exec(&["ip", "link", "set", &link.ns_if, "up"]);
        link.exec(&["ip", "link", "set", "lo", "up"]);
        link
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Drops, on B's side, the packets each way that the nft expressions
    /// (in, out) match; `None`: none any more.
    fn drop_packets(&self, rules: Option<(&str, &str)>) {
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "nft", "delete", "table", "inet", "cut",
            ])
            .stderr(std::process::Stdio::null())
            .status();
        let Some((input, output)) = rules else {
            return;
        };
        self.exec(&["nft", "add", "table", "inet", "cut"]);
        for (hook, rule) in [("input", input), ("output", output)] {
            let chain =
                format!("add chain inet cut {hook} {{ type filter hook {hook} priority 0; }}");
            self.exec(&["nft", &chain]);
            self.exec(&["nft", &format!("add rule inet cut {hook} {rule} drop")]);
        }
    }

    /// The binary inside the namespace, listening on its side of the link.
    fn node(&self, args: &[&str]) -> Server {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.ns])
            .arg(common::binary())
            .args([
                "--listen",
                &format!("{}:0", self.ns_ip),
                "--workers",
                "2",
                "--no-pin",
            ]);
        Server::spawn(command.args(args))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so both.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status();
        };
        quiet(&["netns", "del", &self.ns]);
        quiet(&["link", "del", &self.host_if]);
    }
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn ws(addr: SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("upgrade")
        .0
}

async fn json_of(ws: &mut Ws) -> Value {
    serde_json::from_str(next(ws).await.to_text().unwrap()).unwrap()
}

/// Publishes `n` on A; the time until B's subscriber has it.
async fn across(publisher: &mut Ws, on_b: &mut Ws, n: u64) -> Duration {
    let sent = Instant::now();
    let m = json!({"type":"publish","topic":"far","data":n});
    send(publisher, Message::text(m.to_string())).await;
    let got = json_of(on_b).await;
    assert_eq!(got["data"], n, "{got}");
    sent.elapsed()
}

#[tokio::test]
async fn the_bus_crosses_a_slow_lossy_link_and_survives_it_going_dark() {
    let link = Link::new();
    let redis = Redis::start_on(&["127.0.0.1", &link.host_ip]);
    let a = Server::start(&["--bus", &redis.url(), "--anonymous-publish"]);
    let far = format!("redis://{}:{}", link.host_ip, redis.port);
    let b = link.node(&["--bus", &far, "--anonymous-publish"]);
    wait_until("both nodes up", WAIT, || {
        common::raw::health(a.addr)["status"] == "ok"
            && common::raw::health(b.addr)["status"] == "ok"
    });
    let mut on_b = ws(b.addr).await;
    send(
        &mut on_b,
        Message::text(json!({"type":"subscribe","topic":"far"}).to_string()),
    )
    .await;
    wait_until("B subscribed in Redis", WAIT, || {
        redis.channels("uringws:*") == ["uringws:far"]
    });
    let mut publisher = ws(a.addr).await;
    let mut n = 0;
    n += 1;
    across(&mut publisher, &mut on_b, n).await;
    // Loss on the link is TCP's to repair, late; should a retransmission
    // take so long that B's ping gives up on Redis, what B then misses is
    // counted. Either way: in order, nothing twice, nothing uncounted.
    let lossy = "numgen random mod 100 < 10";
    link.drop_packets(Some((lossy, lossy)));
    let first = n + 1;
    for _ in 0..50 {
        n += 1;
        let m = json!({"type":"publish","topic":"far","data":n});
        send(&mut publisher, Message::text(m.to_string())).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    link.drop_packets(None);
    wait_until("B back on the bus", Duration::from_secs(20), || {
        common::raw::health(b.addr)["status"] == "ok"
    });
    n += 1;
    let last = n;
    let m = json!({"type":"publish","topic":"far","data":last});
    send(&mut publisher, Message::text(m.to_string())).await;
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        got.push(json_of(&mut on_b).await["data"].as_u64().unwrap());
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    assert!(got.iter().all(|&g| g >= first), "{got:?}");
    let missed = common::raw::node_metric(b.addr, "uringws_bus_missed_total");
    println!(
        "over the lossy link B got {} of {}, missed {missed}",
        got.len(),
        last - first + 1
    );
    assert_eq!(got.len() as u64 + missed, last - first + 1);
    assert_eq!(
        common::raw::node_metric(b.addr, "uringws_bus_duplicates_total"),
        0
    );

    // Dark between B and Redis (and only there: the test still reaches
    // B): no reset, no answer. B's ping finds it (5 s, then 3 s for the
    // answer), and B says so.
    let (from, to) = (
        format!("tcp sport {}", redis.port),
        format!("tcp dport {}", redis.port),
    );
    link.drop_packets(Some((&from, &to)));
    let dark = Instant::now();
    wait_until("B noticing the dark link", Duration::from_secs(15), || {
        common::raw::health(b.addr)["bus"]["subscribe"] == "down"
    });
    let noticed = dark.elapsed();
    assert!(
        noticed >= Duration::from_secs(2),
        "noticed after {noticed:?}"
    );
    // Published while B is away: missed, and counted so once B hears A
    // again.
    let away = 5;
    for _ in 0..away {
        n += 1;
        let m = json!({"type":"publish","topic":"far","data":n});
        send(&mut publisher, Message::text(m.to_string())).await;
    }
    link.drop_packets(None);
    wait_until("B back on the bus", Duration::from_secs(20), || {
        common::raw::health(b.addr)["status"] == "ok"
    });
    wait_until("B subscribed again", WAIT, || {
        redis
            .cli(&["PUBSUB", "NUMSUB", "uringws:far"])
            .lines()
            .nth(1)
            == Some("1")
    });
    n += 1;
    across(&mut publisher, &mut on_b, n).await;
    assert_eq!(
        common::raw::node_metric(b.addr, "uringws_bus_missed_total"),
        missed + away
    );
    assert_eq!(
        common::raw::node_metric(b.addr, "uringws_bus_duplicates_total"),
        0
    );
    assert!(common::raw::node_metric(b.addr, "uringws_bus_reconnects_total") >= 1);
}
