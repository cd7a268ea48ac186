//! Where plugins are looked for, and which file can hold which subcommand.
//!
//! Search order (first match of a name wins, later ones are "shadowed"):
//! 1. every `--plugin-dir DIR` given on the command line, in order;
//! 2. each folder of `WS_PLUGIN_PATH` (PATH-like);
//! 3. the folder of the `ws` executable (so `target/release/ws` finds `target/release/libws_*.so`);
//! 4. `<exe folder>/../lib/ws/plugins` (an installed layout);
//! 5. the user's data folder: `$XDG_DATA_HOME/ws/plugins`, else `~/.local/share/ws/plugins`.
//!
//! A subcommand `NAME` lives in `{DLL_PREFIX}ws_NAME{DLL_SUFFIX}` (`libws_NAME.so` here), so
//! `ws NAME` can open exactly one file without reading any other.

use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The ordered list of folders to search.
pub fn search_dirs(cli_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = cli_dirs.to_vec();
    if let Some(path) = std::env::var_os("WS_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir.join("..").join("lib").join("ws").join("plugins"));
        dirs.insert(dirs.len() - 1, exe_dir);
    }
    if let Some(data) = data_dir() {
        dirs.push(data.join("ws").join("plugins"));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    dirs
}

fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if Path::new(&d).is_absolute() => Some(PathBuf::from(d)),
        _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".local").join("share")),
    }
}

/// Whether `name` can be a subcommand (and so a file name): `[a-z0-9_]+`, nothing that could
/// walk out of a plugin folder.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The file name that holds subcommand `name`.
pub fn file_name_for(name: &str) -> OsString {
    format!("{DLL_PREFIX}ws_{name}{DLL_SUFFIX}").into()
}

/// The subcommand a plugin file name stands for, if it is one.
pub fn name_of_file(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_prefix(DLL_PREFIX)?.strip_suffix(DLL_SUFFIX)?;
    let name = stem.strip_prefix("ws_")?;
    is_valid_name(name).then_some(name)
}

/// The first file, in search order, that can hold `name`.
pub fn find(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let file = file_name_for(name);
    dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file())
}

/// Every plugin file in every folder, in search order: `(name, path)`.
pub fn all(dirs: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut here: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file_name = e.file_name().into_string().ok()?;
                let name = name_of_file(&file_name)?.to_string();
                let path = e.path();
                path.is_file().then_some((name, path))
            })
            .collect();
        here.sort();
        found.extend(here);
    }
    found
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known name closest to `wanted`, if it is close enough to be a typo.
pub fn suggest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (distance(wanted, k), k))
        .filter(|(d, k)| *d <= 2.max(wanted.len() / 3) || k.starts_with(wanted) || wanted.starts_with(*k))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let f = file_name_for("echo_server");
        assert_eq!(name_of_file(f.to_str().unwrap()), Some("echo_server"));
        assert_eq!(name_of_file("libfoo.so"), None);
        assert_eq!(name_of_file("libws_../x.so"), None);
    }

    #[test]
    fn names_cannot_walk_out_of_a_folder() {
        assert!(is_valid_name("proxy_server"));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Echo"));
    }

    #[test]
    fn suggests_close_names_only() {
        let known = ["echo_server", "connect", "curl"];
        assert_eq!(suggest("echo_srever", known), Some("echo_server"));
        assert_eq!(suggest("conect", known), Some("connect"));
        assert_eq!(suggest("echo", known), Some("echo_server"));
        assert_eq!(suggest("zzzzzzzz", known), None);
    }
}
