//! Opening a plugin library and reading its declaration: the host's only `unsafe`.
//!
//! A library is opened, its one symbol read, and its `abi_version` (the first field, frozen
//! forever) checked *before* any other field is trusted. Libraries are never closed: a Rust
//! cdylib may leave thread-local destructors behind that crash after `dlclose`
//! (rust-lang/rust#91979), so each opened library lives until the process exits.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};

use ws_plugin_api::{ABI_VERSION, DECLARATION_SYMBOL, PluginDeclaration, RunFn};

/// Why a plugin file cannot be used. Each is reported as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load plugin {path}: {reason}")]
    NotALibrary { path: PathBuf, reason: String },
    #[error("{path} is not a ws plugin: it has no `ws_plugin_declaration` symbol")]
    NoSymbol { path: PathBuf },
    #[error(
        "plugin {path} was built for plugin ABI {found}, but this ws expects ABI {expected}; rebuild it against ws-plugin-api {host_api}"
    )]
    AbiMismatch { path: PathBuf, found: u32, expected: u32, host_api: String },
    #[error("plugin {path} has a malformed declaration ({field} is not a valid string)")]
    BadDeclaration { path: PathBuf, field: &'static str },
}

/// A plugin's declaration, read and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub name: String,
    pub summary: String,
    pub api_version: String,
    pub rustc_version: String,
    run: RunFn,
}

fn read_str(ptr: *const c_char, path: &Path, field: &'static str) -> Result<String, LoadError> {
    if ptr.is_null() {
        return Err(LoadError::BadDeclaration { path: path.to_path_buf(), field });
    }
    // SAFETY: the ABI promises a static NUL-terminated string; null was checked above.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map(str::to_owned).map_err(|_| LoadError::BadDeclaration { path: path.to_path_buf(), field })
}

/// Opens `path`, checks its ABI, and reads its declaration. The library stays loaded.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    // SAFETY: opening a library runs its initialisers. Plugins are Rust cdylibs, which have
    // none of their own; a file from a plugin folder is trusted like a program on PATH.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| LoadError::NotALibrary { path: path.to_path_buf(), reason: e.to_string() })?;
    // SAFETY: we only take the symbol's address here; nothing is read through it yet.
    let decl: *const PluginDeclaration = match unsafe { lib.get::<*const PluginDeclaration>(DECLARATION_SYMBOL) } {
        Ok(sym) => *sym,
        Err(_) => return Err(LoadError::NoSymbol { path: path.to_path_buf() }),
    };
    // The library is never unloaded, so everything it points at lives for the process.
    std::mem::forget(lib);
    if decl.is_null() {
        return Err(LoadError::NoSymbol { path: path.to_path_buf() });
    }
    // SAFETY: every ABI version starts with a u32 `abi_version`; read only that first.
    let found = unsafe { std::ptr::read(decl.cast::<u32>()) };
    if found != ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            path: path.to_path_buf(),
            found,
            expected: ABI_VERSION,
            host_api: ws_plugin_api::API_VERSION.to_string_lossy().into_owned(),
        });
    }
    // SAFETY: the ABI version matches, so the layout is ours; the static is never freed.
    let decl: &'static PluginDeclaration = unsafe { &*decl };
    Ok(Loaded {
        path: path.to_path_buf(),
        name: read_str(decl.name, path, "name")?,
        summary: read_str(decl.summary, path, "summary")?,
        api_version: read_str(decl.api_version, path, "api_version")?,
        rustc_version: read_str(decl.rustc_version, path, "rustc_version")?,
        run: decl.run,
    })
}

impl Loaded {
    /// Runs the plugin with `args` (`args[0]` is the display name) and returns its exit code.
    pub fn run(&self, args: &[CString]) -> i32 {
        let ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        // SAFETY: `ptrs` holds `args.len()` valid C strings that outlive the call, as the
        // ABI requires; the plugin's shim catches its own panics.
        unsafe { (self.run)(ptrs.len(), ptrs.as_ptr()) }
    }
}
