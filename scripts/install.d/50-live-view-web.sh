#!/usr/bin/env bash
# The live view's browser side (web/): Foxglove Studio's open-source core, React and
# playwright-core from npm, as web/package-lock.json pins them (the browser test drives Debian's
# chromium with them; web/serve.py serves the page). node_modules is not in git; a second run
# with the same lock file does nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WEB=$ROOT/web
stamp=$WEB/node_modules/.sage_lock.sha
sum=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$sum" ]]; then
  echo "web: up to date"
  exit 0
fi
# playwright-core needs Node.js 20 or newer (Debian 12's own nodejs is 18).
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if (( major < 20 )) || ! command -v npm >/dev/null; then
  echo "ERROR: web/ needs Node.js >= 20 with npm (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
npm ci --prefix "$WEB" --no-audit --no-fund --ignore-scripts --loglevel=error
echo "$sum" >"$stamp"
