//! What servers with rooms share, above [`crate::websocket`]: the message relay with bounded
//! queues ([`relay`]), rooms across servers through Redis ([`bus`]) and across a server's
//! workers ([`hub`]), the file transfer relay
//! ([`transfer`]) and the reference's PDUs that travel in them ([`pdu`]: chat and file
//! messages).

pub mod bus;
pub mod hub;
pub mod pdu;
pub mod relay;
pub mod transfer;
