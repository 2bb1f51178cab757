//! Starting and stopping the workers.

use crate::{
    config::EngineConfig,
    handler::Handler,
    pubsub::Publisher,
    remote::{Command, Mailbox},
    stats::WorkerStats,
    worker::{Listener, Worker},
};
use socket2::{Domain, Protocol, Socket, Type};
use std::{
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
};

/// Configures and starts an [`Engine`].
#[derive(Clone)]
pub struct EngineBuilder {
    /// Where to listen, and the TLS settings of TLS listeners.
    addrs: Vec<(SocketAddr, Option<Arc<rustls::ServerConfig>>)>,
    workers: Option<usize>,
    pin: bool,
    raise_open_files_limit: bool,
    config: EngineConfig,
    on_topic_interest: Option<crate::pubsub::InterestObserver>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("addrs", &self.addrs)
            .field("workers", &self.workers)
            .field("pin", &self.pin)
            .field("config", &self.config)
            .field("on_topic_interest", &self.on_topic_interest.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            addrs: Vec::new(),
            workers: None,
            pin: true,
            raise_open_files_limit: true,
            config: EngineConfig::default(),
            on_topic_interest: None,
        }
    }
}

impl EngineBuilder {
    /// An address to listen on; may be given several times. Port 0 picks a
    /// free port, the same for every worker ([`Engine::local_addrs`]).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addrs.push((addr, None));
        self
    }

    /// A TLS (`wss://`) address to listen on, with its rustls settings
    /// (certificates, ALPN, versions); may be given several times, beside
    /// plain ones. The TLS handshake counts against the handshake timeout;
    /// handlers see the same callbacks as on a plain listener.
    pub fn listen_tls(mut self, addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        let config = crate::connection::noting_server_names(&config);
        self.addrs.push((addr, Some(config)));
        self
    }

    /// Worker threads; default one per available CPU.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers.max(1));
        self
    }

    /// Pin worker N to CPU N (default on).
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// Raise the process's soft open-files limit to its hard limit at
    /// start (default on), as Go's runtime does: the soft limit (often
    /// 1,024) caps each worker's file table, so it caps connections.
    pub fn raise_open_files_limit(mut self, raise: bool) -> Self {
        self.raise_open_files_limit = raise;
        self
    }

    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// permessage-deflate for clients that offer it
    /// ([`Compression::shared`](crate::Compression::shared): nothing held
    /// per connection; [`Compression::dedicated`](crate::Compression::dedicated):
    /// a compressor per connection); off unless set. The same as
    /// [`EngineConfig::compression`]: whichever of the two is set later
    /// wins.
    pub fn compression(mut self, compression: crate::Compression) -> Self {
        self.config.compression = Some(compression);
        self
    }

    /// Called with a topic just after the engine's first subscriber to it
    /// arrives or its last one leaves, on any worker, so that something
    /// beyond this process (a broker) can follow what the node as a whole
    /// is interested in; [`Publisher::has_subscribers`] says which of the
    /// two it was. It runs on the worker's thread and must not block: note
    /// the topic and wake whoever acts on it. Every change is followed by
    /// a call, so whoever reads the state after the last call has it right
    /// (calls from two workers may come in either order).
    pub fn on_topic_interest(mut self, observer: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_topic_interest = Some(Arc::new(observer));
        self
    }

    /// Binds the listeners and starts the workers; `factory` builds each
    /// worker's handler on that worker's thread.
    pub fn start<H, F>(self, factory: F) -> io::Result<Engine>
    where
        H: Handler,
        F: Fn(&WorkerContext) -> H + Send + Sync + 'static,
    {
        if self.addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listen address",
            ));
        }
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let limit = open_files_limit(self.raise_open_files_limit);
        let (addrs, mut listeners) = bind_all(&self.addrs, workers, self.config.backlog)?;
        let cores = if self.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let config = Arc::new(self.config);
        let factory = Arc::new(factory);
        let channels = (0..workers)
            .map(|_| Mailbox::new())
            .collect::<io::Result<Vec<_>>>()?;
        let handle = EngineHandle {
            workers: channels
                .iter()
                .map(|(tx, _)| (tx.clone(), Arc::new(WorkerStats::default())))
                .collect(),
            publisher: Publisher::new(
                channels.iter().map(|(tx, _)| tx.clone()).collect(),
                self.on_topic_interest.clone(),
            ),
            shutting_down: Arc::new(AtomicBool::new(false)),
        };
        let mut threads = Vec::with_capacity(workers);
        for (id, (tx, rx)) in channels.into_iter().enumerate() {
            let sockets = std::mem::take(&mut listeners[id]);
            let core = cores.get(id % cores.len().max(1)).copied();
            let (ready_tx, ready_rx) = mpsc::channel();
            let context = WorkerContext {
                worker: id,
                engine: handle.clone(),
            };
            let (config, factory) = (config.clone(), factory.clone());
            let stats = handle.workers[id].1.clone();
            let publisher = handle.publisher.clone();
            let thread = std::thread::Builder::new()
                .name(format!("uringws-{id}"))
                .spawn(move || -> io::Result<()> {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let local = tokio::task::LocalSet::new();
                    let worker = local.block_on(&runtime, async {
                        Worker::new(
                            id,
                            factory(&context),
                            sockets,
                            config,
                            (tx, rx),
                            publisher,
                            stats,
                        )
                    });
                    let worker = match worker {
                        Ok(worker) => {
                            let _ = ready_tx.send(Ok(()));
                            worker
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                            return Err(e);
                        }
                    };
                    local.block_on(&runtime, worker.run())
                })?;
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    handle.shutdown();
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("worker thread died while starting")),
            }
            threads.push(thread);
        }
        log_capacity(&handle, limit, config.max_connections_per_worker);
        Ok(Engine {
            addrs,
            handle,
            threads,
        })
    }
}

/// The open-files limit (soft, hard) after raising the soft one if asked;
/// None where it cannot be read.
fn open_files_limit(raise: bool) -> Option<(u64, u64)> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    if !raise || soft >= hard {
        return Some((soft, hard));
    }
    match rlimit::increase_nofile_limit(hard) {
        Ok(raised) => {
            tracing::debug!(from = soft, to = raised, "raised the soft open-files limit");
            Some((raised, hard))
        }
        Err(error) => {
            tracing::warn!(%error, soft, hard, "cannot raise the soft open-files limit");
            Some((soft, hard))
        }
    }
}

/// Once at start: how many connections this process can hold, and, when
/// the open-files limit is what bounds it, how to raise it.
fn log_capacity(handle: &EngineHandle, limit: Option<(u64, u64)>, configured: usize) {
    let per_worker: Vec<usize> = handle.stats().iter().map(|s| s.capacity()).collect();
    let total: usize = per_worker.iter().sum();
    let (soft, hard) = limit.unwrap_or((u64::MAX, u64::MAX));
    // The table a worker asks for, which the kernel caps at 1 << 20.
    let wanted = configured
        .saturating_add(crate::worker::MAX_RESERVE as usize)
        .min(1 << 20) as u64;
    let bounded = soft < wanted;
    let why = if bounded {
        format!(
            ", bounded by the open-files limit ({soft}); to hold more, raise it: \
             LimitNOFILE= in a systemd unit, --ulimit nofile= with docker run, ulimit -n \
             in a shell"
        )
    } else {
        String::new()
    };
    let message = format!("connection capacity {total}{why}");
    let per_worker = per_worker.first().copied().unwrap_or(0);
    let workers = handle.workers();
    if bounded {
        tracing::warn!(
            capacity = total,
            workers,
            per_worker,
            soft,
            hard,
            "{message}"
        );
    } else {
        tracing::info!(
            capacity = total,
            workers,
            per_worker,
            soft,
            hard,
            "{message}"
        );
    }
}

/// What a handler factory is told about the worker it builds for.
#[derive(Clone)]
pub struct WorkerContext {
    /// The worker's index (and, when pinned, its CPU).
    pub worker: usize,
    /// The whole engine: counters of every worker, shutdown.
    pub engine: EngineHandle,
}

/// `workers` listeners per address, all with `SO_REUSEPORT` on the same
/// port so the kernel spreads connections over the workers.
fn bind_all(
    addrs: &[(SocketAddr, Option<Arc<rustls::ServerConfig>>)],
    workers: usize,
    backlog: i32,
) -> io::Result<(Vec<SocketAddr>, Vec<Vec<Listener>>)> {
    let mut bound = Vec::with_capacity(addrs.len());
    let mut per_worker: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
    for (addr, tls) in addrs {
        let addr = *addr;
        let mut actual = addr;
        for sockets in per_worker.iter_mut() {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            // Accepted sockets inherit it: connections are direct
            // descriptors, which plain setsockopt cannot reach.
            socket.set_tcp_nodelay(true)?;
            socket.bind(&actual.into())?;
            socket.listen(backlog)?;
            if let Some(local) = socket.local_addr()?.as_socket() {
                actual = local;
            }
            sockets.push(Listener {
                socket,
                tls: tls.clone(),
            });
        }
        bound.push(actual);
    }
    Ok((bound, per_worker))
}

/// A running engine.
pub struct Engine {
    addrs: Vec<SocketAddr>,
    handle: EngineHandle,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

/// A `Send + Clone` handle for stopping the engine and reading its counters
/// from anywhere, including handlers.
#[derive(Clone)]
pub struct EngineHandle {
    workers: Vec<(Mailbox, Arc<WorkerStats>)>,
    publisher: Publisher,
    shutting_down: Arc<AtomicBool>,
}

impl EngineHandle {
    /// Starts a graceful shutdown: no new connections, 503 to new upgrades,
    /// close 1001 to every open connection after what is queued for it,
    /// then the workers exit when all are closed or the shutdown timeout
    /// passed.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for (tx, _) in &self.workers {
            let _ = tx.send(Command::Shutdown);
        }
    }

    /// Whether a shutdown began (the workers may still be draining).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Counters of each worker.
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers.iter().map(|(_, s)| s.clone()).collect()
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// A handle for publishing to topics from any thread.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }
}

impl Engine {
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The bound addresses, in the order given (with real ports).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// Waits for every worker to exit.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker panicked")),
            }
        }
        result
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub fn run_until_signal(self) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
            io::Result::Ok(())
        })?;
        tracing::info!("signal received: shutting down");
        self.shutdown();
        let result = self.join();
        match &result {
            Ok(()) => tracing::info!("every worker stopped; exiting"),
            Err(error) => tracing::error!(%error, "a worker failed; exiting"),
        }
        result
    }
}
