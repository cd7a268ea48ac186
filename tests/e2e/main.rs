//! The one integration-test binary: every test spawns the real `ws` with its real plugins,
//! against real peers on 127.0.0.1. See `util` for the harness.

mod proxies;
mod proxy;
mod raw;
mod redis;
mod reference;
mod rooms;
mod transfer;
mod unix;
mod util;

mod autobahn;
mod bench;
mod bridge;
mod browser;
mod connect;
mod curl;
mod deflate;
mod echo_server;
mod host;
mod httpd;
mod httpd_upload;
mod kit;
mod listen;
mod tls;
