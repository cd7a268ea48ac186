//! Issue 21: `ws listen` — a WebSocket server whose clients talk to the terminal or a pipe —
//! against Node `ws` and Python `websockets` clients, in a pipe and on a real terminal.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{Interactive, Tmux, parse_listening, peer_script, run, wait_timeout, ws};

const T: Duration = Duration::from_secs(30);

/// Starts `ws listen ARGS --port 0` with piped stdin; returns it and its address.
/// `node listen_client.js ARGS`, run to its end.
fn node_client(args: &[&str]) -> crate::util::Output {
    let mut cmd = peer_script("listen_client.js");
    cmd.args(args);
    run(cmd, b"", T)
}

fn listen(args: &[&str]) -> (Interactive, std::net::SocketAddr) {
    let mut cmd = ws();
    cmd.arg("listen").args(["--port", "0"]).args(args);
    let server = Interactive::start("listen", &mut cmd);
    let line = server.wait_for_lines("Listening on", 1, Duration::from_secs(10)).remove(0);
    let addr = parse_listening(&line).unwrap_or_else(|| panic!("no address in {line:?}"));
    (server, addr)
}

/// The way scripts capture what a client sends: `ws listen --once > file`, with a greeting
/// piped in that waits for the client; exits 0 after the client's normal close.
#[test]
fn once_captures_what_a_node_client_sends_and_greets_it() {
    let mut cmd = ws();
    cmd.args(["listen", "--once", "--port", "0", "--binary-output", "hex"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The greeting is written before any client exists: it waits for the first.
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"welcome\n").unwrap();
        // stdin stays open until the end: its end must not end the server either way.
        std::mem::forget(stdin);
    }
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("no ready line");
        if let Some(a) = parse_listening(&line) {
            break a;
        }
    };
    let node = node_client(&[&format!("ws://{addr}/capture"), "1"]);
    assert!(node.stdout.contains("got welcome"), "{node:?}");
    assert!(node.stdout.contains("closed 1000"), "{node:?}");
    let status = wait_timeout(&mut child, T).expect("ws listen --once did not exit after its client left");
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "hello from node\n0001feff\n", "stdout holds the messages alone");
    let log: Vec<String> = rx.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("Uri: /capture")), "the handshake is logged on stderr: {log:?}");
}

/// A client that drops the connection without a close: `--once` exits 1 and says so.
#[test]
fn once_exits_1_when_its_client_leaves_abnormally() {
    let (server, addr) = listen(&["--once"]);
    let node = node_client(&[&format!("ws://{addr}/"), "0", "drop"]);
    assert!(node.stdout.contains("closed 1006"), "{node:?}");
    server.wait_for_lines("the client's connection ended: code 1006", 1, T);
    let status = server.finish(T);
    assert_eq!(status.code(), Some(1));
}

/// Several clients: a line goes to all, `/to ID` to one, and received lines say whose.
#[test]
fn lines_go_to_every_client_or_one_with_to_and_say_whose_message_it_is() {
    let (mut server, addr) = listen(&["--jsonl"]);
    let url = format!("ws://{addr}/");
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        print("open", flush=True)
        while True:
            msg = await ws.recv()
            print("got", msg, flush=True)
            if msg == "quit":
                await ws.send("bye from " + sys.argv[2])
                return
asyncio.run(main())
"#;
    let client = |name: &str| {
        let mut cmd = std::process::Command::new(crate::util::python());
        cmd.args(["-c", script, &url, name]);
        Interactive::start(name, &mut cmd)
    };
    let a = client("a");
    a.wait_for_lines("open", 1, T);
    server.wait_for_lines("id: 0", 1, T);
    let b = client("b");
    b.wait_for_lines("open", 1, T);
    server.wait_for_lines("id: 1", 1, T);
    server.send_line("to everyone");
    a.wait_for_lines("got to everyone", 1, T);
    b.wait_for_lines("got to everyone", 1, T);
    server.send_line("/to 1 only for b");
    b.wait_for_lines("got only for b", 1, T);
    server.send_line("/to 7 nobody");
    server.wait_for_lines("no client 7", 1, T);
    server.send_line("/clients");
    server.wait_for_lines("2 connected: #0 #1", 1, T);
    server.send_line(r#"{"type":"text","data":"quit"}"#);
    server.wait_for_lines(r#"{"client":0,"type":"text","data":"bye from a"}"#, 1, T);
    server.wait_for_lines(r#"{"client":1,"type":"text","data":"bye from b"}"#, 1, T);
    assert!(!a.output().iter().any(|l| l.contains("only for b")), "{:?}", a.output());
    // Piped input ended: the server keeps serving.
    server.close_stdin();
    let late = node_client(&[&url, "0"]);
    assert!(late.stdout.contains("closed 1000"), "{late:?}");
    server.wait_for_lines(r#""data":"hello from node""#, 1, T);
}

/// At a terminal: what a client sends appears on the screen, a typed line reaches it, and
/// Ctrl-D closes it with 1001 and exits 0.
#[test]
fn at_a_terminal_messages_appear_and_typed_lines_are_sent() {
    let port = crate::util::free_port();
    let term = Tmux::start_with(&format!("listen --port {port}"));
    term.wait_for("Listening on");
    let mut cmd = peer_script("listen_client.js");
    cmd.args([&format!("ws://127.0.0.1:{port}/"), "1"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let node = Interactive::start("node", &mut cmd);
    term.wait_for("id: 0");
    term.keys(&["typed by hand", "Enter"]);
    node.wait_for_lines("got typed by hand", 1, T);
    term.wait_for("ws_listen: received message: hello from node");
    term.wait_for("code 1000");
    let node2 = {
        let mut cmd = std::process::Command::new(crate::util::python());
        cmd.args([
            "-c",
            "import asyncio,sys,websockets\nasync def m():\n  async with websockets.connect(sys.argv[1]) as ws:\n    print('open',flush=True)\n    await ws.wait_closed()\n    print('closed', ws.close_code, flush=True)\nasyncio.run(m())",
            &format!("ws://127.0.0.1:{port}/"),
        ]);
        Interactive::start("python", &mut cmd)
    };
    node2.wait_for_lines("open", 1, T);
    term.keys(&["C-d"]);
    node2.wait_for_lines("closed 1001", 1, T);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
}
