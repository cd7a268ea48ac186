//! `ws echo_server` against real clients.

use std::time::Duration;

use crate::util::{Server, peer_script, run};

#[test]
fn python_websockets_client_gets_text_binary_and_1mib_echoed_then_closes_1000() {
    let server = Server::start("echo_server", &[]);
    let mut cmd = peer_script("echo_client.py");
    cmd.arg(server.url("ws"));
    let out = run(cmd, b"", Duration::from_secs(30));
    assert_eq!(out.code(), 0, "python client failed: {out:?}");
    assert!(out.stdout.contains("text ok") && out.stdout.contains("binary ok"), "{}", out.stdout);
    assert!(out.stdout.contains("1MiB ok") && out.stdout.contains("closed 1000"), "{}", out.stdout);
    server.wait_for_line("Closed connection", Duration::from_secs(5));
}
