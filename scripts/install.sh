#!/usr/bin/env bash
# Installs ws: the host, every plugin, shell completions and man pages, under a prefix.
#
#   scripts/install.sh [--prefix DIR] [--from DIR] [--uninstall]
#
#   --prefix DIR   where to install (default ~/.local; /usr/local as root)
#   --from DIR     install an existing build (a folder holding ws and its libws_*.so) instead
#                  of building one with `cargo build --release`
#   --uninstall    remove exactly the files the install into DIR put there (it keeps a list
#                  in DIR/lib/ws/install-manifest), then the folders it made that are empty
#
# Layout: DIR/bin/ws, DIR/lib/ws/plugins/libws_*.so (where ws looks, beside ../lib/ws/plugins
# of its own folder), DIR/share/bash-completion/completions/ws, DIR/share/zsh/site-functions/_ws,
# DIR/share/fish/vendor_completions.d/ws.fish, DIR/share/man/man1/ws.1 and ws-NAME.1.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="$HOME/.local"
FROM=
UNINSTALL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a folder}; shift 2 ;;
        --prefix=*) PREFIX=${1#--prefix=}; shift ;;
        --from) FROM=${2:?--from needs a folder}; shift 2 ;;
        --from=*) FROM=${1#--from=}; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
MANIFEST="$PREFIX/lib/ws/install-manifest"
# Folders the install may create, deepest first (removed on uninstall when empty).
DIRS=(lib/ws/plugins lib/ws share/bash-completion/completions share/bash-completion
      share/zsh/site-functions share/zsh share/fish/vendor_completions.d share/fish
      share/man/man1 share/man bin lib share)

if [ "$UNINSTALL" = 1 ]; then
    [ -f "$MANIFEST" ] || { echo "install.sh: nothing installed in $PREFIX (no $MANIFEST)" >&2; exit 1; }
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        rm -f "$PREFIX/$f"
        echo "removed $PREFIX/$f"
    done <"$MANIFEST"
    rm -f "$MANIFEST"
    for d in "${DIRS[@]}"; do rmdir "$PREFIX/$d" 2>/dev/null || true; done
    exit 0
fi

if [ -z "$FROM" ]; then
    cargo build --release --quiet
    FROM=target/release
fi
[ -x "$FROM/ws" ] || { echo "install.sh: no ws binary in $FROM" >&2; exit 1; }
shopt -s nullglob
plugins=("$FROM"/libws_*.so)
[ "${#plugins[@]}" -gt 0 ] || { echo "install.sh: no plugins (libws_*.so) in $FROM" >&2; exit 1; }

installed=()
put() { # put MODE SOURCE RELATIVE-TARGET
    mkdir -p "$(dirname "$PREFIX/$3")"
    install -m "$1" "$2" "$PREFIX/$3"
    installed+=("$3")
    echo "installed $PREFIX/$3"
}
write() { # write RELATIVE-TARGET (content on stdin)
    mkdir -p "$(dirname "$PREFIX/$1")"
    cat >"$PREFIX/$1"
    chmod 644 "$PREFIX/$1"
    installed+=("$1")
    echo "installed $PREFIX/$1"
}
# A list first, so that an install that fails halfway can still be uninstalled.
mkdir -p "$PREFIX/lib/ws"
: >"$MANIFEST"
trap 'printf "%s\n" "${installed[@]}" >"$MANIFEST"' EXIT

put 755 "$FROM/ws" bin/ws
for so in "${plugins[@]}"; do
    put 644 "$so" "lib/ws/plugins/$(basename "$so")"
done
# The installed ws, with its installed plugins only, writes the rest.
WS=(env -u WS_PLUGIN_PATH "$PREFIX/bin/ws")
# (`write` runs in this shell, not a pipeline's subshell, so that the list keeps each file.)
write share/bash-completion/completions/ws < <("${WS[@]}" completions bash)
write share/zsh/site-functions/_ws < <("${WS[@]}" completions zsh)
write share/fish/vendor_completions.d/ws.fish < <("${WS[@]}" completions fish)
write share/man/man1/ws.1 < <("${WS[@]}" man)
for so in "${plugins[@]}"; do
    name=$(basename "$so" .so)
    name=${name#libws_}
    write "share/man/man1/ws-$name.1" < <("${WS[@]}" man "$name")
done
echo
echo "ws is in $PREFIX/bin$(case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo " (not on your PATH: add it)" ;; esac)."
echo "Completions load from $PREFIX/share (bash-completion, zsh \$fpath, fish); man pages: man ws."
echo "Remove it all with: scripts/install.sh --prefix $PREFIX --uninstall"
