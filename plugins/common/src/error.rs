//! The typed errors of this crate, and how they become a plugin's exit.

use std::path::PathBuf;

/// What can go wrong in shared code. Plugins add context at their edge and turn these into a
/// [`ws_plugin_api::Error`] (usage errors exit 2, the rest exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error("invalid URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid header '{0}': expected 'Name: value'")]
    BadHeader(String),
    #[error("cannot read {what} {path}: {source}")]
    ReadFile { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot write pidfile {path}: {source}")]
    Pidfile { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Redis(String),
}

impl CommonError {
    /// Whether this is the user's mistake in the command line (exit 2) rather than a
    /// failure of the run (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CommonError::BadUrl { .. }
                | CommonError::BadHeader(_)
                | CommonError::ReadFile { .. }
                | CommonError::BadPem { .. }
                | CommonError::Tls(_)
                | CommonError::Usage(_)
        )
    }
}

impl From<CommonError> for ws_plugin_api::Error {
    fn from(e: CommonError) -> Self {
        if e.is_usage() {
            ws_plugin_api::Error::usage(e.to_string())
        } else {
            ws_plugin_api::Error::failure(e.to_string())
        }
    }
}
