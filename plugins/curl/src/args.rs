//! The command line: curl's flags, curl's exit codes, and the URL as curl reads it.

use std::path::PathBuf;

use clap::Parser;
use ws_common::tls::TlsArgs;
use ws_common::url::Url;
use ws_plugin_api::Error;

/// curl's exit codes.
pub(crate) mod code {
    pub const UNSUPPORTED_PROTOCOL: i32 = 1;
    pub const URL: i32 = 3;
    pub const RESOLVE: i32 = 6;
    pub const CONNECT: i32 = 7;
    pub const HTTP_ERROR: i32 = 22;
    pub const PARTIAL: i32 = 18;
    pub const WRITE: i32 = 23;
    pub const READ: i32 = 26;
    pub const TIMEOUT: i32 = 28;
    pub const TLS: i32 = 35;
    pub const REDIRECTS: i32 = 47;
    pub const RANGE: i32 = 33;
    pub const PEER_FAILED: i32 = 56;
    pub const TOO_LARGE: i32 = 63;
    pub const PROXY: i32 = 97;
    pub const CERTIFICATE: i32 = 60;
    pub const BAD_ENCODING: i32 = 61;
}

/// HTTP Client
#[derive(Debug, Parser)]
#[command(name = "ws curl", about = "HTTP client with curl's flags and exit codes")]
pub(crate) struct Args {
    /// Connection url (http:// or https://)
    pub(crate) url: String,
    /// Request body, sent as given (@file: a file, newlines stripped; @-: stdin); several are
    /// joined with &; makes the request a POST
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub(crate) data: Vec<String>,
    /// Like -d, but @ is not special
    #[arg(long = "data-raw", value_name = "DATA")]
    pub(crate) data_raw: Vec<String>,
    /// Like -d, URL-encoded: content, =content, name=content, @file, name@file
    #[arg(long = "data-urlencode", value_name = "DATA")]
    pub(crate) data_urlencode: Vec<String>,
    /// JSON body (@file, @-), with Content-Type and Accept application/json
    #[arg(long = "json", value_name = "DATA")]
    pub(crate) json: Vec<String>,
    /// Upload FILE (- for stdin) with PUT, streamed; a URL ending in / gets the file's name
    #[arg(short = 'T', long = "upload-file", value_name = "FILE")]
    pub(crate) upload_file: Option<PathBuf>,
    /// Ask for a part of the body: bytes RANGE, as 0-99 or 500-
    #[arg(short = 'r', long = "range", value_name = "RANGE", conflicts_with = "continue_at")]
    pub(crate) range: Option<String>,
    /// Resume a download at OFFSET bytes, or with - where the output file ends (appended)
    #[arg(short = 'C', long = "continue-at", value_name = "OFFSET", allow_hyphen_values = true)]
    pub(crate) continue_at: Option<String>,
    /// Where the download resumes (from -C, filled after parsing)
    #[arg(skip)]
    pub(crate) resume_from: u64,
    /// Fail (exit 63) when the body is bigger than BYTES
    #[arg(long = "max-filesize", value_name = "BYTES", value_parser = ws_common::args::byte_count)]
    pub(crate) max_filesize: Option<u64>,
    /// Connect through this Unix domain socket instead of the URL's host (the URL still
    /// gives the request path and Host; no proxy is used)
    #[arg(long = "unix-socket", value_name = "PATH")]
    pub(crate) unix_socket: Option<PathBuf>,
    /// Send cookies: 'NAME=VALUE; …' as given, or read them from FILE (curl's cookie file or
    /// Set-Cookie lines); turns on the cookie engine (repeatable)
    #[arg(short = 'b', long = "cookie", value_name = "DATA|FILE")]
    pub(crate) cookie: Vec<String>,
    /// Write every cookie to FILE (curl's Netscape format; - for stdout) when done
    #[arg(short = 'c', long = "cookie-jar", value_name = "FILE")]
    pub(crate) cookie_jar: Option<PathBuf>,
    /// Use ADDRESS (or several, comma-separated) for HOST:PORT instead of resolving it
    #[arg(long, value_name = "HOST:PORT:ADDRESS")]
    pub(crate) resolve: Vec<String>,
    /// Connect to HOST2:PORT2 for requests to HOST1:PORT1 (empty parts: any / the same)
    #[arg(long = "connect-to", value_name = "HOST1:PORT1:HOST2:PORT2")]
    pub(crate) connect_to: Vec<String>,
    /// Resolve names to IPv4 addresses only
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub(crate) ipv4: bool,
    /// Resolve names to IPv6 addresses only
    #[arg(short = '6', long = "ipv6")]
    pub(crate) ipv6: bool,
    /// What --resolve, --connect-to, -4 and -6 make (filled after parsing)
    #[arg(skip)]
    pub(crate) overrides: ws_common::dial::Overrides,
    /// Download at most RATE bytes per second on average (k, m, g suffixes: 1024s)
    #[arg(long = "limit-rate", value_name = "RATE", value_parser = ws_common::args::byte_count)]
    pub(crate) limit_rate: Option<u64>,
    /// Take credentials for the host from ~/.netrc (no error when it is missing)
    #[arg(short = 'n', long = "netrc")]
    pub(crate) netrc: bool,
    /// Like --netrc, with ~/.netrc only if it exists
    #[arg(long = "netrc-optional")]
    pub(crate) netrc_optional: bool,
    /// Take credentials for the host from FILE (netrc format)
    #[arg(long = "netrc-file", value_name = "FILE")]
    pub(crate) netrc_file: Option<PathBuf>,
    /// The netrc read (filled after parsing)
    #[arg(skip)]
    pub(crate) netrc_entries: Option<netrc::Netrc>,
    /// Hosts reached without the proxy (comma-separated; overrides no_proxy)
    #[arg(long = "noproxy", value_name = "LIST")]
    pub(crate) noproxy: Option<String>,
    /// Put the -d data into the URL's query and send a GET
    #[arg(short = 'G', long = "get")]
    pub(crate) get: bool,
    /// Include the response head in the output
    #[arg(short = 'i', long = "include")]
    pub(crate) include: bool,
    /// Write the response head to FILE (- for stdout)
    #[arg(short = 'D', long = "dump-header", value_name = "FILE")]
    pub(crate) dump_header: Option<std::path::PathBuf>,
    /// After the transfer, print FORMAT with %{http_code}, %{time_total}, … filled in
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    pub(crate) write_out: Option<String>,
    /// Multipart field k=v, or k=@file to upload a file (repeatable)
    #[arg(short = 'F', value_name = "TEXT")]
    pub(crate) form: Vec<String>,
    /// Raw request body, or @file to send a file's bytes as they are (@-: stdin)
    #[arg(long = "data-binary", value_name = "TEXT")]
    pub(crate) data_binary: Option<String>,
    /// Request method (default GET, or POST when a body is given)
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub(crate) method: Option<String>,
    /// Extra header 'Name: value' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub(crate) headers: Vec<String>,
    /// Send a HEAD request
    #[arg(short = 'I', long = "head")]
    pub(crate) head: bool,
    /// Use this proxy: http://[user:pass@]host[:port] (CONNECT), socks5://, socks5h://
    /// (default: https_proxy, http_proxy, all_proxy, no_proxy; "" for none)
    #[arg(short = 'x', long = "proxy", value_name = "URL")]
    pub(crate) proxy: Option<String>,
    /// Follow redirects
    #[arg(short = 'L', long = "location")]
    pub(crate) follow: bool,
    /// With -L, send credentials (-u, and Authorization and Cookie headers) to every host
    /// redirected to, not only to the first one
    #[arg(long = "location-trusted")]
    pub(crate) location_trusted: bool,
    /// Most redirects followed with -L
    #[arg(long = "max-redirects", alias = "max-redirs", default_value_t = 5, value_name = "N")]
    pub(crate) max_redirects: u32,
    /// Save the body under the URL's last path segment
    #[arg(short = 'O', long = "remote-name")]
    pub(crate) remote_name: bool,
    /// Save the body to FILE
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Gzip the request body and send it with Content-Encoding: gzip (-T files are
    /// compressed as they are read)
    #[arg(long = "compress_request", alias = "compress-request")]
    pub(crate) compress_request: bool,
    /// Ask for a compressed body (gzip, deflate) and decode it
    #[arg(long = "compressed", alias = "compress")]
    pub(crate) compressed: bool,
    /// Seconds to connect (TCP and TLS)
    #[arg(long = "connect-timeout", default_value_t = 60.0, value_name = "S")]
    pub(crate) connect_timeout: f64,
    /// Seconds for the whole transfer
    #[arg(short = 'm', long = "max-time", alias = "transfer-timeout", default_value_t = 1800.0, value_name = "S")]
    pub(crate) max_time: f64,
    /// Retry a transfer that failed transiently (timeout; HTTP 408, 429, 500, 502, 503, 504)
    /// up to N times
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) retry: u32,
    /// Seconds between retries (default: 1, doubling up to 600)
    #[arg(long = "retry-delay", default_value_t = 0.0, value_name = "S")]
    pub(crate) retry_delay: f64,
    /// No retry starts after S seconds in all
    #[arg(long = "retry-max-time", default_value_t = 0.0, value_name = "S")]
    pub(crate) retry_max_time: f64,
    /// With --retry, retry on any error
    #[arg(long = "retry-all-errors")]
    pub(crate) retry_all_errors: bool,
    /// With --retry, retry a refused connection too
    #[arg(long = "retry-connrefused")]
    pub(crate) retry_connrefused: bool,
    /// Show the request and response heads on stderr
    #[arg(short = 'v', long = "verbose")]
    pub(crate) verbose: bool,
    /// Fail (exit 22, no body) on HTTP status 400 or more
    #[arg(short = 'f', long = "fail")]
    pub(crate) fail: bool,
    /// Like -f, but the body is still written
    #[arg(long = "fail-with-body", conflicts_with = "fail")]
    pub(crate) fail_with_body: bool,
    /// User-Agent to send
    #[arg(short = 'A', long = "user-agent", value_name = "NAME")]
    pub(crate) user_agent: Option<String>,
    /// Referer to send
    #[arg(short = 'e', long = "referer", value_name = "URL")]
    pub(crate) referer: Option<String>,
    /// Show errors with -s (accepted for curl compatibility: ws curl always shows its one
    /// error line)
    #[arg(short = 'S', long = "show-error")]
    pub(crate) show_error: bool,
    /// Folder for -o and -O files
    #[arg(long = "output-dir", value_name = "DIR")]
    pub(crate) output_dir: Option<PathBuf>,
    /// Create the folders -o and --output-dir name
    #[arg(long = "create-dirs")]
    pub(crate) create_dirs: bool,
    /// Print only the body
    #[arg(short = 's', long = "silent")]
    pub(crate) silent: bool,
    /// Basic authentication user:password
    #[arg(short = 'u', long = "user", value_name = "USER:PASSWORD")]
    pub(crate) user: Option<String>,
    /// Do not verify the server's certificate
    #[arg(short = 'k', long = "insecure")]
    pub(crate) insecure: bool,
    /// PEM CA bundle to verify the server with (same as --ca-file)
    #[arg(long = "cacert", value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
    /// Use HTTP/1.1 only (by default https:// offers HTTP/2 too, by ALPN, as curl does)
    #[arg(long = "http1.1", conflicts_with_all = ["http2", "http2_prior_knowledge"])]
    pub(crate) http1_1: bool,
    /// Offer HTTP/2 by ALPN over https:// (the default; accepted for curl compatibility)
    #[arg(long = "http2")]
    pub(crate) http2: bool,
    /// Speak HTTP/2 from the first byte, without asking (h2c over http://, h2 over https://)
    #[arg(long = "http2-prior-knowledge")]
    pub(crate) http2_prior_knowledge: bool,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
}

impl Args {
    /// Reads the netrc file `--netrc`, `--netrc-optional` or `--netrc-file` names.
    pub(crate) fn load_netrc(&mut self) -> Result<(), Error> {
        let path = match (&self.netrc_file, self.netrc || self.netrc_optional) {
            (Some(f), _) => f.clone(),
            (None, true) => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".netrc"),
                None => return Ok(()),
            },
            (None, false) => return Ok(()),
        };
        if self.netrc_file.is_none() && !path.exists() {
            return Ok(());
        }
        let parsed = netrc::Netrc::from_file(&path)
            .map_err(|e| fail(code::READ, format!("cannot read {}: {e}", path.display())))?;
        self.netrc_entries = Some(parsed);
        Ok(())
    }

    /// `user:password` for `host` from the netrc file (its `default` entry otherwise).
    pub(crate) fn netrc_user(&self, host: &str) -> Option<String> {
        let n = self.netrc_entries.as_ref()?;
        let a = n.hosts.get(host).or_else(|| n.hosts.get("default"))?;
        Some(format!("{}:{}", a.login, a.password))
    }

    /// Whether the output is curl's (any of curl's output flags) rather than the reference's
    /// layout (headers, sizes, `Status`, `payload:`).
    pub(crate) fn curl_output(&self) -> bool {
        self.silent || self.include || self.head || self.dump_header.is_some() || self.write_out.is_some()
    }
}

pub(crate) fn fail(code: i32, msg: impl std::fmt::Display) -> Error {
    Error::with_code(code, msg.to_string())
}

pub(crate) fn parse_url(raw: &str) -> Result<Url, Error> {
    let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
    let url = Url::parse(&with_scheme).map_err(|e| fail(code::URL, format!("malformed URL '{raw}': {e}")))?;
    crate::redirects::check_scheme(&url)?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail(code::URL, format!("no host in URL '{raw}'")));
    }
    Ok(url)
}
