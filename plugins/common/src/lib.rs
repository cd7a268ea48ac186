//! `ws-common`: the code every `ws` plugin links, written once.
//!
//! Each plugin is its own `cdylib` with its own copy of this crate, so the global state in
//! here (the log level, for one) belongs to one plugin only. Nothing in this crate crosses
//! the plugin boundary: the boundary is `ws-plugin-api`'s C declaration, and this crate sits
//! on the plugin's side of it.
//!
//! - [`args`]: clap parsing that turns clap's errors into one line and exit code 2;
//! - [`log`]: the `[YYYY-MM-DD HH:MM:SS.mmm] [level] msg` logger, errors to stderr;
//! - [`runtime`]: the single-threaded smol executor a plugin runs in (and hyper's executor on it);
//!   [`workers`]: `--threads`, one such executor and listening socket per worker;
//! - [`net`]: TCP and Unix listeners, the `Listening on …` ready line, pidfiles, plain/TLS streams;
//! - [`tls`]: the TLS option group and rustls configurations built from it;
//! - [`bus`]: rooms shared between servers through Redis pub/sub;
//! - [`dial`]: how clients reach servers (TCP, a proxy from [`proxy`], a Unix socket; TLS);
//! - [`proxy`]: clients through HTTP CONNECT and SOCKS5 proxies;
//! - [`progress`]: transfer progress on stderr (a bar on a terminal, else a line per 10 %);
//! - [`relay`], [`frame_relay`], [`frames`]: the rooms' message and frame relays, and frame I/O;
//! - [`deflate`]: permessage-deflate, negotiated in the handshakes and done beneath tungstenite;
//! - [`gz`]: `gzip`/`gunzip`'s tallies (size, checksum) and safely written outputs;
//! - [`url`](mod@url) and [`headers`]: parsing of what users type; [`lines`]: messages as lines of a pipe.

pub mod args;
pub mod bus;
pub mod deflate;
pub mod dial;
pub mod error;
pub mod frame_relay;
pub mod frames;
pub mod gz;
pub mod headers;
pub mod lines;
pub mod log;
pub mod net;
pub mod pdu;
pub mod progress;
pub mod prompt;
pub mod proxy;
pub mod relay;
pub mod runtime;
pub mod server;
pub mod session;
pub mod tls;
pub mod transfer;
pub mod url;
pub mod workers;
pub mod ws;

pub use error::CommonError;

/// 64 unpredictable bits, for masking keys and transfer ids (not for keys or secrets):
/// std's `RandomState` is seeded from the OS and differs per instance; the clock and pid
/// are mixed in as well.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}
pub use ws_plugin_api::Error;
