//! What a client may send after the handshake besides application data,
//! read as rustls reads it, and the alerts we answer with.

use super::{
    unexpected, Direction, Records, ALERT, APPLICATION_DATA, CLIENT_HELLO, FATAL, HANDSHAKE,
    KEY_UPDATE, MAX_KEY_UPDATES, MAX_WARNINGS, WARNING,
};
use bytes::BytesMut;
use rustls::{AlertDescription, Error, InvalidMessage, PeerMisbehaved};

impl Records {
    /// Acts on an opened record; false once the peer closed.
    pub(super) fn on_record(
        &mut self,
        typ: u8,
        data: &[u8],
        plain: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        match typ {
            APPLICATION_DATA => {
                self.key_updates = 0;
                self.warnings = 0;
                plain.extend_from_slice(data);
                Ok(true)
            }
            ALERT => self.on_alert(data),
            HANDSHAKE => {
                self.on_handshake(data, out)?;
                Ok(true)
            }
            _ => Err(unexpected(typ)),
        }
    }

    pub(super) fn on_alert(&mut self, data: &[u8]) -> Result<bool, Error> {
        let &[level, description] = data else {
            return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
        };
        let description = AlertDescription::from(description);
        if description == AlertDescription::CloseNotify {
            return Ok(false);
        }
        // TLS 1.3 has no warnings but user_canceled, which precedes a
        // close_notify (RFC 8446 §6.1); TLS 1.2 warnings are informational.
        let warning = match self.tls13 {
            true => description == AlertDescription::UserCanceled,
            false => level == WARNING,
        };
        if !warning {
            return Err(Error::AlertReceived(description));
        }
        self.warnings += 1;
        if self.warnings > MAX_WARNINGS {
            return Err(PeerMisbehaved::TooManyWarningAlertsReceived.into());
        }
        Ok(true)
    }

    /// Handshake messages after the handshake: a TLS 1.3 KeyUpdate (each
    /// message whole in its record: a client of ours splits none) or a TLS
    /// 1.2 ClientHello.
    pub(super) fn on_handshake(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if data.is_empty() {
            return Err(Error::InvalidMessage(InvalidMessage::InvalidEmptyPayload));
        }
        while let Some(&[typ, a, b, c]) = data.get(..4) {
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            let body = data
                .get(4..4 + len)
                .ok_or(Error::InvalidMessage(InvalidMessage::MessageTooShort))?;
            data = &data[4 + len..];
            match (self.tls13, typ) {
                (true, KEY_UPDATE) => {
                    // A new key starts with the next record: nothing may
                    // follow in this one (RFC 8446 §5.1).
                    if !data.is_empty() {
                        return Err(PeerMisbehaved::KeyEpochWithPendingFragment.into());
                    }
                    let requested = match body {
                        [0] => false,
                        [1] => true,
                        _ => return Err(Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate)),
                    };
                    return self.on_key_update(requested, out);
                }
                // Renegotiation is refused, as rustls does (RFC 5746 §4.4).
                (false, CLIENT_HELLO) => {
                    self.warnings += 1;
                    if self.warnings > MAX_WARNINGS {
                        return Err(PeerMisbehaved::TooManyWarningAlertsReceived.into());
                    }
                    self.alert(WARNING, AlertDescription::NoRenegotiation, out)?;
                }
                _ => return Err(unexpected(HANDSHAKE)),
            }
        }
        if !data.is_empty() {
            return Err(Error::InvalidMessage(InvalidMessage::MessageTooShort));
        }
        Ok(())
    }

    /// The peer's key changed; ours changes too if it asks, after the
    /// KeyUpdate that says so goes out under the old one.
    pub(super) fn on_key_update(
        &mut self,
        requested: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.key_updates += 1;
        if self.key_updates > MAX_KEY_UPDATES {
            return Err(PeerMisbehaved::TooManyKeyUpdateRequests.into());
        }
        let keys = self.keys.as_mut().ok_or(unexpected(HANDSHAKE))?;
        self.rx = Direction::new(keys.update_rx_secret()?)?;
        if requested {
            let mut wire = BytesMut::new();
            self.update_tx_key(&mut wire)?;
            out.extend_from_slice(&wire);
        }
        Ok(())
    }

    /// Sends a KeyUpdate (not asking for the peer's) and changes our key.
    pub(super) fn update_tx_key(&mut self, wire: &mut BytesMut) -> Result<(), Error> {
        self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], wire);
        let keys = self.keys.as_mut().ok_or(unexpected(HANDSHAKE))?;
        self.tx = Direction::new(keys.update_tx_secret()?)?;
        Ok(())
    }

    /// Queues the fatal alert for `error` (none for the peer's own alert)
    /// and returns the error.
    pub(super) fn fail(&mut self, error: Error, out: &mut Vec<u8>) -> Error {
        let description = match &error {
            Error::AlertReceived(_) => None,
            Error::DecryptError => Some(AlertDescription::BadRecordMac),
            Error::PeerSentOversizedRecord => Some(AlertDescription::RecordOverflow),
            Error::InappropriateMessage { .. } | Error::PeerMisbehaved(_) => {
                Some(AlertDescription::UnexpectedMessage)
            }
            // RFC 8446 §4.6.3.
            Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate) => {
                Some(AlertDescription::IllegalParameter)
            }
            Error::InvalidMessage(_) => Some(AlertDescription::DecodeError),
            _ => Some(AlertDescription::InternalError),
        };
        if let Some(description) = description {
            // Alerts are sealed past a worn-out key too; nothing else fails.
            let _ = self.alert(FATAL, description, out);
        }
        error
    }

    /// Queues an alert record.
    pub(super) fn alert(
        &mut self,
        level: u8,
        description: AlertDescription,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut wire = BytesMut::new();
        self.seal(ALERT, &[level, u8::from(description)], &mut wire)?;
        out.extend_from_slice(&wire);
        Ok(())
    }
}
