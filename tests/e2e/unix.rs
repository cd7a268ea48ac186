//! Issue 16: Unix domain sockets. Servers listen with `--unix PATH`; clients reach a server
//! through `ws+unix:///PATH:/request` or `--unix-socket PATH` (curl's flag). Each side is
//! tested against independent peers on the same socket: Python `websockets` (`unix_serve`,
//! `unix_connect`), Node `ws` (`ws+unix://`), gunicorn's httpbin and the real curl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{Server, certs, peer_script, repo_root, run, ws_args};

const T: Duration = Duration::from_secs(30);

/// A socket path in a fresh folder (kept alive by the returned guard).
fn socket(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn unix_url(scheme: &str, sock: &Path, request: &str) -> String {
    format!("{scheme}://{}:{request}", sock.display())
}

#[test]
fn echo_server_on_a_unix_socket_serves_python_and_node_clients() {
    let (_dir, sock) = socket("echo.sock");
    let server = Server::start_unix("echo_server", &sock, &[]);
    let ready = server.wait_for_line("Listening on", T);
    assert!(ready.ends_with(&format!("Listening on unix:{}", sock.display())), "{ready}");

    let mut py = peer_script("echo_client.py");
    py.args(["ws://localhost/from-python", "--unix"]).arg(&sock);
    let out = run(py, b"", T);
    assert!(out.status.success(), "python client failed: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1MiB ok") && out.stdout.contains("closed 1000"), "{}", out.stdout);

    let mut node = peer_script("echo_client.js");
    node.arg(unix_url("ws+unix", &sock, "/from-node"));
    let out = run(node, b"", T);
    assert!(out.status.success(), "node client failed: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("step 2 ok"), "{}", out.stdout);

    server.wait_for_line("Uri: /from-node", T);
    server.wait_for_line("Uri: /from-python", T);
    // The clients of a Unix socket are named as nginx names them.
    server.wait_for_line("remote ip: unix:", T);
}

#[test]
fn clients_reach_a_python_server_on_a_unix_socket_by_url_and_by_flag() {
    let (_dir, sock) = socket("py.sock");
    let mut cmd = peer_script("echo_server.py");
    cmd.args(["--report", "--unix"]).arg(&sock);
    let peer = Server::start_cmd("py-unix", &mut cmd);

    // ws+unix:///PATH:/request: the request and Host: localhost.
    let out = run(ws_args(&["connect", &unix_url("ws+unix", &sock, "/chat?room=1")]), b"hello\n", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello\n"), "{}", out.stderr);
    peer.wait_for_line("request /chat?room=1 host=localhost", T);

    // --unix-socket: the URL's host and path go in the request, the bytes over the socket.
    let out = run(ws_args(&["connect", "--unix-socket", path(&sock), "ws://api.example:8080/feed"]), b"second\n", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "second\n"), "{}", out.stderr);
    peer.wait_for_line("request /feed host=api.example:8080", T);

    // Nobody listening: one line naming the socket, exit 1.
    let (_gone, missing) = socket("missing.sock");
    let out = run(ws_args(&["connect", &unix_url("ws+unix", &missing, "/")]), b"x\n", T);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("unix:{}", missing.display())), "{}", out.stderr);
}

#[test]
fn wss_over_a_unix_socket_runs_tls_with_localhost_as_the_name() {
    let c = certs();
    let (_dir, sock) = socket("tls.sock");
    let mut cmd = peer_script("echo_server.py");
    cmd.args(["--report", "--tls", &c.path("server.crt"), &c.path("server.key"), "--unix"]).arg(&sock);
    let peer = Server::start_cmd("py-unix-tls", &mut cmd);
    let url = unix_url("wss+unix", &sock, "/secure");
    let out = run(ws_args(&["connect", "--ca-file", &c.path("ca.crt"), &url]), b"sealed\n", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "sealed\n"), "{}", out.stderr);
    peer.wait_for_line("request /secure host=localhost", T);

    // Our server with TLS on a socket, and Python's client checking its certificate.
    let (_dir2, sock2) = socket("ours-tls.sock");
    let tls = ["--tls", "--cert-file", &c.path("server.crt"), "--key-file", &c.path("server.key")];
    let _ours = Server::start_unix("echo_server", &sock2, &tls);
    let mut py = peer_script("echo_client.py");
    py.args(["wss://localhost/x", "--ca", &c.path("ca.crt"), "--unix"]).arg(&sock2);
    let out = run(py, b"", T);
    assert!(out.status.success(), "python wss client failed: {}{}", out.stdout, out.stderr);
}

#[test]
fn broadcast_server_on_a_unix_socket_relays_between_clients() {
    let (_dir, sock) = socket("room.sock");
    let server = Server::start_unix("broadcast_server", &sock, &[]);
    let url = unix_url("ws+unix", &sock, "/");
    let listener = ws_args(&["connect", &url, "--no-close", "--max-messages", "1"]);
    let waiting = std::thread::spawn(move || run(listener, b"", T));
    server.wait_for_line("id: 0", T);
    let out = run(ws_args(&["connect", &url]), b"to the room\n", T);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let got = waiting.join().unwrap();
    assert_eq!((got.code(), got.stdout.as_str()), (0, "to the room\n"), "{}", got.stderr);
}

#[test]
fn curl_and_httpd_speak_http_over_unix_sockets_with_real_peers() {
    // ws curl --unix-socket against gunicorn's httpbin bound to a socket.
    let (_dir, sock) = socket("httpbin.sock");
    let gunicorn = repo_root().join(".peers/venv/bin/gunicorn");
    assert!(gunicorn.is_file(), "httpbin's gunicorn is missing: run scripts/test.sh");
    let mut cmd = Command::new(gunicorn);
    cmd.args(["-b", &format!("unix:{}", sock.display()), "-w", "1", "httpbin:app"]);
    let mut httpbin = Server::start_cmd("httpbin-unix", &mut cmd);
    let out = run(ws_args(&["curl", "-s", "--unix-socket", path(&sock), "http://svc.local/get?x=1"]), b"", T);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.contains(r#""Host": "svc.local""#), "{}", out.stdout);
    assert!(out.stdout.contains(r#""x": "1""#), "{}", out.stdout);
    httpbin.stop_with("QUIT");

    // The real curl against ws httpd on a socket.
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("page.txt"), "over a unix socket\n").unwrap();
    let (_dir2, sock2) = socket("httpd.sock");
    let _httpd = Server::start_unix("httpd", &sock2, &["--root", root.path().to_str().unwrap()]);
    let out = Command::new("curl").args(["-sS", "--unix-socket"]).arg(&sock2).arg("http://localhost/page.txt").output();
    let out = out.expect("curl is missing: scripts/peers.sh installs it");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over a unix socket\n");
}

#[test]
fn proxy_server_reaches_an_upstream_on_a_unix_socket() {
    let (_dir, sock) = socket("up.sock");
    let mut cmd = peer_script("echo_server.py");
    cmd.args(["--report", "--unix"]).arg(&sock);
    let peer = Server::start_cmd("py-upstream", &mut cmd);
    let upstream = unix_url("ws+unix", &sock, "/base");
    let proxy = Server::start("proxy_server", &["--remote_host", &upstream]);
    let out = run(ws_args(&["connect", &format!("{}/room?x=2", proxy.url("ws"))]), b"through\n", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "through\n"), "{}", out.stderr);
    peer.wait_for_line("request /base/room?x=2 host=localhost", T);
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_is_not() {
    let (_dir, sock) = socket("s.sock");
    let mut first = Server::start_unix("echo_server", &sock, &[]);
    // A second server on a live socket: one line, exit 1, and the first keeps serving.
    let out = run(ws_args(&["echo_server", "--unix", path(&sock)]), b"", T);
    assert_eq!(out.code(), 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.trim().lines().count() == 1 && out.stderr.contains("in use"), "{}", out.stderr);
    let url = unix_url("ws+unix", &sock, "/");
    assert_eq!(run(ws_args(&["connect", &url]), b"still\n", T).stdout, "still\n");

    // Killed without a chance to clean up: the file stays, and the next server replaces it.
    first.stop_with("KILL");
    assert!(sock.exists(), "the killed server's socket file should be left behind");
    let _second = Server::start_unix("echo_server", &sock, &[]);
    assert_eq!(run(ws_args(&["connect", &url]), b"again\n", T).stdout, "again\n");

    // A file that is not a socket is never removed.
    let (_dir2, plain) = socket("not-a-socket");
    std::fs::write(&plain, "keep me").unwrap();
    let out = run(ws_args(&["echo_server", "--unix", path(&plain)]), b"", T);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");
}
