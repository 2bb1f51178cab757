//! The per-connection byte layer between the socket's bytes and the
//! WebSocket codec: plain TCP, or TLS ([`Tls`](super::tls::Tls), rustls
//! driven sans-IO). TLS turns received records into plaintext for the
//! codec and the output queue into records, inside the connection, so the
//! worker moves bytes the same way for every kind of connection.
//! (permessage-deflate is not a byte layer: it works per message, in the
//! codec.)
//!
//! A TLS connection's state is not in the connection but in the worker's
//! [`Outbox::tls`](super::Outbox), by slot: every plain connection would
//! otherwise carry room for a pointer to it.

/// How a connection's bytes are carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteLayer {
    /// As they are: received bytes go to the codec where they lie (a frame
    /// whole in a receive buffer is read from it), queued frames go to the
    /// socket as they are.
    #[default]
    Plain,
    /// Through TLS: received records are decrypted into the connection's
    /// buffer, queued frames are encrypted into one buffer per send.
    Tls,
}

impl ByteLayer {
    /// Whether queued bytes may go to the socket as they are, which direct
    /// sends (one frame, no vectored send) rely on.
    #[inline]
    pub(crate) fn sends_as_is(&self) -> bool {
        *self == ByteLayer::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What "plain pays nothing" rests on: the tag fits where the
    /// connection had padding (`an_idle_connection_is_nine_words`).
    #[test]
    fn plain_sends_as_is() {
        assert_eq!(std::mem::size_of::<ByteLayer>(), 1);
        assert!(ByteLayer::Plain.sends_as_is());
        assert!(!ByteLayer::Tls.sends_as_is());
    }
}
