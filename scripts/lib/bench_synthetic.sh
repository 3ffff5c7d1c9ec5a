# `scripts/bench synthetic`: sourced by scripts/bench after scripts/lib/services.sh.
#
# API flows per second of the 3-step script in examples/synthetic.yaml (login,
# profile with the token, an order), run from one geoctl process
# (benches/synthetic.rs over geoctl::synthetic::flow), against a Python httpx
# script doing the same three requests and checks in the same run, both against
# the same local API (the bench binary's `serve`, on 127.0.0.1). CPU per step is
# the client process's user+system time over the steps it ran.
#
# geoctl's steps each open their own connection (as the probe engine does);
# httpx is measured the same way (keep-alive off) and with its default
# connection pool, so the cost of the extra connections shows.
#
# Build: debug unless BENCH_RELEASE=1 (the figures say which). BENCH_SECONDS
# (default 5) per client and BENCH_CONCURRENCY (default 16) flows at a time.
# Writes target/bench/synthetic.json.

BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-16}
HTTPX_VERSION=${HTTPX_VERSION:-0.28.1}

_synthetic_pids=()

synthetic_cleanup() {
  local pid
  for pid in "${_synthetic_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  _synthetic_pids=()
}

# The bench binary, built as asked; its path on stdout.
synthetic_build() {
  local profile=()
  [ "${BENCH_RELEASE:-0}" = 1 ] && profile=(--release)
  cargo build --locked --bench synthetic "${profile[@]}" --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "synthetic" and m.get("executable"):
        print(m["executable"])'
}

# httpx in a private venv under target/ (kept between runs); its python on stdout.
synthetic_httpx() {
  local venv
  venv=$(realpath -m "${CARGO_TARGET_DIR:-target}/bench/httpx-venv")
  if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import httpx' 2>/dev/null; }; then
    command -v python3 >/dev/null || apt_install python3 >/dev/null
    python3 -m venv "$venv" >/dev/null 2>&1 || { apt_install python3-venv >/dev/null; rm -rf "$venv"; python3 -m venv "$venv" >/dev/null; }
    log "installing PyPI httpx $HTTPX_VERSION into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "httpx==$HTTPX_VERSION" >&2 || return 1
  fi
  echo "$venv/bin/python"
}

# The same three steps as examples/synthetic.yaml, with the same checks, in asyncio.
SYNTHETIC_HTTPX_PY='
import asyncio, json, resource, sys, time
import httpx

base, seconds, concurrency, keepalive = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"

async def flow(client):
    r = await client.post(f"{base}/login", json={"user": "demo", "password": "bench-pw"})
    if r.status_code != 200 or r.json().get("user") != "demo":
        return False
    token = r.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    r = await client.get(f"{base}/api/me", headers=auth)
    if r.status_code != 200 or b"demo" not in r.content or "application/json" not in r.headers.get("content-type", ""):
        return False
    order = r.json()["orders"][0]
    r = await client.get(f"{base}/api/orders/{order}", headers=auth)
    return 200 <= r.status_code < 300 and b"error" not in r.content and r.json().get("status") == "shipped"

async def main():
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency if keepalive else 0)
    counts = {"ok": 0, "failed": 0}
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        async def worker():
            while time.monotonic() < deadline:
                counts["ok" if await flow(client) else "failed"] += 1
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, t0 = usage.ru_utime + usage.ru_stime, time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu0
    total = counts["ok"] + counts["failed"]
    print(json.dumps({
        "client": "httpx keep-alive" if keepalive else "httpx",
        "concurrency": concurrency, "flows": counts["ok"], "failures": counts["failed"], "seconds": elapsed,
        "flows_per_s": counts["ok"] / elapsed, "cpu_s": cpu,
        "cpu_ms_per_step": cpu * 1000 / (total * 3) if total else None,
    }))

asyncio.run(main())
'

bench_synthetic() {
  trap synthetic_cleanup EXIT
  local bin python port out build
  bin=$(synthetic_build)
  [ -n "$bin" ] || { log "could not build the synthetic bench binary"; return 1; }
  build=debug
  [ "${BENCH_RELEASE:-0}" = 1 ] && build=release
  mkdir -p target/bench
  out=target/bench/synthetic.json
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" serve "$port" &
  _synthetic_pids+=($!)
  for _ in $(seq 1 100); do
    [ -n "$(ss -Hltn "sport = :$port")" ] && break
    sleep 0.1
  done
  log "synthetic: ${BENCH_SECONDS}s per client, $BENCH_CONCURRENCY flows at a time, $build build, API on 127.0.0.1:$port"
  {
    APP_URL="http://127.0.0.1:$port" DEMO_PASSWORD=bench-pw CHROMIUM_PATH=/nonexistent \
      "$bin" run examples/synthetic.yaml "$BENCH_SECONDS" "$BENCH_CONCURRENCY"
    if python=$(synthetic_httpx); then
      "$python" -c "$SYNTHETIC_HTTPX_PY" "http://127.0.0.1:$port" "$BENCH_SECONDS" "$BENCH_CONCURRENCY" 0
      "$python" -c "$SYNTHETIC_HTTPX_PY" "http://127.0.0.1:$port" "$BENCH_SECONDS" "$BENCH_CONCURRENCY" 1
    else
      log "WARNING: httpx could not be installed; no peer figures"
    fi
  } | python3 -c '
import json, sys
build = sys.argv[1]
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print("API flows (3 steps) from one process, %s build:" % build)
print("  %-18s %9s %9s %12s" % ("client", "flows/s", "failures", "CPU ms/step"))
for r in rows:
    cpu = r["cpu_ms_per_step"]
    print("  %-18s %9.1f %9d %12s" % (r["client"], r["flows_per_s"], r["failures"], "-" if cpu is None else "%.3f" % cpu))
json.dump({"build": build, "results": rows}, open(sys.argv[2], "w"), indent=2)
' "$build" "$out"
  synthetic_cleanup
  if [ -f scripts/lib/bench_browser.sh ]; then
    # shellcheck source=/dev/null
    source scripts/lib/bench_browser.sh
  fi
  if declare -F bench_synthetic_browser >/dev/null; then
    bench_synthetic_browser
  fi
}
