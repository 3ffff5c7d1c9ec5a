# `scripts/bench synthetic`, browser part: a browser journey (goto, click,
# wait for the element the click makes appear) on a local page, run
# BENCH_BROWSER_RUNS (default 10) times by geoctl's driver
# (examples/browser_journey.rs) and by Playwright (npm playwright-core, driving
# the same Debian Chromium through executablePath), alternating, in the same
# run: wall time per run and peak RSS of the whole process tree, Chromium
# included. Figures on stdout, JSON in target/bench/synthetic_browser.json.
#
# Sourced after scripts/lib/services.sh. BENCH_PROFILE (default release) is
# the cargo profile the driver is built with; say which when quoting figures.

# Playwright (npm playwright-core) under target/ (kept between runs), and the
# Chromium and Node it needs; the directory holding node_modules on stdout.
bench_playwright_dir() {
  local node_dir=${CARGO_TARGET_DIR:-$PWD/target}/bench-browser/node
  command -v chromium >/dev/null || apt_install chromium >/dev/null
  command -v node >/dev/null || apt_install nodejs npm >/dev/null
  if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
    log "installing playwright-core into $node_dir"
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" playwright-core --no-audit --no-fund --loglevel=error >&2
  fi
  echo "$node_dir"
}

bench_synthetic_browser() {
  require_cargo
  local runs=${BENCH_BROWSER_RUNS:-10} profile=${BENCH_PROFILE:-release}
  local target=${CARGO_TARGET_DIR:-$PWD/target} here=scripts/lib/bench_browser
  local node_dir chromium_bin
  node_dir=$(bench_playwright_dir)
  chromium_bin=$(command -v chromium)

  log "building examples/browser_journey ($profile)"
  cargo build --locked --profile "$profile" --example browser_journey >&2
  local dir=$profile
  [ "$profile" = dev ] && dir=debug
  local driver=$target/$dir/examples/browser_journey

  local work port server_pid
  work=$(mktemp -d /tmp/geoctl-bench-browser.XXXXXX)
  chmod 755 "$work"
  cp "$here/journey.html" "$work/journey.html"
  port=$(free_port)
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
  server_pid=$!
  _bench_browser_cleanup() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; rm -rf "$work"; }
  local url=http://127.0.0.1:$port/journey.html
  for _ in $(seq 50); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done

  local actions
  actions=$(printf '[{"goto":"%s"},{"click":"#load"},{"wait_for":"#result"}]' "$url")
  log "$runs runs each, alternating: geoctl's driver ($profile) and Playwright $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$node_dir/node_modules/playwright-core/package.json")"
  # One unmeasured run each: Chromium's files in the page cache for both.
  "$driver" "$actions" >/dev/null
  PLAYWRIGHT_CORE=$node_dir/node_modules/playwright-core CHROMIUM=$chromium_bin node "$here/playwright_journey.js" "$url"
  : >"$work/runs.jsonl"
  local i
  for i in $(seq "$runs"); do
    printf '{"tool":"geoctl","run":%d,"m":%s}\n' "$i" "$(python3 "$here/measure.py" "$driver" "$actions")" >>"$work/runs.jsonl"
    printf '{"tool":"playwright","run":%d,"m":%s}\n' "$i" "$(PLAYWRIGHT_CORE=$node_dir/node_modules/playwright-core \
      CHROMIUM=$chromium_bin python3 "$here/measure.py" node "$here/playwright_journey.js" "$url")" >>"$work/runs.jsonl"
  done

  mkdir -p "$target/bench"
  python3 - "$work/runs.jsonl" "$target/bench/synthetic_browser.json" "$profile" "$runs" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {"profile": sys.argv[3], "runs": int(sys.argv[4]), "tools": {}}
print(f"browser journey (goto, click, wait_for), {sys.argv[4]} runs each; geoctl driver built {sys.argv[3]}")
print(f"{'tool':<12}{'wall p50 ms':>13}{'wall max ms':>13}{'peak RSS p50 MiB':>18}{'peak RSS max MiB':>18}{'failed':>8}")
for tool in ("geoctl", "playwright"):
    ms = [r["m"] for r in rows if r["tool"] == tool]
    wall = [m["wall_ms"] for m in ms]
    rss = [m["peak_rss_mib"] for m in ms]
    failed = sum(1 for m in ms if m["exit"] != 0)
    out["tools"][tool] = {"wall_ms": wall, "peak_rss_mib": rss, "failed_runs": failed,
                          "wall_ms_p50": statistics.median(wall), "peak_rss_mib_p50": statistics.median(rss)}
    print(f"{tool:<12}{statistics.median(wall):>13.0f}{max(wall):>13.0f}{statistics.median(rss):>18.0f}{max(rss):>18.0f}{failed:>8}")
g, p = out["tools"]["geoctl"], out["tools"]["playwright"]
print(f"geoctl/playwright: wall {g['wall_ms_p50'] / p['wall_ms_p50']:.2f}x, peak RSS {g['peak_rss_mib_p50'] / p['peak_rss_mib_p50']:.2f}x")
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
  _bench_browser_cleanup
}
