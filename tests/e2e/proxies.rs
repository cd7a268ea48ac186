//! Issue 16: clients through real proxies from Debian's packages: tinyproxy (HTTP CONNECT)
//! and microsocks (SOCKS5), by flag and by the usual environment variables.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{Output, Server, certs, free_port, run, wait_for_port, ws};

const T: Duration = Duration::from_secs(30);

/// A proxy process on a port of its own, killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tinyproxy allowing CONNECT to any port, or (`only_443`) to 443 alone.
fn tinyproxy(only_443: bool) -> Proxy {
    tinyproxy_with(if only_443 { "ConnectPort 443\n" } else { "" })
}

/// tinyproxy with these lines added to its configuration.
fn tinyproxy_with(extra: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = format!("Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogLevel Info\nMaxClients 20\n{extra}");
    let path = dir.path().join("tinyproxy.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("tinyproxy")
        .args(["-d", "-c", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tinyproxy is missing: scripts/peers.sh installs it");
    wait_for_port(port, "tinyproxy", T);
    Proxy { child, port, _dir: dir }
}

/// microsocks, with a user and password when given.
fn microsocks(auth: Option<(&str, &str)>) -> Proxy {
    let port = free_port();
    let mut cmd = Command::new("microsocks");
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("microsocks is missing: scripts/peers.sh installs it");
    wait_for_port(port, "microsocks", T);
    Proxy { child, port, _dir: tempfile::tempdir().unwrap() }
}

fn ws_with(args: &[&str], env: &[(&str, String)], stdin: &[u8]) -> Output {
    let mut cmd = ws();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, stdin, T)
}

#[test]
fn connect_goes_through_http_connect_and_socks5_proxies() {
    let echo = Server::start("echo_server", &["-q"]);
    let url = echo.url("ws");
    let http = tinyproxy(false);
    let via = format!("http://127.0.0.1:{}", http.port);
    let out = ws_with(&["connect", "--proxy", &via, &url], &[], b"through tinyproxy\n");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "through tinyproxy\n"), "{out:?}");
    // A proxy that refuses the CONNECT: one line, exit 1, the proxy's answer named.
    let strict = tinyproxy(true);
    let out = ws_with(&["connect", "--proxy", &format!("127.0.0.1:{}", strict.port), &url], &[], b"x\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("refused CONNECT") && out.stderr.contains("403"), "{}", out.stderr);
    // SOCKS5, the name resolved by the proxy, with credentials; wrong ones are refused.
    let socks = microsocks(Some(("alice", "s3cret")));
    let local = format!("ws://localhost:{}/", echo.addr.port());
    let good = format!("socks5h://alice:s3cret@127.0.0.1:{}", socks.port);
    let out = ws_with(&["connect", "--proxy", &good, &local], &[], b"through socks\n");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "through socks\n"), "{out:?}");
    let bad = format!("socks5://alice:wrong@127.0.0.1:{}", socks.port);
    let out = ws_with(&["connect", "--proxy", &bad, &url], &[], b"x\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("refused the user name and password"), "{}", out.stderr);
    assert!(!out.stderr.contains("wrong"), "the password was printed: {}", out.stderr);
}

#[test]
fn wss_runs_tls_end_to_end_inside_the_tunnel_and_the_environment_is_read() {
    let c = certs();
    let (crt, key, ca) = (c.path("server.crt"), c.path("server.key"), c.path("ca.crt"));
    let echo = Server::start("echo_server", &["-q", "--tls", "--cert-file", &crt, "--key-file", &key]);
    let secure = format!("wss://localhost:{}/", echo.addr.port());
    let http = tinyproxy(false);
    let via = format!("http://127.0.0.1:{}", http.port);
    let out = ws_with(&["connect", "--ca-file", &ca, &secure], &[("https_proxy", via.clone())], b"secret stuff\n");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "secret stuff\n"), "{out:?}");
    // A proxy in the environment that is not there: the variable is used...
    let dead = format!("http://127.0.0.1:{}", free_port());
    let plain = Server::start("echo_server", &["-q"]);
    let out = ws_with(&["connect", &plain.url("ws")], &[("http_proxy", dead.clone())], b"x\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("cannot connect to proxy"), "{}", out.stderr);
    // ...unless no_proxy names the host, or --proxy "" turns it off.
    let env = [("http_proxy", dead.clone()), ("no_proxy", "localhost,127.0.0.1".to_string())];
    let out = ws_with(&["connect", &plain.url("ws")], &env, b"direct\n");
    assert_eq!(out.stdout, "direct\n", "{out:?}");
    let out = ws_with(&["connect", "--proxy", "", &plain.url("ws")], &[("http_proxy", dead)], b"direct\n");
    assert_eq!(out.stdout, "direct\n", "{out:?}");
}

#[test]
fn curl_goes_through_proxies_like_the_real_curl() {
    let hi = crate::util::serve_one_file("hi.txt", "hello through a proxy\n");
    let url = hi.url.clone();
    let http = tinyproxy(false);
    let socks = microsocks(None);
    for proxy in [format!("http://127.0.0.1:{}", http.port), format!("socks5h://127.0.0.1:{}", socks.port)] {
        let out = ws_with(&["curl", "-s", "-x", &proxy, &url], &[], b"");
        assert_eq!((out.code(), out.stdout.as_str()), (0, "hello through a proxy\n"), "{proxy}: {out:?}");
        let real = Command::new("curl").args(["-sS", "-x", &proxy, &url]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&real.stdout), "hello through a proxy\n", "the real curl, {proxy}");
    }
    // A proxy that allows CONNECT to port 443 alone (tinyproxy's and squid's usual rule): an
    // http:// URL still passes, sent to the proxy in absolute form as curl sends it, while an
    // https:// URL needs the tunnel and is refused (56, as the real curl).
    let strict = tinyproxy(true);
    let strict_url = format!("http://127.0.0.1:{}", strict.port);
    let out = ws_with(&["curl", "-s", "-x", &strict_url, &url], &[], b"");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello through a proxy\n"), "{out:?}");
    let real = Command::new("curl").args(["-sS", "-x", &strict_url, &url]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&real.stdout), "hello through a proxy\n", "the real curl");
    let tls_url = url.replacen("http://", "https://", 1);
    let out = ws_with(&["curl", "-s", "-x", &strict_url, &tls_url], &[], b"");
    assert_eq!(out.code(), 56, "{out:?}");
    let real = Command::new("curl").args(["-sS", "-x", &strict_url, &tls_url]).output().unwrap();
    assert_eq!(real.status.code(), Some(56), "the real curl: {real:?}");
}

#[test]
fn curl_sends_proxy_credentials_with_an_absolute_form_request_and_never_prints_them() {
    let hi = crate::util::serve_one_file("hi.txt", "hello through a proxy\n");
    let proxy = tinyproxy_with("ConnectPort 443\nBasicAuth alice s3cret\n");
    let port = proxy.port;
    // The right credentials pass; wrong ones get the proxy's refusal as the answer (tinyproxy
    // says 401 where RFC 9110 says 407), exit 0 without -f: as the real curl, code for code.
    for (creds, pass) in [("alice:s3cret", true), ("alice:wrong", false)] {
        let proxy = format!("http://{creds}@127.0.0.1:{port}");
        let args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", &proxy, &hi.url];
        let out = ws_with(&[&["curl"][..], &args[..]].concat(), &[], b"");
        let real = Command::new("curl").args(args).output().unwrap();
        let want = String::from_utf8_lossy(&real.stdout);
        assert_eq!(want == "200", pass, "the real curl, {creds}: {want}");
        assert_eq!((out.code(), out.stdout.as_str()), (0, &*want), "{creds}: {out:?}");
    }
    let proxy = format!("http://alice:s3cret@127.0.0.1:{port}");
    let out = ws_with(&["curl", "-v", "-o", "/dev/null", "-x", &proxy, &hi.url], &[], b"");
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains(&format!("> GET {} HTTP/1.1", hi.url)), "{}", out.stderr);
    assert!(out.stderr.contains("> proxy-authorization: Basic [hidden]"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret") && !out.stderr.contains("YWxpY2U6czNjcmV0"), "{}", out.stderr);
}
