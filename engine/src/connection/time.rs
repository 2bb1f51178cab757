//! Deadlines: the handshake, idle and close timeouts and keep-alive pings.

use super::*;

impl Connection {
    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub(crate) fn poll_timeout(&self, config: &EngineConfig) -> Option<u64> {
        match &self.state {
            State::Handshake { .. } => {
                Some(self.since.saturating_add(ms(config.handshake_timeout)))
            }
            State::Open { ping_out, .. } => {
                let idle = (!config.idle_timeout.is_zero())
                    .then(|| self.last_activity.saturating_add(ms(config.idle_timeout)));
                let ping = (!config.ping_interval.is_zero()).then(|| match ping_out {
                    true => self.since.saturating_add(ms(config.ping_interval)),
                    false => self.last_activity.saturating_add(ms(config.ping_interval)),
                });
                match (idle, ping) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closing { .. } => Some(self.since.saturating_add(ms(config.close_timeout))),
            State::Closed { .. } => None,
        }
    }

    /// Acts on the deadline if it has passed: a handshake or close that
    /// took too long ends the connection; an idle one is closed (1001); a
    /// silent one is pinged, then closed if no frame comes back in time.
    pub(crate) fn handle_timeout(&mut self, ob: &mut Outbox) -> Expired {
        let now = ob.now;
        let config = ob.config.clone();
        if self.poll_timeout(&config).is_none_or(|due| due > now) {
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
                    && now >= self.last_activity.saturating_add(ms(config.idle_timeout));
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
                    self.since = now;
                    Expired::Nothing
                }
            }
            State::Closed { .. } => Expired::Nothing,
        }
    }
}
