//! Issue 21: `ws bridge` between WebSocket and TCP, programs and stdio, against real peers:
//! redis-server behind a WebSocket (websockify's use), a Node `ws` echo server behind a TCP
//! port (checked with socat), `exec:` programs, stalled readers, and failures that must say
//! which side failed.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::redis::Redis;
use crate::util::{Server, free_port, peer_script, python, run, ws};

const T: Duration = Duration::from_secs(30);

/// Runs a Python websockets client script with `url` as its argument.
fn py_client(script: &str, url: &str) -> crate::util::Output {
    let mut cmd = Command::new(python());
    cmd.args(["-c", script, url]);
    run(cmd, b"", T)
}

/// A client that prints every message it gets (`repr`) until the bridge closes, then the close
/// code and reason.
const UNTIL_CLOSED: &str = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        try:
            while True:
                print(repr(await ws.recv()))
        except websockets.ConnectionClosed:
            pass
    print("closed", ws.close_code, ws.close_reason)
asyncio.run(main())
"#;

fn bridge(first: &str, target: &str, extra: &[&str]) -> Server {
    Server::start_cmd("bridge", ws().arg("bridge").args(extra).args([first, target]))
}

#[test]
fn websockify_a_python_client_talks_to_redis_through_the_bridge() {
    let redis = Redis::start();
    let server = bridge("ws-listen:127.0.0.1:0", &format!("tcp:127.0.0.1:{}", redis.port), &[]);
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send(b"PING\r\n")
        print("reply", await ws.recv())
        await ws.send(b"SET k v\r\nGET k\r\n")
        got = b""
        while got.count(b"\r\n") < 3:
            got += await ws.recv()
        print("reply", got)
    print("closed", ws.close_code)
asyncio.run(main())
"#;
    let out = py_client(script, &server.url("ws"));
    assert!(out.stdout.contains("reply b'+PONG\\r\\n'"), "{out:?}");
    assert!(out.stdout.contains("reply b'+OK\\r\\n$1\\r\\nv\\r\\n'"), "{out:?}");
    assert!(out.stdout.contains("closed 1000"), "{out:?}");
    server.wait_for_line("ended: code 1000", T);
}

#[test]
fn a_tcp_port_in_front_of_a_node_websocket_server_checked_with_socat() {
    let node = Server::start_cmd("node echo", &mut peer_script("echo_server.js"));
    let server = bridge("tcp-listen:127.0.0.1:0", &format!("ws://{}/", node.addr), &["--line-mode", "--text"]);
    let mut socat = Command::new("socat");
    socat.args(["-t", "5", "-", &format!("TCP:{}", server.addr)]);
    let out = run(socat, b"first line\nsecond line\n", T);
    assert_eq!(out.stdout, "first line\nsecond line\n", "{out:?}");
    server.wait_for_line("ended: code 1000", T);
    // Two WebSockets: messages keep their type both ways.
    let ws_front = bridge("ws-listen:127.0.0.1:0", &format!("ws://{}/", node.addr), &[]);
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send("text ü"); print(repr(await ws.recv()))
        await ws.send(b"\x00\xff"); print(repr(await ws.recv()))
    print("closed", ws.close_code)
asyncio.run(main())
"#;
    let out = py_client(script, &ws_front.url("ws"));
    assert_eq!(out.stdout, "'text ü'\nb'\\x00\\xff'\nclosed 1000\n", "{out:?}");
}

#[test]
fn stdio_to_a_websocket_in_line_mode_keeps_the_replies_in_flight() {
    let node = Server::start_cmd("node echo", &mut peer_script("echo_server.js"));
    let mut cmd = ws();
    cmd.args(["bridge", "--line-mode", "--text", "stdio", &format!("ws://{}/", node.addr)]);
    let out = run(cmd, b"one\ntwo\nthree\n", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "one\ntwo\nthree\n"), "{out:?}");
}

#[test]
fn exec_runs_a_program_per_connection_and_its_failure_is_1011() {
    let server = bridge("ws-listen:127.0.0.1:0", "exec:cat", &[]);
    let script = r#"
import asyncio, sys, websockets
async def main():
    for _ in range(2):
        async with websockets.connect(sys.argv[1]) as ws:
            await ws.send(b"through cat")
            print(await ws.recv())
        print("closed", ws.close_code)
asyncio.run(main())
"#;
    let out = py_client(script, &server.url("ws"));
    assert_eq!(out.stdout, "b'through cat'\nclosed 1000\nb'through cat'\nclosed 1000\n", "{out:?}");
    // A program that says something and exits with a failure, before reading anything.
    let early = bridge("ws-listen:127.0.0.1:0", "exec:echo early; exit 3", &["--text"]);
    let out = py_client(UNTIL_CLOSED, &early.url("ws"));
    assert!(
        out.stdout.starts_with("'early\\n'\nclosed 1011 exec:echo early; exit 3 exited with exit status: 3"),
        "{out:?}"
    );
    early.wait_for_line("exited with exit status: 3", T);
}

#[test]
fn failures_name_the_side_that_failed() {
    // Nothing listens on this port.
    let dead = free_port();
    let mut cmd = ws();
    cmd.args(["bridge", "stdio", &format!("tcp:127.0.0.1:{dead}")]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(out.stderr.contains(&format!("tcp:127.0.0.1:{dead}")) && out.stderr.contains("refused"), "{}", out.stderr);
    // Behind a WebSocket listener: the client gets 1011, the bridge keeps serving.
    let server = bridge("ws-listen:127.0.0.1:0", &format!("tcp:127.0.0.1:{dead}"), &[]);
    for _ in 0..2 {
        let out = py_client(UNTIL_CLOSED, &server.url("ws"));
        assert_eq!(out.stdout, "closed 1011 bridge target unreachable\n", "{out:?}");
    }
    // A usage error is one line and exit 2.
    let mut cmd = ws();
    cmd.args(["bridge", "stdio", "tcp-listen:127.0.0.1:0"]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("only the first side may listen"), "{}", out.stderr);
}

/// A TCP service that accepts and never reads: the WebSocket client's sends must stall, and
/// the bridge's memory stay flat, instead of the bridge buffering everything.
#[test]
fn a_stalled_reader_stalls_the_writer_with_bounded_memory() {
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stall.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let (conn, _) = stall.accept().unwrap();
        std::thread::sleep(Duration::from_secs(8));
        drop(conn);
    });
    let server = bridge("ws-listen:127.0.0.1:0", &format!("tcp:127.0.0.1:{port}"), &[]);
    let script = r#"
import asyncio, sys, time, websockets
async def main():
    async with websockets.connect(sys.argv[1], max_size=None, compression=None) as ws:
        chunk = b"x" * 65536
        sent = 0
        end = time.monotonic() + 3
        try:
            while time.monotonic() < end and sent < (256 << 20):
                await asyncio.wait_for(ws.send(chunk), timeout=end - time.monotonic())
                sent += len(chunk)
        except asyncio.TimeoutError:
            pass
        print("sent", sent, flush=True)
asyncio.run(main())
"#;
    let mut cmd = Command::new(python());
    cmd.args(["-c", script, &server.url("ws")]).stdin(Stdio::null());
    let out = run(cmd, b"", T);
    let sent: u64 =
        out.stdout.trim().strip_prefix("sent ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{out:?}"));
    assert!(sent < 64 << 20, "the sender was not held back: {sent} bytes sent into a reader that reads nothing");
    let rss = server.peak_rss_kib();
    eprintln!("{sent} bytes sent, bridge peak RSS {rss} KiB");
    assert!(rss < 32 * 1024, "bridge peak RSS {rss} KiB while {sent} bytes waited");
    held.join().unwrap();
}

/// `ws bench --reframed` through the bridge to a TCP echo: the replies come back cut
/// differently from what was sent, and are checked as one byte stream (the bridge benchmark's
/// setup, here as a test of its correctness).
#[test]
fn bench_checks_reframed_echoes_through_the_bridge() {
    let echo = Server::start_cmd("tcp echo", &mut peer_script("tcp_echo.js"));
    let server = bridge("ws-listen:127.0.0.1:0", &format!("tcp:{}", echo.addr), &["-q"]);
    let mut cmd = ws();
    cmd.args([
        "bench",
        &server.url("ws"),
        "--reframed",
        "--binary",
        "-s",
        "3000",
        "-w",
        "16",
        "-n",
        "3000",
        "--warmup",
        "0",
    ]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("round trips: 3000 "), "{}", out.stdout);
    // Without --reframed the same run fails: TCP does not keep message boundaries.
    let mut cmd = ws();
    cmd.args(["bench", &server.url("ws"), "--binary", "-s", "3000", "-w", "16", "-n", "3000", "--warmup", "0"]);
    let out = run(cmd, b"", T);
    assert_ne!(out.code(), 0, "{out:?}");
}

/// Unix sockets on both kinds of side: a listening Unix socket in front of a WebSocket
/// server, and a WebSocket in front of a Unix-socket service (`ws httpd --unix`, spoken to in
/// raw HTTP through the WebSocket).
#[test]
fn unix_sockets_listen_and_are_dialed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start_cmd("node echo", &mut peer_script("echo_server.js"));
    let front = dir.path().join("front.sock");
    let _listening = Server::start_cmd(
        "bridge",
        ws().args([
            "bridge",
            "--line-mode",
            "--text",
            &format!("unix-listen:{}", front.display()),
            &format!("ws://{}/", node.addr),
        ]),
    );
    let mut socat = Command::new("socat");
    socat.args(["-t", "5", "-", &format!("UNIX-CONNECT:{}", front.display())]);
    let out = run(socat, b"over a unix socket\n", T);
    assert_eq!(out.stdout, "over a unix socket\n", "{out:?}");
    // A WebSocket in front of an HTTP server on a Unix socket.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hi.txt"), "hello from httpd\n").unwrap();
    let sock = dir.path().join("httpd.sock");
    let _httpd = Server::start_unix("httpd", &sock, &["--root", site.path().to_str().unwrap()]);
    let server = bridge("ws-listen:127.0.0.1:0", &format!("unix:{}", sock.display()), &[]);
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send(b"GET /hi.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        try:
            while True:
                got += await ws.recv()
        except websockets.ConnectionClosed:
            pass
    print(got.split(b"\r\n")[0].decode(), got.split(b"\r\n\r\n", 1)[1].decode(), end="")
    print("closed", ws.close_code)
asyncio.run(main())
"#;
    let out = py_client(script, &server.url("ws"));
    assert_eq!(out.stdout, "HTTP/1.1 200 OK hello from httpd\nclosed 1000\n", "{out:?}");
}
