#!/usr/bin/env bash
# Build the docs, serve them on 127.0.0.1 and take headless Chromium screenshots of
# the home page, an API reference page and the performance page, to check the site
# renders (theme, nav, signatures, tables, charts).
#
#   bash scripts/screenshot_docs.sh     # -> /tmp/dsg_docs_{home,api,performance}.png
#   OUT_DIR=docs/img SMALL=1 bash scripts/screenshot_docs.sh   # the small copies checked in
#   OUT_DIR=/some/dir PORT=8765 WIDTH=1280 HEIGHT=1000 bash scripts/screenshot_docs.sh
#
# Needs mkdocs (pip install -e ".[docs]") and chromium (apt-get install -y chromium).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
MKDOCS="${MKDOCS:-$(command -v mkdocs || echo "python3 -m mkdocs")}"
PYTHON="${PYTHON:-python3}"
PORT="${PORT:-8765}"
WIDTH="${WIDTH:-1280}"
HEIGHT="${HEIGHT:-1000}"
OUT_DIR="${OUT_DIR:-/tmp}"
mkdir -p "$OUT_DIR"
SITE_DIR="$(mktemp -d)"
PROFILE_DIR="$(mktemp -d)"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$SITE_DIR" "$PROFILE_DIR"
}
trap cleanup EXIT

CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [[ -z "$CHROMIUM" ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
        CHROMIUM="$(command -v chromium)"
    else
        echo "chromium not found; install it with: apt-get install -y chromium" >&2
        exit 1
    fi
fi

NO_MKDOCS_2_WARNING=1 $MKDOCS build --strict -q -d "$SITE_DIR"

"$PYTHON" -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE_DIR" >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    if "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

shot() {
    local path="$1" out="$2"
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --no-first-run --hide-scrollbars \
        --user-data-dir="$PROFILE_DIR" --virtual-time-budget=3000 \
        --window-size="$WIDTH,$HEIGHT" --screenshot="$out" "http://127.0.0.1:$PORT/$path" >/dev/null 2>&1
    [[ -s "$out" ]] || { echo "no screenshot written for /$path" >&2; return 1; }
    echo "$out"
}

shot "" "$OUT_DIR/dsg_docs_home.png"
shot "api/operations/" "$OUT_DIR/dsg_docs_api.png"
shot "performance/" "$OUT_DIR/dsg_docs_performance.png"

if [[ -n "${SMALL:-}" ]]; then  # 256-colour PNGs: a fraction of the size, still sharp text
    "$PYTHON" - "$OUT_DIR" <<'PY'
import pathlib, sys
from PIL import Image
for path in pathlib.Path(sys.argv[1]).glob("dsg_docs_*.png"):
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)
PY
fi
