//! Message assembly from frames.

pub struct Decoder;
pub struct DecoderConfig;
pub enum Message {}
