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

/// What `openssl s_client` negotiates with a server: the `Cipher is …` line, or the failure.
fn openssl_cipher(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is missing: scripts/peers.sh installs it");
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find(|l| l.contains("Cipher is ")) {
        Some(l) if !l.contains("(NONE)") => l.trim().to_string(),
        _ => "handshake failed".into(),
    }
}

/// Issue 24: `--ciphers` with OpenSSL's names, checked with OpenSSL's own client: a TLS 1.2
/// name narrows TLS 1.2 and leaves TLS 1.3 whole (OpenSSL's split), a TLS 1.3 name narrows
/// TLS 1.3, an unknown name is refused by name with exit 2.
#[test]
fn ciphers_take_openssls_names_and_openssl_sees_them() {
    let one12 = tls_server("echo_server", "server", &["--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"]);
    let port = one12.addr.port();
    assert!(openssl_cipher(port, &["-tls1_2"]).ends_with("ECDHE-RSA-AES128-GCM-SHA256"));
    assert_eq!(openssl_cipher(port, &["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"]), "handshake failed");
    assert!(openssl_cipher(port, &["-tls1_3"]).contains("TLS_AES_"), "TLS 1.3 should stay whole");

    let two = "TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES128-GCM-SHA256:!aNULL:!MD5";
    let one_each = tls_server("echo_server", "server", &["--ciphers", two]);
    let port = one_each.addr.port();
    assert!(openssl_cipher(port, &["-tls1_3"]).ends_with("TLS_CHACHA20_POLY1305_SHA256"));
    assert_eq!(openssl_cipher(port, &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]), "handshake failed");

    // Our client with a list the server shares, and one it does not (in both families).
    let c = certs();
    let url = one_each.url("wss");
    let ca = c.path("ca.crt");
    let out = ws_run(&["connect", "--ca-file", &ca, "--ciphers", "TLS_CHACHA20_POLY1305_SHA256", &url], b"ok\n");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "ok\n"), "{}", out.stderr);
    let disjoint = "TLS_AES_256_GCM_SHA384 ECDHE-RSA-AES256-GCM-SHA384";
    let out = ws_run(&["connect", "--ca-file", &ca, "--ciphers", disjoint, &url, "-d"], b"x\n");
    assert_eq!(out.code(), 1, "a client with no shared suite connected: {out:?}");

    for sub in ["connect", "echo_server", "curl"] {
        let url = if sub == "curl" { "https://127.0.0.1:9/" } else { "wss://127.0.0.1:9/" };
        let args: Vec<&str> = if sub == "echo_server" {
            vec![sub, "--ciphers", "AES128-SHA", "--port", "0"]
        } else {
            vec![sub, "--ciphers", "AES128-SHA", url]
        };
        let out = ws_run(&args, b"");
        assert_eq!(out.code(), 2, "{sub}: {out:?}");
        assert!(out.stderr.contains("'AES128-SHA'") && out.stderr.lines().count() == 1, "{sub}: {}", out.stderr);
    }
}

/// Issue 24: `--disable-hostname-validation` accepts a certificate for another name whose
/// chain is trusted, and still refuses one nobody vouches for.
#[test]
fn disable_hostname_validation_skips_the_name_but_not_the_chain() {
    let c = certs();
    // example.test's self-signed certificate, served on 127.0.0.1.
    let elsewhere = tls_server("echo_server", "elsewhere", &["-q"]);
    let url = elsewhere.url("wss");
    let trusted = c.path("elsewhere.crt");
    let out = ws_run(&["connect", "-d", "--ca-file", &trusted, &url], b"x\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("not valid for this host name"), "{}", out.stderr);
    let out = ws_run(&["connect", "--ca-file", &trusted, "--disable-hostname-validation", &url], b"named\n");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "named\n"), "{}", out.stderr);
    // The chain still counts: the test CA did not sign it.
    let out = ws_run(&["connect", "-d", "--ca-file", &c.path("ca.crt"), "--disable-hostname-validation", &url], b"x\n");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("a CA certificate that was not given with --ca-file"), "{}", out.stderr);
    // curl too.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("f"), "file\n").unwrap();
    let https = tls_server("httpd", "elsewhere", &["--root", site.path().to_str().unwrap()]);
    let u = format!("{}/f", https.url("https"));
    let out = ws_run(&["curl", "-s", "--cacert", &trusted, "--disable-hostname-validation", &u], b"");
    assert_eq!((out.code(), out.stdout.as_str()), (0, "file\n"), "{}", out.stderr);
}
