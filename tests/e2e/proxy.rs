//! `ws proxy_server` between real clients (Python, Node, `ws connect`) and real upstreams
//! (`ws echo_server`, Python `websockets`).

use std::time::{Duration, Instant};

use crate::util::{Server, certs, peer_script, run, ws};

const T: Duration = Duration::from_secs(30);

fn proxy(args: &[&str]) -> Server {
    Server::start("proxy_server", args)
}

fn connect_via(proxy: &Server, host: &str, input: &[u8]) -> crate::util::Output {
    let mut cmd = ws();
    cmd.args(["connect", "-d", "-H", &format!("Host: {host}"), &proxy.url("ws")]);
    run(cmd, input, T)
}

#[test]
fn python_and_node_clients_get_text_binary_and_1mib_echoed_through_the_proxy() {
    let upstream = Server::start("echo_server", &[]);
    let p = proxy(&["--remote_host", &upstream.url("ws")]);
    let mut py = peer_script("echo_client.py");
    py.arg(p.url("ws"));
    let out = run(py, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("1MiB ok") && out.stdout.contains("closed 1000"), "{}", out.stdout);
    let mut node = peer_script("echo_client.js");
    node.arg(p.url("ws"));
    let out = run(node, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    // Plain pairs were relayed by the relay thread, not the async fallback.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", p.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(threads.iter().any(|t| t == "ws-relay"), "no relay thread: {threads:?}");
    // The client's close reached the upstream with its code.
    upstream.wait_for_line("Closed connection: client id 0 code 1000", T);
    upstream.wait_for_line("Closed connection: client id 1 code 1000 reason done", T);
}

#[test]
fn the_client_path_query_and_authorization_reach_the_upstream_and_4001_comes_back() {
    let upstream = Server::start("echo_server", &["--http_authorization_header", "sesame"]);
    let p = proxy(&["--remote_host", &upstream.url("ws")]);
    let mut probe = peer_script("probe_client.py");
    probe.args([&format!("{}/deep/path?q=1", p.url("ws")), "--header", "Authorization: sesame"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("recv text 23 Authorization suceeded!"), "{out:?}");
    upstream.wait_for_line("Uri: /deep/path?q=1", T);
    let mut probe = peer_script("probe_client.py");
    probe.args([&p.url("ws"), "--header", "Authorization: wrong"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("closed 4001 Permission denied"), "{out:?}");
}

#[test]
fn wss_on_both_sides_with_a_python_tls_upstream_and_an_untrusted_one_is_1011() {
    let c = certs();
    let (crt, key, ca) = (c.path("server.crt"), c.path("server.key"), c.path("ca.crt"));
    let upstream = Server::start_cmd("py-tls-echo", peer_script("echo_server.py").args(["--tls", &crt, &key]));
    let up_url = format!("wss://localhost:{}", upstream.addr.port());
    let tls = ["--tls", "--cert-file", crt.as_str(), "--key-file", key.as_str()];
    let p = proxy(&[&tls[..], &["--remote_host", &up_url, "--upstream-ca-file", &ca]].concat());
    let client_url = format!("wss://localhost:{}/tls", p.addr.port());
    let mut probe = peer_script("probe_client.py");
    probe.args([&client_url, "--ca", &ca, "--send-size", "70000", "--expect", "1"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("recv binary 70000") && out.stdout.contains("closed 1000"), "{out:?}");
    // Without the CA the upstream's certificate is not trusted: the client hears why.
    let untrusting = proxy(&[&tls[..], &["--remote_host", &up_url]].concat());
    let mut probe = peer_script("probe_client.py");
    probe.args([&format!("wss://localhost:{}/", untrusting.addr.port()), "--ca", &ca]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("closed 1011") && out.stdout.contains("certificate"), "{out:?}");
}

#[test]
fn the_client_gets_the_subprotocol_the_upstream_chose_among_all_it_offered() {
    // The upstream supports only the client's second choice: the proxy offers it the whole
    // list before answering the client, and answers with the upstream's pick.
    let upstream = Server::start_cmd("py-echo", peer_script("echo_server.py").args(["--subprotocols", "json"]));
    let p = proxy(&["--remote_host", &upstream.url("ws")]);
    let mut probe = peer_script("probe_client.py");
    probe.args([&p.url("ws"), "--subprotocol", "chat,json", "--send-size", "3", "--expect", "1"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("subprotocol json") && out.stdout.contains("recv binary 3"), "{out:?}");
    let upstream = Server::start("echo_server", &[]);
    let p = proxy(&["--remote_host", &upstream.url("ws")]);
    let mut probe = peer_script("probe_client.py");
    probe.args([&p.url("ws"), "--subprotocol", "chat,json", "--send-size", "3", "--expect", "1"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("subprotocol chat"), "{out:?}");
    let offered = upstream.wait_for_line("Sec-Websocket-Protocol: ", T);
    assert!(offered.ends_with("Sec-Websocket-Protocol: chat, json"), "the upstream was offered {offered:?}");
}

#[test]
fn routes_by_host_from_both_config_forms() {
    let greeter = Server::start("echo_server", &["-g", "-q"]);
    let python = Server::start_cmd("py-echo", &mut peer_script("echo_server.py"));
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("proxy.conf");
    std::fs::write(
        &lines,
        format!("# two upstreams\ngreet.local={}\n\nplain.local:8008={}\n", greeter.url("ws"), python.url("ws")),
    )
    .unwrap();
    let json = dir.path().join("proxy.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"remote_urls": {{"greet.local": "{}", "plain.local:8008": "{}"}}}}"#,
            greeter.url("ws"),
            python.url("ws")
        ),
    )
    .unwrap();
    for config in [&lines, &json] {
        let p = proxy(&["--config_path", config.to_str().unwrap()]);
        let out = connect_via(&p, &format!("greet.local:{}", p.addr.port()), b"routed\n");
        assert_eq!(out.code(), 0, "{out:?}");
        assert!(out.stdout.lines().any(|l| l == "Welcome !"), "{}", out.stdout);
        assert!(out.stdout.lines().any(|l| l == "routed"), "{}", out.stdout);
        let out = connect_via(&p, "plain.local:8008", b"routed\n");
        assert_eq!(out.code(), 0, "{out:?}");
        assert!(!out.stdout.contains("Welcome !") && out.stdout.lines().any(|l| l == "routed"), "{}", out.stdout);
        // An unknown host with no --remote_host fallback: HTTP 404 before the upgrade.
        let out = connect_via(&p, "nobody.local", b"");
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);
    }
}

#[test]
fn an_unreachable_upstream_closes_the_client_with_1011_promptly() {
    let port = crate::util::free_port();
    let p = proxy(&["--remote_host", &format!("ws://127.0.0.1:{port}/"), "--upstream-timeout", "2"]);
    let start = Instant::now();
    let mut probe = peer_script("probe_client.py");
    probe.arg(p.url("ws"));
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("closed 1011 upstream ws://127.0.0.1:"), "{out:?}");
    assert!(out.stdout.contains("Connection refused"), "{}", out.stdout);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    // The same proxy keeps serving: once an upstream listens on that port, it is reached.
    let port = port.to_string();
    let _upstream = Server::start_cmd("echo_server", crate::util::ws().args(["echo_server", "-q", "--port", &port]));
    let out = connect_via(&p, "any", b"still here\n");
    assert!(out.stdout.lines().any(|l| l == "still here"), "{}", out.stdout);
}

#[test]
fn a_malformed_config_is_one_line_naming_file_and_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "good.local=ws://127.0.0.1:1\nno equals here\n").unwrap();
    let mut cmd = ws();
    cmd.args(["proxy_server", "--port", "0", "--config_path", bad.to_str().unwrap()]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 2, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("{}:2:", bad.display())), "{}", out.stderr);
    assert!(!out.stdout.contains("Listening"), "{}", out.stdout);
}

#[test]
fn pongs_never_land_inside_a_data_frame_that_is_still_passing() {
    // The upstream sends one 2 MiB frame in pieces over ~0.3 s while the client pings every
    // 5 ms: the proxy answers each ping itself, and its pong must wait for the frame's end.
    let upstream = Server::start_cmd("slow-frame", peer_script("slow_peers.py").arg("serve"));
    let p = proxy(&["--remote_host", &upstream.url("ws")]);
    let mut client = peer_script("slow_peers.py");
    client.args(["client", &p.url("ws")]);
    let out = run(client, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("ok 2097152 bytes"), "{out:?}");
}

#[test]
fn an_upstream_that_does_not_read_slows_the_client_and_memory_stays_bounded() {
    // The upstream never reads; the client sends 1 MiB messages as fast as it can for 3 s.
    // Only the socket buffers and the proxy's own bounded buffer can take them: the client
    // must be held back (tens of MiB at most, where loopback takes gigabytes in 3 s), and the
    // proxy's memory must not grow with what it was sent.
    let upstream = Server::start_cmd("stalled", peer_script("slow_peers.py").arg("stall"));
    let p = proxy(&["--remote_host", &upstream.url("ws")]);
    let mut client = peer_script("slow_peers.py");
    client.args(["flood", &p.url("ws"), "3"]);
    let out = run(client, b"", T);
    let sent: u64 = out
        .stdout
        .trim()
        .strip_prefix("sent ")
        .and_then(|s| s.strip_suffix(" MiB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(sent >= 1, "the client could not send at all: {out:?}");
    assert!(sent < 64, "the client sent {sent} MiB into an upstream that reads nothing: no backpressure");
    let hwm_kib = p.peak_rss_kib();
    assert!(hwm_kib < 32 * 1024, "proxy peak RSS {hwm_kib} KiB");
}

/// Issue 22: the proxy's own limits: a message over --max-message-size is closed with 1009
/// (and the upstream never sees it), a client over --max-connections gets 503, and an
/// upstream that dies mid-session closes the client instead of leaving it hanging.
#[test]
fn limits_through_the_proxy_and_an_upstream_dying_mid_session() {
    let upstream = Server::start("echo_server", &[]);
    let p = proxy(&["--remote_host", &upstream.url("ws"), "--max-message-size", "1000", "--max-connections", "1"]);
    let mut probe = peer_script("probe_client.py");
    probe.args([&p.url("ws"), "--send-size", "2000"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("closed 1009"), "{out:?}");
    assert!(!upstream.output().iter().any(|l| l.contains("Received 2000 bytes")), "the upstream got it");
    // One client inside the limit, the next one refused.
    let mut first = crate::raw::RawWs::connect(p.addr);
    p.wait_for_line("client id 0", T);
    let (_second, head) = crate::raw::upgrade(p.addr);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    first.send_frame(0x81, b"alive");
    assert_eq!(first.read_frame(), Some((0x1, b"alive".to_vec())));
    // The upstream dies with the session open: the client hears about it.
    drop(upstream);
    let code = first.read_close_code();
    assert_eq!(code, Some(1011), "the client is told the upstream went away");
}
