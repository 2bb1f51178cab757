//! The auth deadline of connections that upgraded without a token and must
//! send `auth` first: one worker-local task closes those still waiting when
//! their time is up. The task runs only while some connection waits, and
//! every connection gets the same timeout, so deadlines come due in the
//! order they were set and a queue is the whole timer.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    rc::Rc,
    time::{Duration, Instant},
};
use uringws_engine::{protocol::CloseCode, ConnRef};

/// A connection, from `Conn::id`.
pub type ConnKey = uringws_engine::ConnId;

#[derive(Default)]
struct Waiting {
    due: VecDeque<(Instant, ConnKey)>,
    /// Connections still waiting. One that authenticated or closed is
    /// removed here; its `due` entry is skipped when it comes up.
    conns: HashMap<ConnKey, ConnRef>,
    running: bool,
}

pub struct AuthDeadlines {
    timeout: Duration,
    waiting: Rc<RefCell<Waiting>>,
}

impl AuthDeadlines {
    pub fn new(timeout: Duration) -> Self {
        AuthDeadlines {
            timeout,
            waiting: Rc::default(),
        }
    }

    /// `conn` must authenticate within the timeout, or be closed with 1008.
    /// Call from a handler callback (it spawns on the worker's `LocalSet`).
    pub fn watch(&self, key: ConnKey, conn: ConnRef) {
        let mut waiting = self.waiting.borrow_mut();
        waiting.due.push_back((Instant::now() + self.timeout, key));
        waiting.conns.insert(key, conn);
        if !waiting.running {
            waiting.running = true;
            tokio::task::spawn_local(expire(self.waiting.clone()));
        }
    }

    /// The connection authenticated or closed.
    pub fn done(&self, key: ConnKey) {
        self.waiting.borrow_mut().conns.remove(&key);
    }
}

async fn expire(waiting: Rc<RefCell<Waiting>>) {
    loop {
        let next = waiting.borrow().due.front().map(|&(at, _)| at);
        let Some(at) = next else {
            waiting.borrow_mut().running = false;
            return;
        };
        tokio::time::sleep_until(at.into()).await;
        let now = Instant::now();
        let mut late = Vec::new();
        {
            let mut waiting = waiting.borrow_mut();
            while let Some(&(at, key)) = waiting.due.front() {
                if at > now {
                    break;
                }
                waiting.due.pop_front();
                late.extend(waiting.conns.remove(&key));
            }
        }
        for conn in late {
            // Gone: the worker is stopping, and the connection with it.
            let _ = conn.close(CloseCode::POLICY_VIOLATION, "authentication timed out");
        }
    }
}
