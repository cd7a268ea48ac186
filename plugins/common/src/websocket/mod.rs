//! The WebSocket protocol over [`crate::sockets`]: handshakes and streams ([`ws`], with
//! [`headers`]), frame-level I/O and relays that keep frames as they are ([`frames`],
//! [`frame_relay`]), permessage-deflate beneath tungstenite ([`deflate`]), a client's life
//! ([`session`]) and the skeleton every server shares ([`server`]).

pub mod deflate;
pub mod frame_relay;
pub mod frames;
pub mod headers;
pub mod server;
pub mod session;
pub mod ws;
