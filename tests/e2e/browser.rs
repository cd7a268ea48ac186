//! Issue 19: pages served by `ws httpd` in a real browser — Debian's Chromium, headless, its
//! DOM read after the page's scripts ran (`--dump-dom` with a virtual-time budget): a page
//! `fetch()`es from another origin with a preflight (`--cors`), a single-page app's deep
//! route renders (`--spa`), and the listing's upload form is filled and sent (`--upload`).

use std::process::Command;
use std::time::Duration;

use crate::httpd::httpd;
use crate::util::run;

/// The DOM of `url` once its scripts ran, as headless Chromium serialises it.
fn dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=10000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url]);
    let out = run(cmd, b"", Duration::from_secs(60));
    assert_eq!(out.code(), 0, "chromium failed: {}", out.stderr);
    out.stdout
}

/// The text of the element with id `out` in `html`.
fn out_text(html: &str) -> &str {
    let start = html.find("id=\"out\">").map(|i| i + 9).unwrap_or_else(|| panic!("no #out in {html}"));
    &html[start..start + html[start..].find('<').unwrap()]
}

const FETCH_PAGE: &str = r#"<!DOCTYPE html><html><body><p id="out">waiting</p><script>
// A custom header makes the request "not simple": the browser sends a preflight first.
fetch(location.hash.slice(1), { headers: { 'X-Token': 'abc' } })
  .then(r => r.text()).then(t => { document.getElementById('out').textContent = 'fetched: ' + t.trim(); })
  .catch(e => { document.getElementById('out').textContent = 'blocked'; });
</script></body></html>"#;

#[test]
fn a_page_fetches_from_another_origin_only_with_cors() {
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(pages.path().join("index.html"), FETCH_PAGE).unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("data.txt"), "data from the API\n").unwrap();
    let site = httpd(pages.path(), &[]);
    let open = httpd(data.path(), &["--cors"]);
    let closed = httpd(data.path(), &[]);
    let elsewhere = httpd(data.path(), &["--cors", "https://app.example"]);
    // 127.0.0.1 and localhost are different origins.
    let page = format!("http://localhost:{}/index.html", site.addr.port());
    let html = dom(&format!("{page}#{}/data.txt", open.url("http")));
    assert_eq!(out_text(&html), "fetched: data from the API", "{html}");
    open.wait_for_line("OPTIONS /data.txt 204", Duration::from_secs(5));
    for refused in [&closed, &elsewhere] {
        let html = dom(&format!("{page}#{}/data.txt", refused.url("http")));
        assert_eq!(out_text(&html), "blocked", "{html}");
    }
}

#[test]
fn a_single_page_apps_deep_route_renders_with_its_assets() {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("index.html"),
        r#"<!DOCTYPE html><html><body><p id="out">not rendered</p><script src="/app.js"></script></body></html>"#,
    )
    .unwrap();
    std::fs::write(
        app.path().join("app.js"),
        "document.getElementById('out').textContent = 'route ' + location.pathname;\n",
    )
    .unwrap();
    let spa = httpd(app.path(), &["--spa"]);
    let html = dom(&format!("{}/users/7/profile", spa.url("http")));
    assert_eq!(out_text(&html), "route /users/7/profile", "{html}");
    // Without --spa the route is a 404 page.
    let plain = httpd(app.path(), &[]);
    let html = dom(&format!("{}/users/7/profile", plain.url("http")));
    assert!(html.contains("not found") && !html.contains("route"), "{html}");
}

/// The page holds the folder's listing in a frame, puts a file in its form's file input (as
/// a user choosing one would) and submits the form; the browser follows the 303 back to the
/// listing, which then shows the file.
const UPLOAD_PAGE: &str = r#"<!DOCTYPE html><html><body><p id="out">waiting</p>
<iframe id="f" src="/inbox/"></iframe><script>
let sent = false;
document.getElementById('f').onload = () => {
  const doc = document.getElementById('f').contentDocument;
  if (!sent) {
    sent = true;
    const input = doc.querySelector('form input[type=file]');
    const files = new DataTransfer();
    files.items.add(new File(['chosen in the browser\n'], 'from browser.txt', { type: 'text/plain' }));
    files.items.add(new File([new Uint8Array([0, 1, 2, 255])], 'bytes.bin'));
    input.files = files.files;
    doc.querySelector('form').submit();
  } else {
    const names = [...doc.querySelectorAll('li a')].map(a => a.textContent);
    document.getElementById('out').textContent = 'listed: ' + names.join(',');
  }
};
</script></body></html>"#;

#[test]
fn the_listings_upload_form_sends_files_from_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("upload.html"), UPLOAD_PAGE).unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let server = httpd(dir.path(), &["--upload"]);
    let html = dom(&format!("{}/upload.html", server.url("http")));
    assert_eq!(out_text(&html), "listed: bytes.bin,from browser.txt", "{html}");
    assert_eq!(std::fs::read_to_string(dir.path().join("inbox/from browser.txt")).unwrap(), "chosen in the browser\n");
    assert_eq!(std::fs::read(dir.path().join("inbox/bytes.bin")).unwrap(), [0, 1, 2, 255]);
    server.wait_for_line("POST /inbox/ 303", Duration::from_secs(5));
}
