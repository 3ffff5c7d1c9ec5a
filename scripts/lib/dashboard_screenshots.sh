#!/usr/bin/env bash
# The screenshots under examples/dashboard/, from the quickstart's data: run `scripts/quickstart`
# first (and `scripts/quickstart stop` after); this reads its dashboard's URL, finds demo-web and
# shoots the overview, demo-web's page (both over the last hour) and the status page with
# headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=.geoctl-local
[ -s "$state/dashboard.url" ] || { echo "no quickstart dashboard: run scripts/quickstart first" >&2; exit 2; }
url=$(cat "$state/dashboard.url")
# shellcheck disable=SC1091
source "$state/env"
web=$(geoctl monitor list -o json | python3 -c 'import json, sys; print(next(m["id"] for m in json.load(sys.stdin) if m["name"] == "demo-web"))')
shot() {
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="1280,$3" \
    --screenshot="$PWD/examples/dashboard/$1" "$2" >/dev/null 2>&1
}
shot overview.png "${url}?range=1h" 720
shot monitor.png "${url}monitors/$web?range=1h" 1500
shot status.png "${url}status/demo" 600
ls -la examples/dashboard
