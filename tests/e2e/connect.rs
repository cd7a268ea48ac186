//! `ws connect` and `ws ping` against Python `websockets` and Node `ws` servers.

use std::time::Duration;

use crate::util::{Server, Tmux, certs, free_port, peer_script, run, ws};

const T: Duration = Duration::from_secs(30);

fn python_server(args: &[&str]) -> Server {
    let mut cmd = peer_script("echo_server.py");
    cmd.args(args);
    Server::start_cmd("py-echo", &mut cmd)
}

fn connect(args: &[&str], stdin: &[u8]) -> crate::util::Output {
    let mut cmd = ws();
    cmd.arg("connect").args(args);
    run(cmd, stdin, T)
}

#[test]
fn piped_lines_reach_a_python_server_and_the_echoes_are_printed() {
    let server = python_server(&[]);
    let out = connect(&[&server.url("ws")], b"hello\nsecond line\n");
    assert_eq!(out.code(), 0, "{out:?}");
    // In a pipe, stdout carries the messages alone; the reference's lines go to stderr.
    assert_eq!(out.stdout, "hello\nsecond line\n");
    assert_eq!(out.stderr, "", "quiet in a pipe unless something goes wrong");
    let out = connect(&["-v", &server.url("ws")], b"hello\nsecond line\n");
    assert_eq!(out.stdout, "hello\nsecond line\n");
    let e = &out.stderr;
    assert!(e.starts_with("Type Ctrl-D to exit prompt...\nConnecting to url: ws://"), "{e}");
    assert!(e.contains("ws_connect: connected") && e.contains("Handshake Headers:"), "{e}");
    assert!(e.contains("Received 5 bytes") && e.contains("connection closed: code 1000"), "{e}");
}

#[test]
fn piped_lines_reach_a_node_server_as_binary_with_b() {
    let server = Server::start_cmd("node-echo", &mut peer_script("echo_server.js"));
    let out = connect(&["-b", &server.url("ws")], b"bin line\n");
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "bin line"), "{}", out.stdout);
}

#[test]
fn wss_verifies_the_server_against_ca_file_and_names_the_reason_when_it_fails() {
    let c = certs();
    let server = python_server(&["--tls", &c.path("server.crt"), &c.path("server.key")]);
    let url = server.url("wss");
    let out = connect(&["--ca-file", &c.path("ca.crt"), &url], b"secure\n");
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "secure"), "{}", out.stdout);
    // Without our CA the system store cannot vouch for it: one line, exit 1, the reason named.
    let out = connect(&[&url], b"secure\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("certificate is not signed by a trusted CA (unknown issuer"), "{}", out.stderr);
    // --verify_none connects anyway.
    let out = connect(&["--verify_none", &url], b"insecure\n");
    assert_eq!(out.code(), 0, "{out:?}");
}

#[test]
fn a_close_from_the_server_is_printed_with_its_code_and_exits_1_when_refused() {
    let server = python_server(&["--close-with", "4001", "Permission denied"]);
    let out = connect(&[&server.url("ws")], b"");
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stderr, "ws connect: server refused the connection: code 4001 reason Permission denied\n");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let out = connect(&["-v", &server.url("ws")], b"");
    assert!(out.stderr.contains("ws_connect: connection closed: code 4001 reason Permission denied"), "{}", out.stderr);
}

#[test]
fn refused_port_fails_with_one_line_and_exit_1() {
    let port = free_port();
    for extra in [&["-d"][..], &[][..]] {
        let mut args = extra.to_vec();
        let url = format!("ws://127.0.0.1:{port}/");
        args.push(&url);
        let out = connect(&args, b"");
        assert_eq!(out.code(), 1, "{out:?}");
        let err: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("ws connect:")).collect();
        assert_eq!(err.len(), 1, "{}", out.stderr);
        assert!(err[0].contains("Connection refused"), "{}", err[0]);
    }
}

#[test]
fn bad_url_scheme_is_a_usage_error() {
    let out = connect(&["http://127.0.0.1:1/"], b"");
    assert_eq!(out.code(), 2, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "ws connect: invalid URL 'http://127.0.0.1:1/': unsupported scheme 'http' (expected ws:// or wss://)"
    );
}

#[test]
fn a_dropped_connection_comes_back_and_carries_the_next_line() {
    let port = free_port().to_string();
    let start = || Server::start_cmd("echo_server", ws().args(["echo_server", "--port", &port]));
    let first = start();
    let url = format!("ws://127.0.0.1:{port}/");
    let mut client =
        crate::util::Interactive::start("connect", ws().args(["connect", "-v", "--max_wait", "200", &url]));
    client.send_line("msg-before");
    client.wait_for_lines("msg-before", 1, T);
    // The server goes away with the connection open; a new one comes up on the same port.
    drop(first);
    client.wait_for_lines("connection closed", 1, T);
    let second = start();
    second.wait_for_line("New connection", T);
    client.send_line("msg-after");
    client.wait_for_lines("msg-after", 1, T);
    assert!(client.finish(T).success());
}

#[test]
fn reconnects_after_the_server_goes_away() {
    // ws connect keeps trying (100, 200, 400 ms ...) until a server appears on the port.
    let port = free_port();
    let mut cmd = ws();
    cmd.args(["connect", "--max_wait", "200", &format!("ws://127.0.0.1:{port}/")]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let server = Server::start_cmd("echo_server", crate::util::ws().args(["echo_server", "--port", &port.to_string()]));
    server.wait_for_line("New connection", Duration::from_secs(10));
    drop(child.stdin.take());
    let status = crate::util::wait_timeout(&mut child, T).expect("connect exits after EOF");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(err.contains("connection error"), "{err}");
}

#[test]
fn echo_mode_sends_back_what_it_receives_and_exits_on_close() {
    // The Python server sends a text and a binary message, checks both come back unchanged
    // and typed, prints "drive ok", and closes 1000.
    let server = python_server(&["--drive"]);
    let out = connect(&["--echo", &server.url("ws")], b"");
    assert_eq!(out.code(), 0, "{out:?}");
    server.wait_for_line("drive ok", Duration::from_secs(5));
}

#[test]
fn ping_sends_lines_as_pings_and_prints_pongs() {
    let server = python_server(&[]);
    let long = "x".repeat(200);
    let input = format!("abc\n{long}\n/close\n");
    let mut cmd = ws();
    cmd.args(["ping", &server.url("ws")]);
    let out = run(cmd, input.as_bytes(), T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("ping_pong: received pong message: abc"), "{}", out.stdout);
    assert!(out.stdout.contains("ping_pong: received message: /close"), "{}", out.stdout);
    assert!(out.stderr.contains("Message too long (200 > 125 bytes)"), "{}", out.stderr);
}

/// Issue 24: at a terminal, Ctrl-D ends `connect`, `ping` and `chat` with the reference's
/// closing lines on the screen; in a pipe those lines go to stderr, so stdout stays data.
#[test]
fn closing_lines_at_a_terminal_and_on_stderr_in_a_pipe() {
    let server = Server::start("echo_server", &["-q"]);
    let url = server.url("ws");
    for (args, closing) in [
        (
            format!("connect -d --ping_interval 0 {url}"),
            "ws_connect: connection closed: code 1000 reason Normal closure",
        ),
        (format!("ping -d {url}"), "ping_pong: disconnected: code 1000 reason Normal closure"),
        (format!("chat {url} bob"), "ws chat user disconnected: bob code 1000 reason Normal closure"),
    ] {
        let term = Tmux::start_with(&args);
        term.wait_for(" connected");
        term.keys(&["abc", "Enter"]);
        term.wait_for("abc\n");
        term.keys(&["C-d"]);
        let screen = term.wait_for("EXIT=");
        assert!(screen.contains(closing) && screen.contains("EXIT=0"), "{args}: no closing line:\n{screen}");
    }
    for (sub, closing) in [("ping", "ping_pong: disconnected: code 1000"), ("chat", "ws chat user disconnected: bob")] {
        let mut cmd = ws();
        cmd.args([sub, &url]);
        if sub == "chat" {
            cmd.arg("bob");
        }
        let out = run(cmd, b"abc\n", T);
        assert_eq!(out.code(), 0, "{out:?}");
        assert!(out.stderr.contains(closing) && !out.stdout.contains(closing), "{sub}: {out:?}");
    }
}

/// Issue 25.13 and 25.12: at a terminal, messages that arrive while the prompt is open are
/// printed above it and stay (they were printed as a staircase and vanished at the next
/// repaint), what is being typed survives, and a peer's escape sequences are shown, not
/// obeyed.
#[test]
fn at_a_terminal_messages_print_above_the_prompt_and_escapes_are_shown() {
    let server = Server::start("broadcast_server", &[]);
    let url = server.url("ws");
    let term = Tmux::start(&url);
    term.wait_for("ws_connect: connected");
    server.wait_for_line("New connection", T);
    // Another client sends two messages while the prompt is open.
    let out = connect(&[&url], b"first from a peer\nsecond from a peer\n");
    assert_eq!(out.code(), 0, "{out:?}");
    term.keys(&["half-typed"]);
    // Both must be on the screen: the messages may be drawn before the keys are echoed.
    term.wait_for("received message: second from a peer");
    let screen = term.wait_for("> half-typed");
    let lines: Vec<&str> = screen.lines().collect();
    let first = lines.iter().position(|l| *l == "ws_connect: received message: first from a peer");
    let second = lines.iter().position(|l| *l == "ws_connect: received message: second from a peer");
    let prompt = lines.iter().rposition(|l| *l == "> half-typed");
    assert!(first.is_some() && first < second && second < prompt, "not above the prompt in order:\n{screen}");
    // Sending the typed line and a later message keep the first messages on the screen.
    term.keys(&["Enter"]);
    term.wait_for("> half-typed\n>");
    assert_eq!(connect(&[&url], b"third\n").code(), 0);
    let screen = term.wait_for("received message: third");
    assert!(screen.contains("received message: first from a peer"), "the first message vanished:\n{screen}");
    // A peer's escape sequences: a title change (OSC), a clear screen (CSI), a carriage return.
    let out = connect(&[&url], b"evil \x1b]0;pwned\x07 \x1b[2J \rend\n");
    assert_eq!(out.code(), 0, "{out:?}");
    let screen = term.wait_for("received message: evil");
    assert!(screen.contains(r"evil \x1b]0;pwned\x07 \x1b[2J \rend"), "escapes not shown:\n{screen}");
    assert!(screen.contains("received message: first from a peer"), "the screen was cleared:\n{screen}");
}

/// Issue 22: the heartbeat: pongs are logged, and a server that never answers pings is
/// closed with 1011 "Ping timeout" after one missed period.
#[test]
fn heartbeat_pings_are_logged_and_a_silent_server_gets_1011() {
    let answering = Server::start("echo_server", &["-q"]);
    let c = crate::util::Interactive::start(
        "connect",
        ws().args(["connect", "-v", "-d", "--ping_interval", "1", &answering.url("ws")]),
    );
    c.wait_for_lines("Received pong ixwebsocket::heartbeat::1s::1", 1, T);
    drop(c);
    let silent = Server::start("echo_server", &["-q", "-p"]);
    let started = std::time::Instant::now();
    let c = crate::util::Interactive::start(
        "connect",
        ws().args(["connect", "-d", "--ping_interval", "1", &silent.url("ws")]),
    );
    c.wait_for_lines("connection closed: code 1011 reason Ping timeout", 1, T);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "closed after {took:?}");
}

/// Issue 22: `/stop` closes the connection, `/start` opens it again, and lines flow again.
#[test]
fn stop_and_start_close_and_reopen_the_connection() {
    let server = Server::start("echo_server", &[]);
    let mut c = crate::util::Interactive::start("connect", ws().args(["connect", "-v", &server.url("ws")]));
    c.send_line("msg-one");
    c.wait_for_lines("msg-one", 1, T);
    c.send_line("/stop");
    c.wait_for_lines("Stopping connection...", 1, T);
    server.wait_for_line("Closed connection: client id 0", T);
    c.send_line("/start");
    c.wait_for_lines("Starting connection...", 1, T);
    server.wait_for_line("id: 1", T);
    c.send_line("msg-two");
    c.wait_for_lines("msg-two", 1, T);
    assert!(c.finish(T).success());
}

/// Issue 22: -g gunzips what arrives, --subprotocol is offered (and the answer shown),
/// --pidfile holds the client's pid, --connect-timeout ends a handshake that never comes.
#[test]
fn gunzip_subprotocol_pidfile_and_connect_timeout() {
    let server = Server::start("broadcast_server", &[]);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("connect.pid");
    let url = server.url("ws");
    let c = crate::util::Interactive::start(
        "connect",
        ws().args(["connect", "-v", "-d", "-g", "--subprotocol", "chat", "--pidfile", pidfile.to_str().unwrap(), &url]),
    );
    c.wait_for_lines("Sec-Websocket-Protocol: chat", 1, T);
    server.wait_for_line("Sec-Websocket-Protocol: chat", T);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().trim(), c.pid().to_string());
    // A peer sends a gzip-compressed message through the room.
    let script = "import gzip, sys\nfrom websockets.sync.client import connect\nwith connect(sys.argv[1]) as ws:\n    ws.send(gzip.compress(b'unzipped text'))\n";
    let mut peer = std::process::Command::new(crate::util::python());
    peer.args(["-c", script, &url]);
    assert_eq!(run(peer, b"", T).code(), 0);
    c.wait_for_lines("unzipped text", 1, T);
    // A listener that never answers the handshake.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    let out = connect(&["-d", "--connect-timeout", "1", &format!("ws://{}/", mute.local_addr().unwrap())], b"");
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.to_ascii_lowercase().contains("timed out"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// Issue 22: lines typed at the prompt are kept in the history file, and Ctrl-D ends the
/// session.
#[test]
fn typed_lines_are_kept_in_the_history_file() {
    let server = Server::start("echo_server", &["-q"]);
    let term = Tmux::start(&server.url("ws"));
    term.wait_for("ws_connect: connected");
    term.keys(&["remember this line", "Enter"]);
    term.wait_for("received message: remember this line");
    term.keys(&["C-d"]);
    let history = term.home.path().join(".local/share/ws/history/connect");
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        if text.contains("remember this line") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "history file {}: {text:?}", history.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Python server that, once a client says anything, sends `count` messages `gap` seconds
/// apart and then keeps the connection open.
fn streaming_server(count: u32, gap: f64) -> Server {
    let script = r#"
import sys, time
from websockets.sync.server import serve
count, gap = int(sys.argv[1]), float(sys.argv[2])
def handler(ws):
    ws.recv()
    for i in range(count):
        ws.send(f"update {i + 1}")
        time.sleep(gap)
    try:
        ws.recv(timeout=30)
    except Exception:
        pass
with serve(handler, "127.0.0.1", 0) as server:
    print(f"Listening on 127.0.0.1:{server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()
"#;
    let mut cmd = std::process::Command::new(crate::util::python());
    cmd.args(["-c", script, &count.to_string(), &gap.to_string()]);
    Server::start_cmd("py-stream", &mut cmd)
}

/// Issue 16: in a pipe, stdout is the messages alone (`| jq` works), and `--jsonl` carries
/// any bytes losslessly both ways.
#[test]
fn in_a_pipe_stdout_is_the_messages_and_jsonl_is_lossless() {
    let server = Server::start("echo_server", &["-q"]);
    let url = server.url("ws");
    let mut sh = std::process::Command::new("sh");
    let ws_cmd = format!("{} connect {url}", crate::util::ws_bin().display());
    sh.args(["-c", &format!("printf '{{\"a\":1}}\\n' | {ws_cmd} | jq .a")]);
    if let Some(p) = std::env::var_os("WS_PLUGIN_PATH") {
        sh.env("WS_PLUGIN_PATH", p);
    }
    let out = run(sh, b"", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "1\n"), "{out:?}");
    // Random bytes (newlines, NULs, invalid UTF-8 included) as base64 JSON in, the same out.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let blobs: Vec<Vec<u8>> = (0..20u32)
        .map(|n| {
            (0..(n * 97 % 1000 + 1)).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(n) >> 13) as u8).collect()
        })
        .collect();
    let input: String =
        blobs.iter().map(|b| format!("{{\"type\":\"binary\",\"data\":\"{}\"}}\n", b64.encode(b))).collect();
    let out = connect(&["--jsonl", &url], input.as_bytes());
    assert_eq!(out.code(), 0, "{out:?}");
    let back: Vec<Vec<u8>> = out
        .stdout
        .lines()
        .map(|l| {
            let data = l.strip_prefix("{\"type\":\"binary\",\"data\":\"").and_then(|r| r.strip_suffix("\"}"));
            b64.decode(data.unwrap_or_else(|| panic!("not a binary message: {l}"))).unwrap()
        })
        .collect();
    assert!(back == blobs, "the bytes changed on the way");
    // Text with a newline stays one message in --jsonl; binary lines with -b come back as hex.
    let out = connect(&["--jsonl", &url], b"{\"type\":\"text\",\"data\":\"two\\nlines\"}\n");
    assert_eq!(out.stdout, "{\"type\":\"text\",\"data\":\"two\\nlines\"}\n");
    let out = connect(&["-b", "--binary-output", "hex", &url], b"\xff\x00\xfe\n");
    assert_eq!(out.stdout, "ff00fe\n", "{out:?}");
}

/// Issue 16: how long a session lasts after its input ends.
#[test]
fn session_lifetime_no_close_max_messages_idle_timeout_and_send() {
    let stream = streaming_server(5, 0.4);
    let url = stream.url("ws");
    // Closing after the input ends would miss most of a slow stream; --no-close does not.
    let out = connect(&["--no-close", "--max-messages", "5", &url], b"subscribe\n");
    assert_eq!((out.code(), out.stdout.lines().count()), (0, 5), "{out:?}");
    assert!(out.stdout.ends_with("update 5\n"), "{}", out.stdout);
    let out = connect(&["--no-close", "--max-messages", "2", &url], b"subscribe\n");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "update 1\nupdate 2\n"), "{out:?}");
    let started = std::time::Instant::now();
    let out = connect(&["--no-close", "--idle-timeout", "1", &url], b"subscribe\n");
    assert_eq!((out.code(), out.stdout.lines().count()), (0, 5), "{out:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2500) && took < Duration::from_secs(10), "took {took:?}");
    // --send goes first on every connection; -1 ends after one message.
    let echo = Server::start("echo_server", &["-q"]);
    let out = connect(&["--send", "first", "-1", &echo.url("ws")], b"");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "first\n"), "{out:?}");
}

/// Issue 16: credentials from the URL or --auth (never shown), --origin, several
/// subprotocols, and the /ping and /close prompt commands.
#[test]
fn userinfo_auth_origin_subprotocols_and_prompt_commands() {
    // "user:p@ss" in Basic form.
    let server = Server::start("echo_server", &["--http_authorization_header", "Basic dXNlcjpwQHNz"]);
    let addr = server.addr;
    let out = connect(&["-v", &format!("ws://user:p%40ss@{addr}/")], b"let me in\n");
    // (The reference's greeting, spelling included, then the echo.)
    assert_eq!((out.code(), out.stdout.as_str()), (0, "Authorization suceeded!\nlet me in\n"), "{out:?}");
    assert!(!out.stderr.contains("p%40ss") && !out.stderr.contains("p@ss"), "a password was shown: {}", out.stderr);
    let host = server.wait_for_line("Host: ", T);
    assert!(!host.contains("user"), "credentials went into the Host header: {host}");
    let out = connect(&["--auth", "user:p@ss", &format!("ws://{addr}/")], b"again\n");
    assert_eq!(out.stdout, "Authorization suceeded!\nagain\n", "{out:?}");
    let out = connect(&["--auth", "user:wrong", &format!("ws://{addr}/")], b"no\n");
    assert_eq!(out.code(), 1, "{out:?}");

    let open = Server::start("echo_server", &[]);
    let url = open.url("ws");
    let out =
        connect(&["-v", "--origin", "http://app.test", "--subprotocol", "v2", "--subprotocol", "v1", &url], b"x\n");
    assert_eq!(out.code(), 0, "{out:?}");
    open.wait_for_line("Origin: http://app.test", T);
    open.wait_for_line("Sec-Websocket-Protocol: v2, v1", T);
    assert!(out.stderr.contains("Sec-Websocket-Protocol: v2"), "the chosen one is shown: {}", out.stderr);

    let mut c = crate::util::Interactive::start("connect", ws().args(["connect", "-v", "-d", &url]));
    c.wait_for_lines("ws_connect: connected", 1, T);
    c.send_line("/ping hello");
    c.wait_for_lines("Received pong hello", 1, T);
    c.send_line("/close 4000 done here");
    open.wait_for_line("code 4000 reason done here", T);
    let status = c.finish(T);
    assert_eq!(status.code(), Some(1), "4000 is not a normal close");
}
