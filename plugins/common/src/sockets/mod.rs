//! The lowest layer: where code runs and how bytes move. The single-threaded executor a
//! plugin runs in ([`runtime`]) and its workers ([`workers`], `--threads`); listening and
//! streams, TCP or Unix, plain or TLS ([`net`], [`tls`]); and how clients reach servers —
//! directly, through an HTTP or SOCKS5 proxy, or over a Unix socket ([`dial`], [`proxy`]).
//! Nothing here knows WebSocket.

pub mod conn;
pub mod dial;
pub mod evloop;
pub mod net;
pub mod proxy;
pub mod runtime;
pub mod tls;
pub mod workers;
