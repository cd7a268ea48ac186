//! The host: discovery, help, errors, and plugins built outside the workspace.

use std::time::Duration;

use crate::util::{Output, build_fixture, run, ws};

const T: Duration = Duration::from_secs(30);

fn ws_run(args: &[&str], plugin_path: Option<&std::path::Path>) -> Output {
    let mut cmd = ws();
    cmd.args(args);
    if let Some(p) = plugin_path {
        cmd.env("WS_PLUGIN_PATH", p);
    }
    run(cmd, b"", T)
}

fn one_line(s: &str) -> &str {
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr, got {s:?}");
    lines[0]
}

#[test]
fn help_lists_every_built_plugin_with_its_summary() {
    crate::util::require_plugin("echo_server");
    let out = ws_run(&["--help"], None);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.starts_with("ws is a websocket tool\n"), "{}", out.stdout);
    let line = out.stdout.lines().find(|l| l.trim_start().starts_with("echo_server")).expect("echo_server listed");
    assert!(line.contains("Echo server"), "{line}");
    // Every plugin of the workspace, each with a summary after its name.
    let plugins = std::fs::read_dir(crate::util::repo_root().join("plugins")).unwrap();
    let mut names: Vec<String> =
        plugins.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.retain(|n| n != "common");
    assert!(names.len() >= 12, "{names:?}");
    for name in &names {
        crate::util::require_plugin(name);
        let listed = out.stdout.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()));
        let listed = listed.unwrap_or_else(|| panic!("{name} is not listed:\n{}", out.stdout));
        assert!(listed.split_whitespace().count() > 1, "{name} has no summary: {listed}");
    }
    // `ws` alone prints the same.
    assert_eq!(ws_run(&[], None).stdout, out.stdout);
}

#[test]
fn unknown_command_exits_2_with_a_suggestion_and_the_folders_searched() {
    let out = ws_run(&["echo_srever"], None);
    assert_eq!(out.code(), 2);
    let line = one_line(&out.stderr);
    assert!(line.contains("no such command 'echo_srever'"), "{line}");
    assert!(line.contains("did you mean 'echo_server'?"), "{line}");
    assert!(line.contains(&crate::util::build_dir().display().to_string()), "{line}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_command_name_cannot_escape_the_plugin_folders() {
    let out = ws_run(&["../../etc/passwd"], None);
    assert_eq!(out.code(), 2);
    assert!(one_line(&out.stderr).contains("no such command"), "{}", out.stderr);
}

#[test]
fn help_subcommand_is_the_plugins_own_help() {
    let a = ws_run(&["help", "echo_server"], None);
    let b = ws_run(&["echo_server", "--help"], None);
    assert_eq!(a.code(), 0);
    assert_eq!(a.stdout, b.stdout);
    assert!(a.stdout.contains("--port"), "{}", a.stdout);
}

#[test]
fn bad_plugin_arguments_give_one_line_and_exit_2() {
    let out = ws_run(&["echo_server", "--bogus"], None);
    assert_eq!(out.code(), 2);
    let line = one_line(&out.stderr);
    assert!(line.starts_with("ws echo_server: ") && line.contains("--bogus"), "{line}");
}

#[test]
fn version_names_the_abi() {
    let out = ws_run(&["--version"], None);
    assert_eq!(out.code(), 0);
    assert!(out.stdout.starts_with("ws ") && out.stdout.contains("plugin ABI 1"), "{}", out.stdout);
}

#[test]
fn out_of_tree_plugin_loads_through_ws_plugin_path() {
    let dir = build_fixture("hello", 0);
    let out = ws_run(&["hello", "world"], Some(&dir));
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "hello, world\n");
    let help = ws_run(&["--help"], Some(&dir));
    assert!(help.stdout.contains("hello") && help.stdout.contains("third-party test plugin"), "{}", help.stdout);
    // A usage error from the plugin: one line, exit 2.
    let out = ws_run(&["hello"], Some(&dir));
    assert_eq!(out.code(), 2);
    assert_eq!(one_line(&out.stderr), "ws hello: missing NAME (usage: ws hello NAME)");
}

#[test]
fn plugin_dir_flag_comes_first_and_shadows_later_folders() {
    let dir = build_fixture("hello", 0);
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join(dir.join(hello_file()).file_name().unwrap());
    std::fs::copy(dir.join(hello_file()), &copy).unwrap();
    let out = ws_run(&["--plugin-dir", other.path().to_str().unwrap(), "plugins"], Some(&dir));
    assert_eq!(out.code(), 0, "{out:?}");
    let hello: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("hello ")).collect();
    assert_eq!(hello.len(), 2, "{}", out.stdout);
    assert!(hello[0].contains(&copy.display().to_string()) && hello[0].contains("api "), "{}", hello[0]);
    assert!(hello[1].contains("shadowed") && hello[1].contains(&dir.display().to_string()), "{}", hello[1]);
}

fn hello_file() -> String {
    format!("{}ws_hello{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

#[test]
fn plugin_built_for_another_abi_is_refused_naming_both_versions() {
    let dir = build_fixture("hello", 1);
    let out = ws_run(&["hello", "world"], Some(&dir));
    assert_eq!(out.code(), 2, "{out:?}");
    let line = one_line(&out.stderr);
    assert!(line.contains(&dir.join(hello_file()).display().to_string()), "{line}");
    assert!(line.contains("ABI 2") && line.contains("expects ABI 1"), "{line}");
    assert!(out.stdout.is_empty());
}

#[test]
fn panicking_plugin_exits_101_with_one_line_and_flushed_stdout() {
    let dir = build_fixture("panicky", 0);
    let out = ws_run(&["panicky"], Some(&dir));
    assert_eq!(out.code(), 101, "{out:?}");
    assert_eq!(one_line(&out.stderr), "ws panicky: internal error: deliberate test panic");
    assert_eq!(out.stdout, "partial output before the panic");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(hello_file()), b"this is not an ELF file").unwrap();
    let out = ws_run(&["hello"], Some(dir.path()));
    assert_eq!(out.code(), 2);
    let line = one_line(&out.stderr);
    assert!(line.contains("cannot load plugin") && line.contains(&hello_file()), "{line}");
}

#[test]
fn a_library_without_the_declaration_is_refused() {
    // libws_hello.so that is a real shared library but not a plugin: any system .so will do.
    let candidates =
        ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libm.so.6"];
    let Some(lib) = candidates.iter().find(|p| std::path::Path::new(p).exists()) else {
        panic!("no system shared library found to stand in for a non-plugin library");
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(lib, dir.path().join(hello_file())).unwrap();
    let out = ws_run(&["hello"], Some(dir.path()));
    assert_eq!(out.code(), 2);
    let line = one_line(&out.stderr);
    assert!(line.contains("is not a ws plugin") && line.contains("ws_plugin_declaration"), "{line}");
}

/// `ws` copied alone into a bin folder, as an installer would put it.
fn installed_ws(prefix: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    let exe = prefix.join("bin/ws");
    std::fs::copy(crate::util::ws_bin(), &exe).unwrap();
    exe
}

fn run_exe(exe: &std::path::Path, args: &[&str], env: &[(&str, &std::path::Path)]) -> Output {
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin").env("HOME", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, b"", T)
}

/// Issue 22: the search folders the README promises, beyond WS_PLUGIN_PATH and the
/// executable's own folder.
#[test]
fn the_installed_layout_and_the_user_data_folder_are_searched() {
    let hello = build_fixture("hello", 0).join(hello_file());
    let prefix = tempfile::tempdir().unwrap();
    let exe = installed_ws(prefix.path());
    // Nothing to find yet: the error names the folders searched.
    let out = run_exe(&exe, &["hello", "x"], &[]);
    assert_eq!(out.code(), 2, "{out:?}");
    // <exe>/../lib/ws/plugins
    let lib = prefix.path().join("lib/ws/plugins");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(&hello, lib.join(hello_file())).unwrap();
    let out = run_exe(&exe, &["hello", "installed"], &[]);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello, installed\n"), "{out:?}");
    std::fs::remove_file(lib.join(hello_file())).unwrap();
    // $XDG_DATA_HOME/ws/plugins
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("ws/plugins")).unwrap();
    std::fs::copy(&hello, data.path().join("ws/plugins").join(hello_file())).unwrap();
    let out = run_exe(&exe, &["hello", "data"], &[("XDG_DATA_HOME", data.path())]);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello, data\n"), "{out:?}");
    // ~/.local/share/ws/plugins when XDG_DATA_HOME is not set
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".local/share/ws/plugins")).unwrap();
    std::fs::copy(&hello, home.path().join(".local/share/ws/plugins").join(hello_file())).unwrap();
    let out = run_exe(&exe, &["hello", "home"], &[("HOME", home.path())]);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello, home\n"), "{out:?}");
}

/// Issue 22: several folders in WS_PLUGIN_PATH, and a broken file beside good plugins (a
/// warning for it; every other command unaffected).
#[test]
fn several_plugin_path_folders_and_a_broken_file_beside_good_plugins() {
    let hello = build_fixture("hello", 0);
    let panicky = build_fixture("panicky", 0);
    let junk = tempfile::tempdir().unwrap();
    let junk_file = format!("{}ws_junk{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    std::fs::write(junk.path().join(&junk_file), b"not a library").unwrap();
    let path = std::env::join_paths([junk.path(), hello.as_path(), panicky.as_path()]).unwrap();
    let mut cmd = std::process::Command::new(crate::util::ws_bin());
    cmd.args(["--help"]).env_clear().env("PATH", "/usr/bin:/bin").env("WS_PLUGIN_PATH", &path);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    let listed = |name: &str| out.stdout.lines().any(|l| l.split_whitespace().next() == Some(name));
    assert!(listed("hello") && listed("panicky") && listed("echo_server"), "{}", out.stdout);
    assert!(out.stderr.contains("warning") && out.stderr.contains(&junk_file), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let mut cmd = std::process::Command::new(crate::util::ws_bin());
    cmd.args(["hello", "anyway"]).env_clear().env("PATH", "/usr/bin:/bin").env("WS_PLUGIN_PATH", &path);
    let out = run(cmd, b"", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello, anyway\n"), "{out:?}");
}

/// Issue 22: a reader that goes away (`ws --help | head -c1`) is success, for the host and
/// for a plugin, never a panic.
#[test]
fn a_closed_stdout_is_success() {
    for args in [&["--help"][..], &["echo_server", "--help"][..], &["plugins", "-v"][..]] {
        let mut child =
            ws().args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let status = crate::util::wait_timeout(&mut child, T).expect("exits");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(status.success(), "{args:?}: {status:?} {err}");
        assert!(!err.contains("panicked") && !err.contains("internal error"), "{args:?}: {err}");
    }
}

/// Issue 22: a plugin file renamed to another command is refused, naming what it declares.
#[test]
fn a_plugin_whose_declared_name_differs_from_its_file_is_refused() {
    let hello = build_fixture("hello", 0).join(hello_file());
    let dir = tempfile::tempdir().unwrap();
    let greet = format!("{}ws_greet{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    std::fs::copy(&hello, dir.path().join(&greet)).unwrap();
    let out = ws_run(&["greet", "world"], Some(dir.path()));
    assert_eq!(out.code(), 2, "{out:?}");
    let line = one_line(&out.stderr);
    assert!(line.contains(&greet) && line.contains("declares the command 'hello', not 'greet'"), "{line}");
    assert!(out.stdout.is_empty(), "the plugin ran: {}", out.stdout);
}
