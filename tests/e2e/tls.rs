//! Issue 25.11: a self-signed certificate made the usual way (`openssl req -x509`, which marks
//! it CA:TRUE), given as the CA, is trusted by every TLS client as curl and OpenSSL trust it,
//! and TLS failures are told in a plain sentence.

use std::time::Duration;

use crate::util::{Server, certs, run, ws};

const T: Duration = Duration::from_secs(30);

fn tls_server(name: &str, cert: &str, extra: &[&str]) -> Server {
    let c = certs();
    let (crt, key) = (c.path(&format!("{cert}.crt")), c.path(&format!("{cert}.key")));
    Server::start(name, &[&["--tls", "--cert-file", &crt, "--key-file", &key][..], extra].concat())
}

fn ws_run(args: &[&str], stdin: &[u8]) -> crate::util::Output {
    let mut cmd = ws();
    cmd.args(args);
    run(cmd, stdin, T)
}

#[test]
fn a_self_signed_certificate_given_as_the_ca_is_trusted_by_every_client() {
    let c = certs();
    let ca = c.path("self.crt");
    let echo = tls_server("echo_server", "self", &["-q"]);
    let url = echo.url("wss");
    let out = ws_run(&["connect", "--ca-file", &ca, &url], b"trusted\n");
    assert!(out.code() == 0 && out.stdout.lines().any(|l| l == "trusted"), "connect: {out:?}");
    let out = ws_run(&["ping", "--ca-file", &ca, &url], b"abc\n");
    assert!(out.code() == 0 && out.stdout.contains("received pong message: abc"), "ping: {out:?}");
    let out = ws_run(&["bench", "--ca-file", &ca, &url, "-d", "1", "--warmup", "0.1", "-c", "1", "--json"], b"");
    assert_eq!(out.code(), 0, "bench: {out:?}");
    // The proxy's upstream.
    let proxy = tls_server("proxy_server", "self", &["--remote_host", &url, "--upstream-ca-file", &ca]);
    let out = ws_run(&["connect", "--ca-file", &ca, &proxy.url("wss")], b"through\n");
    assert!(out.code() == 0 && out.stdout.lines().any(|l| l == "through"), "proxy: {out:?}");
    // curl, and the real curl agrees.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hi.txt"), "hi\n").unwrap();
    let httpd = tls_server("httpd", "self", &["-q", "--root", site.path().to_str().unwrap()]);
    let hi = format!("{}/hi.txt", httpd.url("https"));
    let out = ws_run(&["curl", "-s", "--cacert", &ca, &hi], b"");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hi\n"), "curl: {out:?}");
    let mut real = std::process::Command::new("curl");
    real.args(["-sS", "--cacert", &ca, &hi]);
    assert_eq!(run(real, b"", T).stdout, "hi\n", "the real curl trusts it too");
}

#[test]
fn tls_failures_are_one_plain_sentence() {
    let c = certs();
    // A self-signed certificate for another name, trusted as the CA: the name still counts.
    let other = tls_server("echo_server", "elsewhere", &["-q"]);
    let out = ws_run(&["connect", "--ca-file", &c.path("elsewhere.crt"), &other.url("wss")], b"x\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("not valid for this host name"), "{}", out.stderr);
    let out = ws_run(&["curl", "-s", "--cacert", &c.path("elsewhere.crt"), &format!("{}/", other.url("https"))], b"");
    assert_eq!(out.code(), 60, "{out:?}");
    // A self-signed CA certificate that was not given as the CA.
    let out = ws_run(&["curl", "-s", "--cacert", &c.path("ca.crt"), &format!("{}/", other.url("https"))], b"");
    assert_eq!(out.code(), 60, "{out:?}");
    assert!(out.stderr.contains("the certificate is a CA certificate that was not given"), "{}", out.stderr);
    assert!(!out.stderr.contains("InvalidCertificate") && !out.stderr.contains("Other("), "{}", out.stderr);
    // Signed by a CA nobody trusts here.
    let signed = tls_server("echo_server", "server", &["-q"]);
    let out = ws_run(&["curl", "-s", "--cacert", &c.path("self.crt"), &format!("{}/", signed.url("https"))], b"");
    assert_eq!(out.code(), 60, "{out:?}");
    assert!(out.stderr.contains("not signed by a trusted CA (unknown issuer"), "{}", out.stderr);
}
