//! The per-connection byte layer between the socket's bytes and the
//! WebSocket codec. Plain TCP is the only one yet; TLS (rustls, driven
//! sans-IO) is the next: it turns received records into plaintext for the
//! codec and the output queue into records, inside the connection, so the
//! worker moves bytes the same way for every kind of connection.
//! (permessage-deflate is not a byte layer: it works per message, in the
//! codec.)

use uringws_ring::VectoredSend;

/// How a connection's bytes are carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteLayer {
    /// As they are: received bytes go to the codec where they lie (a frame
    /// whole in a receive buffer is read from it), queued frames go to the
    /// socket as they are. Costs no byte of connection state.
    #[default]
    Plain,
}

impl ByteLayer {
    /// Received bytes as the codec is to read them.
    #[inline]
    pub(crate) fn incoming<'a>(&mut self, received: &'a [u8]) -> &'a [u8] {
        match self {
            ByteLayer::Plain => received,
        }
    }

    /// Whether queued bytes may go to the socket as they are, which direct
    /// sends (one frame, no [`VectoredSend`]) rely on.
    #[inline]
    pub(crate) fn sends_as_is(&self) -> bool {
        match self {
            ByteLayer::Plain => true,
        }
    }

    /// A send about to go to the socket, as the transport carries it.
    #[inline]
    pub(crate) fn outgoing(&mut self, send: Box<VectoredSend>) -> Box<VectoredSend> {
        match self {
            ByteLayer::Plain => send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What "plain pays nothing" rests on.
    #[test]
    fn plain_is_free() {
        assert_eq!(std::mem::size_of::<ByteLayer>(), 0);
        let mut layer = ByteLayer::Plain;
        let bytes = [1, 2, 3];
        assert!(std::ptr::eq(layer.incoming(&bytes), &bytes[..]));
    }
}
