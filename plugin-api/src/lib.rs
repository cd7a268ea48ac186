//! The stable boundary between the `ws` host binary and its subcommand plugins.
//!
//! Every `ws` subcommand is a dynamic library (`cdylib`) that exports exactly one symbol,
//! [`DECLARATION_SYMBOL`], a `#[repr(C)]` [`PluginDeclaration`]. Only C types cross the
//! boundary, so the host and a plugin may be built by different compilers at different
//! times; [`ABI_VERSION`], the declaration's *first* field, is what the host checks before it
//! reads anything else.
//!
//! Authors never touch the C side: they implement the safe [`Plugin`] trait and call
//! [`declare_plugin!`], which generates the exported static and the `extern "C"` shim. The
//! shim turns `argv` into `OsString`s, calls [`Plugin::run`], prints a returned [`Error`] as
//! one line on stderr, catches panics (`ws <name>: internal error: …`, exit code 101), and
//! flushes stdout before it returns the exit code.
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "ws-hello"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! name = "ws_hello"          # the file becomes libws_hello.so: `ws hello` finds it
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! ws-plugin-api = { path = "../ws/plugin-api" }
//!
//! [profile.release]
//! panic = "unwind"           # the shim can only catch panics that unwind
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use std::ffi::{CStr, OsString};
//! use ws_plugin_api::{declare_plugin, Error, Plugin};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     const NAME: &'static CStr = c"hello";
//!     const SUMMARY: &'static CStr = c"Say hello";
//!
//!     fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
//!         // args[0] is "ws hello"; the rest are the user's arguments.
//!         match args.get(1).and_then(|a| a.to_str()) {
//!             Some(who) => {
//!                 println!("hello, {who}");
//!                 Ok(())
//!             }
//!             None => Err(Error::usage("missing NAME (usage: ws hello NAME)")),
//!         }
//!     }
//! }
//!
//! declare_plugin!(Hello);
//! ```
//!
//! Build it with `cargo build --release` and put `target/release/libws_hello.so` in a folder
//! on `WS_PLUGIN_PATH` (or in `~/.local/share/ws/plugins`): `ws hello world` prints
//! `hello, world`.
//!
//! # Flags: completions and man pages
//!
//! A plugin describes its flags the way it does for people, in its `--help` (clap's layout:
//! a line per option starting with `-`, its description indented below). `ws completions`
//! and `ws man` run `ws NAME --help` and read it, so the declaration carries nothing more
//! and plugins built before those commands existed get completions and pages too (the
//! [`ABI_VERSION`] did not change). Templates to start from: `examples/plugin-template`
//! (Rust, outside the workspace) and `examples/plugin-c` (the same declaration in C).
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (a broken pipe on stdout counts as success) |
//! | 1 | runtime failure ([`Error::failure`]) |
//! | 2 | usage error ([`Error::usage`]); the host also uses 2 for unknown commands and load failures |
//! | 101 | the plugin panicked; the shim caught it |
//! | other | whatever [`Error::with_code`] says, e.g. curl's own codes for `ws curl` |

#![warn(missing_docs)]

use std::ffi::{CStr, OsString, c_char};
use std::fmt;

/// The version of the binary interface: the layout of [`PluginDeclaration`] and the meaning
/// of its `run` call. The host refuses a plugin whose declaration carries another number.
///
/// Bump it on any change of layout or call semantics; never reorder the first field.
pub const ABI_VERSION: u32 = 1;

/// The version of this crate, recorded in each plugin for `ws plugins`.
pub const API_VERSION: &CStr = {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    match CStr::from_bytes_with_nul(V.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("crate version contains a NUL byte"),
    }
};

/// The exported symbol's name, as the host looks it up (with the trailing NUL `dlsym` needs).
pub const DECLARATION_SYMBOL: &[u8] = b"ws_plugin_declaration\0";

/// Exit code of a successful run.
pub const EXIT_OK: i32 = 0;
/// Exit code of a runtime failure (connection refused, transfer failed, …).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a usage error, an unknown command or a plugin that cannot be loaded.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when a plugin panicked and the shim caught it.
pub const EXIT_PANIC: i32 = 101;

/// The signature of a plugin's entry point: the whole subcommand in one call.
///
/// `argv` holds `argc` NUL-terminated strings, borrowed for the duration of the call;
/// `argv[0]` is the display name (`"ws echo_server"`). Returns the process exit code.
pub type RunFn = unsafe extern "C" fn(argc: usize, argv: *const *const c_char) -> i32;

/// What a plugin exports, under the symbol [`DECLARATION_SYMBOL`].
///
/// The layout is frozen for a given [`ABI_VERSION`]; `abi_version` stays the first field
/// forever so any host can read it before trusting the rest. All strings are static,
/// NUL-terminated and owned by the plugin; nothing allocated on one side is freed on the other.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDeclaration {
    /// [`ABI_VERSION`] of the `ws-plugin-api` the plugin was built with.
    pub abi_version: u32,
    /// [`API_VERSION`] of the `ws-plugin-api` the plugin was built with.
    pub api_version: *const c_char,
    /// The compiler that built the plugin, informational only.
    pub rustc_version: *const c_char,
    /// The subcommand, e.g. `echo_server`.
    pub name: *const c_char,
    /// One line for `ws --help`.
    pub summary: *const c_char,
    /// The entry point.
    pub run: RunFn,
}

// SAFETY: every pointer in a declaration points at immutable static data.
#[allow(unsafe_code)]
unsafe impl Sync for PluginDeclaration {}

/// The safe trait a subcommand implements. [`declare_plugin!`] does the rest.
pub trait Plugin: Default {
    /// The subcommand name (`ws NAME`); also the library's file stem after `ws_`.
    const NAME: &'static CStr;
    /// One line for `ws --help`.
    const SUMMARY: &'static CStr;

    /// Runs the subcommand. `args[0]` is `"ws NAME"`, the rest are the user's arguments.
    ///
    /// Build any runtime, logger or other global state inside this call and drop it before
    /// returning: the host never unloads the library, but a plugin must not assume it is
    /// the only one in the process.
    fn run(&self, args: Vec<OsString>) -> Result<(), Error>;
}

/// A failed run: an exit code and, usually, one line for stderr.
///
/// The shim prints `ws NAME: MESSAGE` on stderr and exits with [`Error::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: i32,
    message: Option<String>,
}

impl Error {
    /// A usage error (bad flag, bad argument): exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_USAGE, message)
    }

    /// A runtime failure (connection refused, bad reply, …): exit code 1.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_FAILURE, message)
    }

    /// A failure with a specific exit code, e.g. one of curl's.
    pub fn with_code(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: Some(message.into()) }
    }

    /// Exit with `code` and print nothing: the plugin already said what it had to say
    /// (for example clap printed `--help`, which is `exit(0)`).
    pub fn exit(code: i32) -> Self {
        Self { code, message: None }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        self.code
    }

    /// The line for stderr, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit code {}", self.code),
        }
    }
}

impl std::error::Error for Error {}

/// Implementation details of [`declare_plugin!`]; not part of the stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use std::any::Any;
    use std::io::Write;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// The compiler version string baked into the declaration.
    pub const RUSTC_VERSION: &CStr = {
        const V: &str = concat!(env!("WS_RUSTC_VERSION"), "\0");
        match CStr::from_bytes_with_nul(V.as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("rustc version contains a NUL byte"),
        }
    };

    /// Converts the C argv into `OsString`s.
    ///
    /// # Safety
    /// `argv` must point at `argc` valid NUL-terminated strings (or be null with `argc == 0`).
    #[allow(unsafe_code)]
    pub unsafe fn args_from_argv(argc: usize, argv: *const *const c_char) -> Vec<OsString> {
        if argv.is_null() {
            return Vec::new();
        }
        // SAFETY: guaranteed by the caller.
        let ptrs = unsafe { std::slice::from_raw_parts(argv, argc) };
        ptrs.iter()
            .filter(|p| !p.is_null())
            .map(|&p| {
                // SAFETY: guaranteed by the caller.
                let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
                os_string_from_bytes(bytes)
            })
            .collect()
    }

    #[cfg(unix)]
    fn os_string_from_bytes(bytes: &[u8]) -> OsString {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(bytes).to_os_string()
    }

    #[cfg(not(unix))]
    fn os_string_from_bytes(bytes: &[u8]) -> OsString {
        OsString::from(String::from_utf8_lossy(bytes).into_owned())
    }

    fn panic_message(payload: &(dyn Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        }
    }

    /// `println!` panics when stdout is a closed pipe (`ws … | head`); that is success.
    fn is_broken_stdout(message: &str) -> bool {
        message.contains("failed printing to stdout") && message.contains("Broken pipe")
    }

    /// The body of the generated `extern "C"` shim: everything but the unsafe argv read.
    pub fn run_plugin<P: Plugin>(args: Vec<OsString>) -> i32 {
        let name = P::NAME.to_string_lossy();
        // A panic on this thread is reported once, by us, below; one on another thread of the
        // plugin still gets the default report, since nobody else would see it.
        let previous_hook: std::sync::Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
            std::sync::Arc::from(std::panic::take_hook());
        let caller = std::thread::current().id();
        let fallback = previous_hook.clone();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() != caller {
                fallback(info);
            }
        }));
        let outcome = catch_unwind(AssertUnwindSafe(|| P::default().run(args)));
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| previous_hook(info)));
        let code = match outcome {
            Ok(Ok(())) => EXIT_OK,
            Ok(Err(err)) => {
                if let Some(msg) = err.message() {
                    let _ = writeln!(std::io::stderr(), "ws {name}: {msg}");
                }
                err.exit_code()
            }
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                if is_broken_stdout(&msg) {
                    EXIT_OK
                } else {
                    let _ = writeln!(std::io::stderr(), "ws {name}: internal error: {msg}");
                    EXIT_PANIC
                }
            }
        };
        match std::io::stdout().flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe && code == EXIT_OK => {
                let _ = writeln!(std::io::stderr(), "ws {name}: cannot write to stdout: {e}");
                EXIT_FAILURE
            }
            _ => code,
        }
    }
}

/// Exports a [`Plugin`] implementation as a `ws` subcommand.
///
/// Generates the one exported static, [`DECLARATION_SYMBOL`], and the `extern "C"` entry
/// point that wraps [`Plugin::run`]. Use it once per library, at the crate root:
///
/// ```ignore
/// declare_plugin!(EchoServer);
/// ```
#[macro_export]
macro_rules! declare_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static ws_plugin_declaration: $crate::PluginDeclaration = $crate::PluginDeclaration {
            abi_version: $crate::ABI_VERSION,
            api_version: $crate::API_VERSION.as_ptr(),
            rustc_version: $crate::__private::RUSTC_VERSION.as_ptr(),
            name: <$plugin as $crate::Plugin>::NAME.as_ptr(),
            summary: <$plugin as $crate::Plugin>::SUMMARY.as_ptr(),
            run: __ws_plugin_run,
        };

        #[doc(hidden)]
        #[allow(unsafe_code)]
        unsafe extern "C" fn __ws_plugin_run(argc: usize, argv: *const *const ::std::ffi::c_char) -> i32 {
            // SAFETY: the host passes `argc` valid NUL-terminated strings, live for the call.
            let args = unsafe { $crate::__private::args_from_argv(argc, argv) };
            $crate::__private::run_plugin::<$plugin>(args)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Ok0;
    impl Plugin for Ok0 {
        const NAME: &'static CStr = c"ok0";
        const SUMMARY: &'static CStr = c"test";
        fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
            match args.get(1).and_then(|a| a.to_str()) {
                Some("fail") => Err(Error::failure("it failed")),
                Some("code") => Err(Error::with_code(47, "too many redirects")),
                Some("panic") => panic!("boom"),
                _ => Ok(()),
            }
        }
    }

    fn run(arg: &str) -> i32 {
        __private::run_plugin::<Ok0>(vec!["ws ok0".into(), arg.into()])
    }

    #[test]
    fn run_plugin_maps_results_to_exit_codes() {
        assert_eq!(run("ok"), EXIT_OK);
        assert_eq!(run("fail"), EXIT_FAILURE);
        assert_eq!(run("code"), 47);
        assert_eq!(run("panic"), EXIT_PANIC);
    }

    #[test]
    fn error_constructors_carry_codes_and_messages() {
        assert_eq!(Error::usage("x").exit_code(), EXIT_USAGE);
        assert_eq!(Error::failure("y").message(), Some("y"));
        assert_eq!(Error::exit(0).message(), None);
        assert_eq!(Error::with_code(22, "z").to_string(), "z");
    }

    #[test]
    fn api_version_is_the_crate_version() {
        assert_eq!(API_VERSION.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn declaration_starts_with_abi_version() {
        assert_eq!(std::mem::offset_of!(PluginDeclaration, abi_version), 0);
    }
}
