//! `ws autobahn [--url URL] [-q]`: the client side of the Autobahn test suite. Against a
//! fuzzing server (`wstest -m fuzzingserver`, or kosoku's `-m fuzzingserver`) it asks
//! `/getCaseCount`, runs every case on `/runCase?case=I&agent=AGENT` echoing each message
//! it receives (permessage-deflate offered, as a browser does), reads each case's verdict
//! from `/getCaseStatus`, and finally asks `/updateReports` to write the reports.
//!
//! One line per case (`case I/N: OK`), a summary, and exit 1 when any case's verdict is not
//! OK, NON-STRICT or INFORMATIONAL, or a case could not be run (the reference always exited
//! 0 or 1 without saying which case). `-q` prints only the cases that failed and the summary.
//! The verdicts are asked with `--verdicts`: wstest answers `/getCaseStatus`, kosoku does
//! not (it takes the question for a run of case 1.1.1 and spoils that verdict), so without
//! the flag the verdicts are the server's reports alone, and the run fails only for a case
//! that cannot run (no connection, no end within `--case-timeout`). A server that does not
//! answer the question gets one line saying so, and no more questions.

use std::ffi::{CStr, OsString};
use std::time::Duration;

use clap::Parser;
use futures_lite::FutureExt;
use futures_util::StreamExt;
use ws_common::ws::{self as wsx, ClientOptions, Message};
use ws_common::{error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Autobahn client
#[derive(Debug, Parser)]
#[command(name = "ws autobahn", about = "Run the Autobahn fuzzing server's cases, echoing every message")]
struct Args {
    /// The fuzzing server
    #[arg(long, default_value = "ws://127.0.0.1:8008")]
    url: String,
    /// Agent name the reports are filed under
    #[arg(long, default_value = "ws")]
    agent: String,
    /// Print only failed cases and the summary
    #[arg(short = 'q')]
    quiet: bool,
    /// Seconds a case may take before it counts as failed
    #[arg(long = "case-timeout", default_value_t = 120, value_name = "S")]
    case_timeout: u64,
    /// Ask the server each case's verdict (/getCaseStatus, which wstest answers) and fail
    /// the run when one is not OK, NON-STRICT or INFORMATIONAL
    #[arg(long)]
    verdicts: bool,
    /// Largest message accepted, in bytes (the suite's biggest is 16 MiB)
    #[arg(long = "max-message-size", default_value_t = 64 << 20, value_name = "BYTES")]
    max_message_size: usize,
}

/// Verdicts that pass (as the suite's own report colours them); `RAN` is a case run to its
/// end on a server that gives no verdicts.
fn passes(behavior: &str) -> bool {
    matches!(behavior, "OK" | "NON-STRICT" | "INFORMATIONAL" | "RAN")
}

struct Suite {
    base: String,
    agent: String,
    max_message: usize,
}

impl Suite {
    fn options(&self, path_and_query: &str) -> Result<ClientOptions, Error> {
        let url = ws_common::url::parse_ws_url(&format!("{}{path_and_query}", self.base))?;
        let tls = ws_common::tls::TlsArgs::default();
        Ok(ClientOptions { max_message: self.max_message, ..ClientOptions::new(url, tls, Duration::from_secs(10)) })
    }

    /// Opens `path_and_query` and returns the first text message (the suite's answers).
    async fn ask(&self, path_and_query: &str) -> Result<String, Error> {
        let opts = self.options(path_and_query)?;
        let failed = |e: &dyn std::fmt::Display| Error::failure(format!("{}: {e}", opts.url));
        let (mut ws, _) = wsx::connect(&opts).await.map_err(|e| failed(&e))?;
        let answer = async {
            while let Some(m) = ws.next().await {
                match m {
                    Ok(Message::Text(t)) => return Ok(t.to_string()),
                    Ok(Message::Close(_)) => break,
                    Ok(_) => {}
                    Err(e) => return Err(failed(&e)),
                }
            }
            Ok(String::new())
        }
        .or(async {
            ws_common::runtime::Timer::after(Duration::from_secs(10)).await;
            Err(failed(&"no answer within 10 s"))
        })
        .await;
        let _ = ws.close(None).await;
        answer
    }

    /// Runs case `i`: echoes until the server closes.
    async fn run_case(&self, i: usize) -> Result<(), Error> {
        let opts = self.options(&format!("/runCase?case={i}&agent={}", self.agent))?;
        let (mut ws, _) = wsx::connect(&opts).await.map_err(|e| Error::failure(e.to_string()))?;
        while let Some(m) = ws.next().await {
            match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    if ws.send(m).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // The server broke the protocol on purpose: close as RFC 6455 asks.
                    let _ = wsx::fail(&mut ws, &e).await;
                    break;
                }
            }
        }
        Ok(())
    }

    /// The verdict the server recorded for case `i` (`behavior` of `/getCaseStatus`).
    async fn status(&self, i: usize) -> Result<String, Error> {
        let text = self.ask(&format!("/getCaseStatus?case={i}&agent={}", self.agent)).await?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        match v["behavior"].as_str() {
            Some(b) => Ok(b.to_string()),
            None => Err(Error::failure(format!("getCaseStatus answered {} bytes, not a verdict", text.len()))),
        }
    }
}

#[derive(Debug, Default)]
struct Autobahn;

impl Plugin for Autobahn {
    const NAME: &'static CStr = c"autobahn";
    const SUMMARY: &'static CStr = c"Autobahn fuzzing server client";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        ws_common::url::parse_ws_url(&args.url)?;
        let suite = Suite {
            base: args.url.trim_end_matches('/').to_string(),
            agent: args.agent,
            max_message: args.max_message_size,
        };
        let case_timeout = Duration::from_secs(args.case_timeout.max(1));
        ws_common::runtime::block_on(|_| async move {
            let count = suite.ask("/getCaseCount").await?;
            let n: usize = count
                .trim()
                .parse()
                .map_err(|_| Error::failure(format!("getCaseCount answered {count:?}, not a number")))?;
            let mut failed = Vec::new();
            let mut verdicts = args.verdicts;
            for i in 1..=n {
                let ran = suite
                    .run_case(i)
                    .or(async {
                        ws_common::runtime::Timer::after(case_timeout).await;
                        Err(Error::failure(format!("no end within {case_timeout:?}")))
                    })
                    .await;
                let verdict = match ran {
                    Ok(()) if !verdicts => "RAN".to_string(),
                    Ok(()) => match suite.status(i).await {
                        Ok(v) => v,
                        Err(e) => {
                            info!(
                                "the server gives no verdict per case ({}): its reports have them",
                                e.message().unwrap_or("")
                            );
                            verdicts = false;
                            "RAN".to_string()
                        }
                    },
                    Err(e) => format!("NOT RUN ({})", e.message().unwrap_or("")),
                };
                if passes(&verdict) {
                    if !args.quiet {
                        info!("case {i}/{n}: {verdict}");
                    }
                } else {
                    error!("case {i}/{n}: {verdict}");
                    failed.push(i);
                }
            }
            // kosoku writes its reports and exits once every case ran, so it may be gone.
            match suite.ask(&format!("/updateReports?agent={}", suite.agent)).await {
                Ok(_) => info!("reports updated for agent {}", suite.agent),
                Err(e) => info!("updateReports: {}", e.message().unwrap_or("")),
            }
            let verdict = if verdicts { "passed" } else { "ran to their end" };
            info!("{n} cases: {} {verdict}, {} failed", n - failed.len(), failed.len());
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Error::failure(format!("{} of {n} cases failed: {failed:?}", failed.len())))
            }
        })
    }
}

declare_plugin!(Autobahn);
