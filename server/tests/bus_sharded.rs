//! `bus_sharded`: two nodes over a Redis 7 cluster of three shards with
//! sharded pub/sub (SPUBLISH, SSUBSCRIBE).

mod common;

use common::{connect_ws, next, raw, redis::Cluster, send, Server, Ws, WAIT};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn node(cluster: &Cluster) -> Server {
    let url = cluster.url();
    let server = Server::start(&["--bus", &url, "--bus-sharded", "--anonymous-publish"]);
    raw::wait_health(server.addr, "ok");
    server
}

async fn json_of(ws: &mut Ws) -> Value {
    serde_json::from_str(next(ws).await.to_text().unwrap()).unwrap()
}

async fn request(ws: &mut Ws, request: Value) {
    let id = request["id"].clone();
    send(ws, Message::text(request.to_string())).await;
    assert_eq!(json_of(ws).await, json!({"type":"ack","id":id}));
}

#[tokio::test]
async fn sharded_topics_spread_over_the_shards_and_reach_every_node_once() {
    let cluster = Cluster::start();
    let a = node(&cluster);
    let b = node(&cluster);
    let topics: Vec<String> = (0..12).map(|i| format!("shard/{i}")).collect();
    let mut on_a = connect_ws(a.addr).await;
    let mut on_b = connect_ws(b.addr).await;
    for (i, topic) in topics.iter().enumerate() {
        // Acked once the shard that owns the topic confirmed it.
        request(&mut on_b, json!({"type":"subscribe","topic":topic,"id":i})).await;
        request(&mut on_a, json!({"type":"subscribe","topic":topic,"id":i})).await;
    }
    let (channels, holding) = cluster.shard_channels("uringws:*");
    let mut want: Vec<String> = topics.iter().map(|t| format!("uringws:{t}")).collect();
    want.sort();
    assert_eq!(channels, want, "each channel on the one shard that owns it");
    assert!(holding >= 2, "12 topics all on one shard of three");

    let mut publisher = connect_ws(a.addr).await;
    for (i, topic) in topics.iter().enumerate() {
        request(
            &mut publisher,
            json!({"type":"publish","topic":topic,"data":i,"id":i}),
        )
        .await;
    }
    for ws in [&mut on_b, &mut on_a] {
        // Each topic once. Across topics on different shards there is no
        // order: each shard's messages come on its own connection.
        let mut got = Vec::new();
        for _ in &topics {
            let m = json_of(ws).await;
            got.push((
                m["topic"].as_str().unwrap().to_owned(),
                m["data"].as_u64().unwrap(),
            ));
        }
        got.sort();
        let mut want: Vec<(String, u64)> = topics.iter().cloned().zip(0..).collect();
        want.sort();
        assert_eq!(got, want);
        // A's own messages came back from the shards and were dropped.
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(300), next(ws)).await {
            panic!("more than once: {m:?}");
        }
    }
    // Within a topic, order holds: a burst, batched by A into concurrent
    // SPUBLISHes on one shard's connection, arrives as published.
    for n in 0..300u64 {
        let m = json!({"type":"publish","topic":"shard/0","data":n});
        send(&mut publisher, Message::text(m.to_string())).await;
    }
    for n in 0..300u64 {
        assert_eq!(json_of(&mut on_b).await["data"].as_u64(), Some(n));
    }
    for n in 0..300u64 {
        assert_eq!(json_of(&mut on_a).await["data"].as_u64(), Some(n));
    }
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_received_total"), 312);
    assert_eq!(raw::node_metric(a.addr, "uringws_bus_published_total"), 312);

    // The last local subscriber leaves: the node leaves the shard channel.
    for (i, topic) in topics.iter().enumerate() {
        request(
            &mut on_b,
            json!({"type":"unsubscribe","topic":topic,"id":i}),
        )
        .await;
    }
    drop(on_a);
    let started = std::time::Instant::now();
    while !cluster.shard_channels("uringws:*").0.is_empty() {
        assert!(
            started.elapsed() < WAIT,
            "still subscribed: {:?}",
            cluster.shard_channels("uringws:*")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw::node_metric(a.addr, "uringws_bus_reconnects_total"), 0);
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_reconnects_total"), 0);
}

/// What came so far on `ws`, without waiting for more.
async fn drain(ws: &mut Ws, into: &mut Vec<u64>) {
    while let Ok(m) = tokio::time::timeout(Duration::from_millis(1), next(ws)).await {
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        into.push(v["data"].as_u64().unwrap());
    }
}

#[tokio::test]
async fn a_shard_restarted_mid_stream_delivery_resumes_nothing_twice_every_loss_counted() {
    let mut cluster = Cluster::start();
    let a = node(&cluster);
    let b = node(&cluster);
    let mut on_b = connect_ws(b.addr).await;
    request(&mut on_b, json!({"type":"subscribe","topic":"feed","id":1})).await;
    let owner = cluster
        .nodes
        .iter()
        .position(|n| n.cli(&["PUBSUB", "SHARDCHANNELS"]).contains("uringws:feed"))
        .expect("a shard has the channel");
    let mut publisher = connect_ws(a.addr).await;
    let (mut sent, mut got) = (0u64, Vec::new());
    let mut step = async |publisher: &mut Ws, on_b: &mut Ws, got: &mut Vec<u64>| {
        sent += 1;
        let m = json!({"type":"publish","topic":"feed","data":sent});
        send(publisher, Message::text(m.to_string())).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        drain(on_b, got).await;
        sent
    };
    for _ in 0..100 {
        step(&mut publisher, &mut on_b, &mut got).await;
    }
    cluster.nodes[owner].kill();
    for _ in 0..100 {
        step(&mut publisher, &mut on_b, &mut got).await;
    }
    cluster.nodes[owner].restart();
    let before = got.len();
    let started = std::time::Instant::now();
    while got.len() == before
        || raw::health(a.addr)["status"] != "ok"
        || raw::health(b.addr)["status"] != "ok"
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "delivery did not resume"
        );
        step(&mut publisher, &mut on_b, &mut got).await;
    }
    let mut last = 0;
    for _ in 0..50 {
        last = step(&mut publisher, &mut on_b, &mut got).await;
    }
    let tail = std::time::Instant::now();
    while got.last() != Some(&last) {
        assert!(tail.elapsed() < WAIT, "B never got the last one");
        tokio::time::sleep(Duration::from_millis(10)).await;
        drain(&mut on_b, &mut got).await;
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    let missed = raw::node_metric(b.addr, "uringws_bus_missed_total");
    println!("B got {} of {last}, missed {missed}", got.len());
    assert_eq!(got.len() as u64 + missed, last);
    assert!(missed > 0, "the shard was down for 100 publishes");
    assert_eq!(raw::node_metric(b.addr, "uringws_bus_duplicates_total"), 0);
    // A accounts for every publish: taken by a shard, or counted failed.
    let published = raw::node_metric(a.addr, "uringws_bus_published_total");
    let failed = raw::node_metric(a.addr, "uringws_bus_publish_failed_total");
    println!("A: {published} published, {failed} failed");
    assert_eq!(published + failed, last);
    assert!(failed > 0, "publishes while the shard was down");
}
