//! `ws-common`: the code every `ws` plugin links, written once.
//!
//! Each plugin is its own `cdylib` with its own copy of this crate, so the global state in
//! here (the log level, for one) belongs to one plugin only. Nothing in this crate crosses
//! the plugin boundary: the boundary is `ws-plugin-api`'s C declaration, and this crate sits
//! on the plugin's side of it.
//!
//! Four layers, each a folder, each using only those below it:
//!
//! - [`sockets`]: the event loop of each thread ([`sockets::evloop`], entered through
//!   [`runtime`]; [`workers`] for `--threads`), sockets on it ([`sockets::conn`]),
//!   listeners and streams ([`net`], [`tls`]), and how clients reach servers ([`dial`],
//!   [`proxy`]);
//! - [`websocket`]: handshakes and streams ([`ws`], [`headers`]), frame I/O and relays
//!   ([`frames`], [`frame_relay`]), permessage-deflate ([`deflate`]), a client's life
//!   ([`session`]) and the servers' skeleton ([`server`]);
//! - [`rooms`]: message relays with bounded queues ([`relay`]), rooms across servers through
//!   Redis ([`bus`]) and across a server's workers ([`hub`]), the file transfer relay
//!   ([`transfer`]) and the reference's PDUs ([`pdu`]);
//! - [`terminal`]: log lines ([`log`]), input ([`prompt`]), messages as lines of a pipe
//!   ([`lines`]), progress ([`progress`]).
//!
//! Beside them: [`args`] (clap parsing that turns clap's errors into one line and exit code
//! 2), [`error`](mod@error), [`url`](mod@url) (what users type), [`gz`] (`gzip`/`gunzip`'s tallies and
//! safely written outputs).

pub mod args;
pub mod error;
pub mod gz;
pub mod rooms;
pub mod sockets;
pub mod terminal;
pub mod url;
pub mod websocket;

// The layers above are folders; plugins name modules by their short paths
// (`ws_common::net`, `ws_common::ws`, …), which stay as they were.
pub use rooms::{bus, hub, pdu, relay, transfer};
pub use sockets::{dial, hyper_io, net, proxy, runtime, tls, workers};
pub use terminal::{lines, log, progress, prompt};
pub use websocket::{deflate, frame_relay, frames, headers, server, session, ws};

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
