//! The lowest layer: where code runs and how bytes move. The event loop each thread runs
//! ([`evloop`]: tasks, `epoll`, timers; entered through [`runtime`]) and the servers'
//! workers ([`workers`], `--threads`); TCP and Unix sockets on it ([`conn`]); listening and
//! streams, plain or TLS ([`net`], [`tls`]), read ahead without holding a buffer while idle
//! ([`readahead`]), and as hyper's I/O ([`hyper_io`]); and how clients reach servers —
//! directly, through an HTTP or SOCKS5 proxy, or over a Unix socket ([`dial`], [`proxy`]).
//! Nothing here knows WebSocket.

pub mod conn;
pub mod dial;
pub mod evloop;
pub mod hyper_io;
pub mod net;
pub mod proxy;
pub mod readahead;
pub mod runtime;
pub mod tls;
pub mod workers;
