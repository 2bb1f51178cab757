//! Deadlines: the handshake, idle and close timeouts and keep-alive pings.

use super::*;

/// A time in the past (ms since the worker started) in 32 bits, wrapping
/// every 49.7 days: every connection carries two, and a million held
/// connections are 8 MB lighter for it. Read back against the present,
/// which is never that far after a time a deadline still depends on (the
/// longest is a ping or idle interval).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp(u32);

impl Stamp {
    pub(crate) fn at(now: u64) -> Stamp {
        Stamp(now as u32)
    }

    /// The full time, taking it to be at most 2^32 ms before `now`.
    fn full(self, now: u64) -> u64 {
        now.saturating_sub(u64::from((now as u32).wrapping_sub(self.0)))
    }
}

impl Connection {
    /// When [`handle_timeout`](Self::handle_timeout) is next due, `now`
    /// being the time.
    pub(crate) fn poll_timeout(&self, config: &EngineConfig, now: u64) -> Option<u64> {
        let since = self.since.full(now);
        let last_activity = self.last_activity.full(now);
        match &self.state {
            State::Handshake { .. } => Some(since.saturating_add(ms(config.handshake_timeout))),
            State::Open { ping_out, .. } => {
                let idle = (!config.idle_timeout.is_zero())
                    .then(|| last_activity.saturating_add(ms(config.idle_timeout)));
                let ping = (!config.ping_interval.is_zero()).then(|| match ping_out {
                    true => since.saturating_add(ms(config.ping_interval)),
                    false => last_activity.saturating_add(ms(config.ping_interval)),
                });
                match (idle, ping) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closing { .. } => Some(since.saturating_add(ms(config.close_timeout))),
            State::Closed { .. } => None,
        }
    }

    /// Acts on the deadline if it has passed: a handshake or close that
    /// took too long ends the connection; an idle one is closed (1001); a
    /// silent one is pinged, then closed if no frame comes back in time.
    pub(crate) fn handle_timeout(&mut self, ob: &mut Outbox) -> Expired {
        let now = ob.now;
        let config = ob.config.clone();
        if self.poll_timeout(&config, now).is_none_or(|due| due > now) {
            return Expired::Nothing;
        }
        match self.state {
            State::Handshake { .. } => {
                self.on_transport_closed(ob);
                Expired::Handshake
            }
            State::Closing { .. } => {
                self.on_transport_closed(ob);
                Expired::Closing
            }
            State::Open { ping_out, .. } => {
                let idle = !config.idle_timeout.is_zero()
                    && now
                        >= self
                            .last_activity
                            .full(now)
                            .saturating_add(ms(config.idle_timeout));
                if idle {
                    ob.counters.idle_timeouts += 1;
                    self.close(CloseCode::GOING_AWAY, "idle timeout", ob);
                    Expired::Idle
                } else if ping_out {
                    ob.counters.ping_timeouts += 1;
                    self.close(CloseCode::GOING_AWAY, "ping timeout", ob);
                    Expired::Ping
                } else {
                    ob.counters.pings_sent += 1;
                    self.send_control(OpCode::Ping, Bytes::new(), ob);
                    if let State::Open { ping_out, .. } = &mut self.state {
                        *ping_out = true;
                    }
                    self.since = Stamp::at(now);
                    Expired::Nothing
                }
            }
            State::Closed { .. } => Expired::Nothing,
        }
    }
}
