//! A `redis-server` of the test's own on a free port, stopped on drop.

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    bind: String,
    /// More arguments of `redis-server`.
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_on(&["127.0.0.1"])
    }

    /// Listening on each of `addresses` (127.0.0.1 first, for `redis-cli`).
    pub fn start_on(addresses: &[&str]) -> Redis {
        // Free now; taken by Redis a moment later (the same port again on
        // a restart).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Redis::run(port, addresses.join(" "), Vec::new())
    }

    /// Starts one on `port` with its own directory.
    fn run(port: u16, bind: String, extra: Vec<String>) -> Redis {
        let dir = std::env::temp_dir().join(format!("uringws-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for Redis");
        let mut redis = Redis {
            child: None,
            port,
            dir,
            bind,
            extra,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts it (again) and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "Redis is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", &self.bind])
            // Clients on the test's own links are not loopback.
            .args(["--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server runs: the README's test command installs it (Debian's redis-server)",
            );
        self.child = Some(child);
        let started = Instant::now();
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Redis did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis-cli` against it: what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The channels with a subscriber, sorted.
    pub fn channels(&self, pattern: &str) -> Vec<String> {
        let mut channels: Vec<String> = self
            .cli(&["PUBSUB", "CHANNELS", pattern])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        channels.sort();
        channels
    }

    /// Waits (bounded) until `check` holds of the channels matching `pattern`.
    pub fn wait_channels(&self, pattern: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = Instant::now();
        loop {
            let channels = self.channels(pattern);
            if check(&channels) {
                return channels;
            }
            assert!(
                started.elapsed() < super::WAIT,
                "Redis channels {pattern}: still {channels:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis 7 cluster of three masters (no replicas) on free ports, each
/// node a [`Redis`] of its own; for sharded pub/sub.
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let nodes: Vec<Redis> = (0..3).map(|_| Redis::start_clustered()).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Cluster { nodes };
        let started = Instant::now();
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(started.elapsed() < super::WAIT, "the cluster never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// Every node's sharded channels matching `pattern`, and on how many
    /// nodes there were any.
    pub fn shard_channels(&self, pattern: &str) -> (Vec<String>, usize) {
        let mut all = Vec::new();
        let mut holding = 0;
        for node in &self.nodes {
            let channels: Vec<String> = node
                .cli(&["PUBSUB", "SHARDCHANNELS", pattern])
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            holding += usize::from(!channels.is_empty());
            all.extend(channels);
        }
        all.sort();
        (all, holding)
    }
}

impl Redis {
    /// A node for a cluster: its port and the cluster bus port (+10000)
    /// both free.
    fn start_clustered() -> Redis {
        let port = loop {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            let port = listener.local_addr().expect("an address").port();
            if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                break port;
            }
        };
        let extra = vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-config-file".into(),
            format!("nodes-{port}.conf"),
        ];
        Redis::run(port, "127.0.0.1".into(), extra)
    }
}
