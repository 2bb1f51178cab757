//! The two connections of the bus, to one Redis (`PUBLISH`, `SUBSCRIBE`)
//! or to a Redis 7 cluster with sharded pub/sub (`bus_sharded`:
//! `SPUBLISH`, `SSUBSCRIBE`, each channel served by the shard that owns
//! its slot, so publish traffic spreads over the cluster instead of going
//! to every node of it).

use super::{Bus, Outgoing};
use futures_util::StreamExt;
use redis::{
    aio::{MultiplexedConnection, PubSubSink, PubSubStream},
    cluster_async::ClusterConnection,
    AsyncConnectionConfig, PushInfo, PushKind, RedisResult, Value,
};
use std::{collections::HashMap, time::Duration};
use tokio::sync::mpsc;

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A command Redis has not answered in this long ends the connection: a
/// link that went dark (no reset) must not hold publishes forever.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) enum Publishing {
    Single(MultiplexedConnection),
    Sharded(ClusterConnection),
}

impl Publishing {
    pub(super) async fn connect(bus: &Bus) -> RedisResult<Publishing> {
        if bus.0.sharded {
            // The client would retry a command 16 times with back-off
            // while a shard is down, holding every later publish behind
            // it; two retries ride out a slot moving, and past them the
            // batch fails and is counted like any other.
            let client = redis::cluster::ClusterClient::builder([bus.0.url.expose()])
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(2)
                .build()?;
            Ok(Publishing::Sharded(client.get_async_connection().await?))
        } else {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            let connection = bus
                .0
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            Ok(Publishing::Single(connection))
        }
    }

    /// One round trip for the batch: a pipeline to one Redis; to a
    /// cluster, a pipeline per channel, all at once. How many Redis took,
    /// and the error if any did not.
    pub(super) async fn send(&mut self, batch: &[Outgoing]) -> (u64, RedisResult<()>) {
        match self {
            Publishing::Single(connection) => {
                let mut pipe = redis::pipe();
                for outgoing in batch {
                    pipe.cmd("PUBLISH")
                        .arg(&outgoing.channel)
                        .arg(&outgoing.message)
                        .ignore();
                }
                match pipe.query_async::<()>(connection).await {
                    Ok(()) => (batch.len() as u64, Ok(())),
                    Err(error) => (0, Err(error)),
                }
            }
            Publishing::Sharded(connection) => {
                // One pipeline per channel (a cluster pipeline keeps to one
                // slot), which keeps each topic's order; the channels' go
                // at once.
                let mut pipes: Vec<(redis::Pipeline, u64)> = Vec::new();
                let mut by_channel: HashMap<&str, usize> = HashMap::new();
                for outgoing in batch {
                    let at = *by_channel.entry(&outgoing.channel).or_insert_with(|| {
                        pipes.push((redis::pipe(), 0));
                        pipes.len() - 1
                    });
                    let (pipe, n) = &mut pipes[at];
                    pipe.cmd("SPUBLISH")
                        .arg(&outgoing.channel)
                        .arg(&outgoing.message)
                        .ignore();
                    *n += 1;
                }
                let sends = pipes.into_iter().map(|(pipe, n)| {
                    let mut connection = connection.clone();
                    async move { (n, pipe.query_async::<()>(&mut connection).await) }
                });
                let mut taken = 0;
                let mut result = Ok(());
                for (n, sent) in futures_util::future::join_all(sends).await {
                    match sent {
                        Ok(()) => taken += n,
                        Err(error) => result = Err(error),
                    }
                }
                (taken, result)
            }
        }
    }
}

pub(super) enum Subscribing {
    Single {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    Sharded {
        connection: ClusterConnection,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
    },
}

/// What the subscribed connection hears.
pub(super) enum Incoming {
    Message(redis::Msg),
    Push(PushInfo),
    /// A shard dropped our subscription to this channel itself (its slot
    /// moved to another shard), or confirmed our own SUNSUBSCRIBE.
    Unsubscribed(String),
}

impl Incoming {
    pub(super) fn parts(&self) -> Option<(&str, &[u8])> {
        match self {
            Incoming::Message(message) => {
                Some((message.get_channel_name(), message.get_payload_bytes()))
            }
            Incoming::Push(push) => match push.data.as_slice() {
                [Value::BulkString(channel), Value::BulkString(payload)] => {
                    Some((std::str::from_utf8(channel).ok()?, payload))
                }
                _ => None,
            },
            Incoming::Unsubscribed(_) => None,
        }
    }
}

impl Subscribing {
    pub(super) async fn connect(bus: &Bus) -> Result<Subscribing, String> {
        let connecting = async {
            if bus.0.sharded {
                let (tx, pushes) = mpsc::unbounded_channel();
                let client = redis::cluster::ClusterClient::builder([bus.0.url.expose()])
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()?;
                let connection = client.get_async_connection().await?;
                RedisResult::Ok(Subscribing::Sharded { connection, pushes })
            } else {
                let (sink, stream) = bus.0.client.get_async_pubsub().await?.split();
                RedisResult::Ok(Subscribing::Single { sink, stream })
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(subscribing)) => Ok(subscribing),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("connect timed out".into()),
        }
    }

    pub(super) async fn subscribe(&mut self, channels: &[String]) -> Result<(), String> {
        match self {
            Subscribing::Single { sink, .. } => answered(sink.subscribe(channels)).await,
            Subscribing::Sharded { connection, .. } => each(connection, channels, true).await,
        }
    }

    pub(super) async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), String> {
        match self {
            Subscribing::Single { sink, .. } => answered(sink.unsubscribe(channels)).await,
            Subscribing::Sharded { connection, .. } => each(connection, channels, false).await,
        }
    }

    pub(super) async fn ping(&mut self) -> Result<(), String> {
        match self {
            // In subscribed mode the answer is an array ("pong", ""), not a
            // string: take any value.
            Subscribing::Single { sink, .. } => answered(sink.ping::<Value>()).await.map(drop),
            Subscribing::Sharded { connection, .. } => {
                answered(redis::cmd("PING").query_async::<Value>(connection))
                    .await
                    .map(drop)
            }
        }
    }

    /// The next message; `Err` when the connection is gone. A cluster
    /// connection's own reconnecting (it would subscribe again by itself)
    /// is taken as a loss like any other, so that one policy, ours, runs.
    pub(super) async fn next(&mut self) -> Result<Incoming, String> {
        match self {
            Subscribing::Single { stream, .. } => stream
                .next()
                .await
                .map(Incoming::Message)
                .ok_or_else(|| "connection closed".into()),
            Subscribing::Sharded { pushes, .. } => loop {
                let push = pushes.recv().await.ok_or("connection closed")?;
                match push.kind {
                    PushKind::SMessage => return Ok(Incoming::Push(push)),
                    PushKind::SUnsubscribe => {
                        if let Some(Value::BulkString(channel)) = push.data.first() {
                            let channel = String::from_utf8_lossy(channel).into_owned();
                            return Ok(Incoming::Unsubscribed(channel));
                        }
                    }
                    PushKind::Disconnection => return Err("a shard's connection closed".into()),
                    // Subscription confirmations and the like.
                    _ => continue,
                }
            },
        }
    }
}

/// SSUBSCRIBE (or SUNSUBSCRIBE) each channel, all at once: channels of
/// different slots cannot share one.
async fn each(
    connection: &ClusterConnection,
    channels: &[String],
    subscribe: bool,
) -> Result<(), String> {
    let each = channels.iter().map(|channel| {
        let mut connection = connection.clone();
        async move {
            if subscribe {
                connection.ssubscribe(channel).await
            } else {
                connection.sunsubscribe(channel).await
            }
        }
    });
    answered(async {
        futures_util::future::join_all(each)
            .await
            .into_iter()
            .collect::<RedisResult<()>>()
    })
    .await
}

async fn answered<T>(
    request: impl std::future::Future<Output = RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(RESPONSE_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("Redis did not answer in time".into()),
    }
}
