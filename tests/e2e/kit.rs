//! Issue 20: installing `ws` like a real tool, completions and man pages made from the
//! plugins found at run time, and the plugin author's kit (a Rust template built outside the
//! workspace, a plugin written in C).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{Server, repo_root, run, target_dir, ws, ws_bin};

const T: Duration = Duration::from_secs(60);

/// Builds `examples/plugin-c/hello.c` into `dir` with extra `cc` flags.
fn build_c_plugin(dir: &Path, defines: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut cc = Command::new("cc");
    cc.args(["-shared", "-fPIC", "-Wall", "-Werror", "-o"])
        .arg(dir.join("libws_hello_c.so"))
        .args(defines)
        .arg(repo_root().join("examples/plugin-c/hello.c"));
    let out = run(cc, b"", T);
    assert_eq!(out.code(), 0, "cc failed: {out:?}");
}

/// `bash -c SCRIPT` with the completion script loaded; `env` added.
fn bash_completion(script: &str, env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new("bash");
    let path = format!("{}:/usr/bin:/bin", ws_bin().parent().unwrap().display());
    cmd.env_clear().env("PATH", path).env("HOME", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["-c", &format!("source <(ws completions bash)\n{script}")]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    out.stdout
}

#[test]
fn install_into_a_prefix_runs_from_anywhere_and_uninstalls_to_nothing() {
    let prefix = tempfile::tempdir().unwrap();
    let build = ws_bin().parent().unwrap().to_path_buf();
    let mut cmd = Command::new(repo_root().join("scripts/install.sh"));
    cmd.arg("--prefix").arg(prefix.path()).arg("--from").arg(&build);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    let p = prefix.path();
    for f in ["bin/ws", "share/bash-completion/completions/ws", "share/zsh/site-functions/_ws", "share/man/man1/ws.1"] {
        assert!(p.join(f).is_file(), "{f} missing; {}", out.stdout);
        assert!(out.stdout.contains(&p.join(f).display().to_string()), "the script says where {f} went");
    }
    // From another folder, with nothing in the environment pointing at the build.
    let elsewhere = tempfile::tempdir().unwrap();
    let installed_ws = || {
        let mut cmd = Command::new(p.join("bin/ws"));
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", elsewhere.path()).current_dir(elsewhere.path());
        cmd
    };
    let mut help = installed_ws();
    help.arg("--help");
    let out = run(help, b"", T);
    let built: Vec<String> = std::fs::read_dir(&build)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("libws_")?.strip_suffix(".so").map(str::to_string))
        .collect();
    assert!(built.len() >= 20, "{built:?}");
    for name in &built {
        assert!(out.stdout.contains(&format!("  {name} ")), "{name} not listed: {}", out.stdout);
        assert!(p.join(format!("share/man/man1/ws-{name}.1")).is_file(), "no man page for {name}");
    }
    // One subcommand end to end.
    let server = Server::start("echo_server", &["-q"]);
    let mut connect = installed_ws();
    connect.args(["connect", &server.url("ws"), "--max-messages", "1"]);
    let out = run(connect, b"installed\n", T);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "installed\n"), "{out:?}");
    // The man page renders.
    let mut man = Command::new("man");
    man.arg("-l").arg(p.join("share/man/man1/ws-echo_server.1")).env("MANPAGER", "cat").env("COLUMNS", "100");
    let out = run(man, b"", T);
    assert!(out.stdout.contains("--max-message-size"), "{out:?}");
    // Uninstalled: nothing left.
    let mut cmd = Command::new(repo_root().join("scripts/install.sh"));
    cmd.arg("--prefix").arg(p).arg("--uninstall");
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    let left: Vec<PathBuf> = std::fs::read_dir(p).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bash_completes_subcommands_found_at_run_time_and_their_flags() {
    let script = "complete -p ws\n\
                  COMP_WORDS=(ws ec); COMP_CWORD=1; _ws; echo \"names: ${COMPREPLY[*]}\"\n\
                  COMP_WORDS=(ws echo_server --max-m); COMP_CWORD=2; _ws; echo \"flags: ${COMPREPLY[*]}\"\n\
                  COMP_WORDS=(ws curl --ret); COMP_CWORD=2; _ws; echo \"curl: ${COMPREPLY[*]}\"\n\
                  COMP_WORDS=(ws hel); COMP_CWORD=1; _ws; echo \"third: ${COMPREPLY[*]}\"\n\
                  COMP_WORDS=(ws hello_c --f); COMP_CWORD=2; _ws; echo \"c flags: ${COMPREPLY[*]}\"";
    let third = tempfile::tempdir().unwrap();
    build_c_plugin(third.path(), &[]);
    let out = bash_completion(script, &[("WS_PLUGIN_PATH", third.path())]);
    assert!(out.contains("complete -o bashdefault -o default -F _ws ws"), "{out}");
    assert!(out.contains("names: echo_server\n"), "{out}");
    assert!(out.contains("flags: --max-message-size\n"), "{out}");
    assert!(
        out.contains("curl: --retry --retry-delay --retry-max-time --retry-all-errors --retry-connrefused"),
        "{out}"
    );
    assert!(out.contains("third: hello_c help\n"), "a plugin dropped in a folder is completed: {out}");
    assert!(out.contains("c flags: --fail\n"), "{out}");
}

#[test]
fn a_plugin_in_c_runs_and_the_host_checks_it_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let (same, older, other_abi) = (dir.path().join("same"), dir.path().join("older"), dir.path().join("abi"));
    build_c_plugin(&same, &[]);
    build_c_plugin(&older, &["-DWS_API=\"0.0.9\""]);
    build_c_plugin(&other_abi, &["-DWS_ABI=99"]);
    let ws_in = |dir: &Path, args: &[&str]| {
        let mut cmd = ws();
        cmd.arg("--plugin-dir").arg(dir).args(args);
        run(cmd, b"", T)
    };
    let out = ws_in(&same, &["hello_c", "world"]);
    assert_eq!((out.code(), out.stdout.as_str()), (0, "hello from C, world\n"), "{out:?}");
    let out = ws_in(&same, &["hello_c", "--fail"]);
    assert_eq!((out.code(), out.stderr.as_str()), (3, "ws hello_c: failing on purpose\n"), "{out:?}");
    let out = ws_in(&same, &["hello_c"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(ws_in(&same, &["--help"]).stdout.contains("hello_c                     Say hello, from C"));
    // An older plugin-api with the same ABI: fine, and said so in one line.
    let out = ws_in(&older, &["plugins", "-v"]);
    let line = out.stdout.lines().find(|l| l.starts_with("hello_c")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.contains("ws-plugin-api 0.0.9, older than this ws's") && line.contains("fine, same ABI 1"), "{line}");
    assert_eq!(ws_in(&older, &["hello_c", "x"]).code(), 0);
    // Another ABI: refused before anything else in it is read, in one line.
    let out = ws_in(&other_abi, &["plugins", "-v"]);
    let line = out.stdout.lines().find(|l| l.contains("libws_hello_c.so")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.starts_with("refused: ") && line.contains("plugin ABI 99, but this ws expects ABI 1"), "{line}");
    let out = ws_in(&other_abi, &["hello_c", "x"]);
    assert_eq!(out.code(), 2);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // Its man page comes from its --help.
    let out = ws_in(&same, &["man", "hello_c"]);
    assert!(out.stdout.contains("\\fB\\-\\-fail\\fR"), "{}", out.stdout);
}

/// The Rust template, copied outside the workspace as a third party would, builds with its
/// own Cargo.toml and passes its own test through the real `ws`.
#[test]
fn the_plugin_template_builds_alone_and_its_test_runs_it_through_ws() {
    let work = target_dir().join("fixtures/plugin-template-copy");
    let _ = std::fs::remove_dir_all(&work);
    let copy =
        Command::new("cp").arg("-r").arg(repo_root().join("examples/plugin-template")).arg(&work).status().unwrap();
    assert!(copy.success());
    let manifest = work.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let api = repo_root().join("plugin-api");
    std::fs::write(&manifest, text.replace("path = \"../../plugin-api\"", &format!("path = \"{}\"", api.display())))
        .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.env_clear();
    for key in ["PATH", "HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_HOME", "TMPDIR", "LANG"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("WS_BIN", ws_bin()).args(["test", "--quiet", "--offline", "--manifest-path"]).arg(&manifest);
    let out = run(cmd, b"", Duration::from_secs(300));
    assert_eq!(out.code(), 0, "the template's own test failed: {out:?}");
    assert!(out.stdout.contains("test result: ok. 1 passed"), "{}", out.stdout);
}

/// zsh and fish load their scripts and get the same candidates (zsh's `compadd` and `_files`
/// stand in as functions that print what they are given).
#[test]
fn zsh_and_fish_complete_the_same_way() {
    let path = format!("{}:/usr/bin:/bin", ws_bin().parent().unwrap().display());
    let shell = |program: &str, script: &str| {
        let mut cmd = Command::new(program);
        cmd.env_clear().env("PATH", &path).env("HOME", std::env::temp_dir()).args(["-c", script]);
        let out = run(cmd, b"", T);
        assert_eq!(out.code(), 0, "{program}: {out:?}");
        out.stdout
    };
    let zsh = shell(
        "zsh",
        "autoload -U compinit; compinit -u 2>/dev/null; source <(ws completions zsh)\n\
         compadd() { [[ $1 == -a ]] && print -l -- \"${(P@)2}\"; }; _files() { print FILES; }\n\
         words=(ws ec); CURRENT=2; _ws; words=(ws echo_server --max-m); CURRENT=3; _ws\n\
         words=(ws send /tmp/x); CURRENT=3; _ws",
    );
    assert_eq!(zsh, "echo_server\n--max-message-size\nFILES\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile.txt"), "").unwrap();
    let fish = shell(
        "fish",
        &format!(
            "ws completions fish | source; complete -C 'ws ec'; complete -C 'ws echo_server --max-m'; complete -C 'ws send {}/af'",
            dir.path().display()
        ),
    );
    assert_eq!(fish, format!("echo_server\n--max-message-size\n{}/afile.txt\n", dir.path().display()));
}
