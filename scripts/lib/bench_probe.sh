# `scripts/bench probe`: sourced by scripts/bench after scripts/lib/services.sh.
#
# The probe runs inside a network namespace made for the run, where this
# benchmark's own DNS server answers on 127.0.0.1:53 (the namespace's
# resolv.conf points there, so curl, geoctl and blackbox_exporter all resolve
# through it) and its own HTTP servers listen on fixed ports. Nothing leaves
# the namespace's loopback; PostgreSQL (part 3) runs on the host's loopback.

BENCH_ZONE=bench.test
BENCH_DNS_DELAY_MS=100         # part 2 (a)
BENCH_FIRST_BYTE_DELAY_MS=150  # part 2 (c)
BENCH_NETEM_CONNECT_DELAY_MS=100  # part 2 (b), when the kernel has netem
BENCH_SECONDS=${BENCH_SECONDS:-5}  # per throughput level and client
BENCH_RUNS=${BENCH_RUNS:-15}       # per tool and accuracy target
BENCH_RESULTS=${BENCH_RESULTS:-20000}
BENCH_BATCH=${BENCH_BATCH:-500}
BENCH_COST_CHECKS=${BENCH_COST_CHECKS:-2000}        # --cost: per callgrind run
BENCH_COST_CPU_CHECKS=${BENCH_COST_CPU_CHECKS:-20000}  # --cost: per native run (CPU in 10 ms ticks)
BENCH_COST_LEVELS=${BENCH_COST_LEVELS:-1,64,512}

_bench_pids=()
_bench_ns=""
_bench_work=""
_bench_stop_blackbox_service=0

bench_cleanup() {
  local pid
  for pid in "${_bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${_bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  _bench_pids=()
  if [ -n "$_bench_ns" ]; then
    ip netns del "$_bench_ns" 2>/dev/null || true
    rm -rf "/etc/netns/$_bench_ns"
    rmdir /etc/netns 2>/dev/null || true
  fi
  stop_services
  if [ "$_bench_stop_blackbox_service" = 1 ] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus-blackbox-exporter >/dev/null 2>&1 || true
  fi
  [ -z "$_bench_work" ] || rm -rf "$_bench_work"
}

# In the namespace, in the background, its PID kept for cleanup (`ip netns
# exec` execs the command, so $! is the command itself). Output to a log.
ns_start() {
  local log=$1
  shift
  ip netns exec "$_bench_ns" "$@" >"$log" 2>&1 &
  _bench_pids+=($!)
  BENCH_LAST_PID=$!
}

# ns_wait_listening tcp|udp PORT: up to 10 s for a listener in the namespace.
ns_wait_listening() {
  local proto=$1 port=$2 flag=-Hltn
  [ "$proto" = udp ] && flag=-Hlun
  for _ in $(seq 1 100); do
    if [ -n "$(ip netns exec "$_bench_ns" ss "$flag" "sport = :$port")" ]; then
      return 0
    fi
    kill -0 "$BENCH_LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "nothing listens on $proto port $port in the namespace; see the logs in $_bench_work" >&2
  return 1
}

# Builds geoctl and the bench program; sets GEOCTL_BIN and BENCH_BIN.
bench_build() {
  log "building geoctl and benches/probe (release)"
  local artifacts=$_bench_work/build.json
  cargo build --release --locked --bin geoctl --bench probe --message-format=json-render-diagnostics >"$artifacts"
  GEOCTL_BIN=$(artifact "$artifacts" geoctl bin)
  BENCH_BIN=$(artifact "$artifacts" probe bench)
  [ -x "$GEOCTL_BIN" ] && [ -x "$BENCH_BIN" ] || { echo "build produced no executables" >&2; return 1; }
}

# artifact FILE NAME KIND: the executable cargo reported for that target.
artifact() {
  grep '"reason":"compiler-artifact"' "$1" | grep "\"name\":\"$2\"" | grep "\"kind\":\[\"$3\"\]" \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
}

bench_install() {
  command -v curl >/dev/null || apt_install curl ca-certificates
  { command -v ip >/dev/null && command -v tc >/dev/null && command -v ss >/dev/null; } || apt_install iproute2
  if ! command -v prometheus-blackbox-exporter >/dev/null; then
    apt_install prometheus-blackbox-exporter
    # Installing may start the packaged service; it is not ours to leave running.
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus-blackbox-exporter 2>/dev/null; then
      _bench_stop_blackbox_service=1
    fi
  fi
  pg_bindir >/dev/null
}

bench_namespace() {
  _bench_ns="geoctl-bench-$$"
  ip netns add "$_bench_ns"
  ip -n "$_bench_ns" link set lo up
  mkdir -p "/etc/netns/$_bench_ns"
  echo "nameserver 127.0.0.1" >"/etc/netns/$_bench_ns/resolv.conf"
  # It lives as long as the run (its own default is 15 minutes, less than a whole --cost run).
  ns_start "$_bench_work/dns.log" "$BENCH_BIN" serve-dns --listen 127.0.0.1:53 --zone "$BENCH_ZONE" \
    --delay "slow-dns.$BENCH_ZONE=$BENCH_DNS_DELAY_MS" --lifetime-secs 7200
  BENCH_DNS_PID=$BENCH_LAST_PID
  ns_wait_listening udp 53
}

bench_throughput() {
  local out=$1 version
  ns_start "$_bench_work/http-fast.log" "$BENCH_BIN" serve-http --listen 127.0.0.1:8081
  local server_pid=$BENCH_LAST_PID
  ns_wait_listening tcp 8081
  cat >"$_bench_work/blackbox.yml" <<'YAML'
modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
YAML
  # Port 9115 of the namespace's own loopback, which nothing else uses.
  ns_start "$_bench_work/blackbox.log" prometheus-blackbox-exporter \
    --config.file="$_bench_work/blackbox.yml" --web.listen-address=127.0.0.1:9115 --log.level=error
  local blackbox_pid=$BENCH_LAST_PID
  ns_wait_listening tcp 9115
  version=$(prometheus-blackbox-exporter --version 2>&1 | sed -n 's/.*version \([^ ]*\).*/\1/p' | head -n 1)
  log "part 1: throughput (about $((BENCH_SECONDS * 9 + 10)) s)"
  timeout --kill-after=10 600 ip netns exec "$_bench_ns" "$BENCH_BIN" throughput \
    --url "http://fast.$BENCH_ZONE:8081/" --dns 127.0.0.1:53 --blackbox 127.0.0.1:9115 \
    --blackbox-version "$version" --seconds "$BENCH_SECONDS" --levels 1,64,512 \
    --server-pid "$server_pid" --dns-pid "$BENCH_DNS_PID" --blackbox-pid "$blackbox_pid" --json "$out"
}

bench_accuracy() {
  local out=$1 connect_case
  ns_start "$_bench_work/http-first-byte.log" "$BENCH_BIN" serve-http --listen 127.0.0.1:8083 \
    --first-byte-delay-ms "$BENCH_FIRST_BYTE_DELAY_MS"
  ns_wait_listening tcp 8083
  # Slow connect: delay only the server's SYN-ACKs (IPv4 header of 20 bytes,
  # TCP flags SYN+ACK at byte 33) where the kernel has netem; otherwise a
  # listener whose full accept queue makes the kernel drop the first SYN.
  if ip netns exec "$_bench_ns" tc qdisc add dev lo root handle 1: prio 2>/dev/null \
    && ip netns exec "$_bench_ns" tc qdisc add dev lo parent 1:3 handle 30: netem delay "${BENCH_NETEM_CONNECT_DELAY_MS}ms" 2>/dev/null \
    && ip netns exec "$_bench_ns" tc filter add dev lo parent 1: protocol ip prio 1 u32 \
      match ip protocol 6 0xff match ip sport 8082 0xffff match u8 0x05 0x0f at 0 match u8 0x12 0xff at 33 \
      flowid 1:3 2>/dev/null; then
    ns_start "$_bench_work/http-connect.log" "$BENCH_BIN" serve-http --listen 127.0.0.1:8082
    connect_case="slow connect: tc netem delays the server's SYN-ACK by ${BENCH_NETEM_CONNECT_DELAY_MS} ms on the namespace's lo"
  else
    ip netns exec "$_bench_ns" tc qdisc del dev lo root 2>/dev/null || true
    ns_start "$_bench_work/http-connect.log" "$BENCH_BIN" serve-http --listen 127.0.0.1:8082 --slow-accept
    connect_case="slow connect: no netem in this kernel, so the listener's accept queue is kept full; the kernel drops the first SYN and the client's retransmission (1 s RTO) gets in"
  fi
  ns_wait_listening tcp 8082
  log "part 2: phase accuracy ($BENCH_RUNS runs per tool and target)"
  timeout --kill-after=10 600 ip netns exec "$_bench_ns" "$BENCH_BIN" accuracy --geoctl "$GEOCTL_BIN" --runs "$BENCH_RUNS" \
    --case "slow DNS: the nameserver answers after ${BENCH_DNS_DELAY_MS} ms|http://slow-dns.$BENCH_ZONE:8081/" \
    --case "$connect_case|http://connect.$BENCH_ZONE:8082/" \
    --case "delayed first byte: the server waits ${BENCH_FIRST_BYTE_DELAY_MS} ms before answering|http://first-byte.$BENCH_ZONE:8083/" \
    --json "$out"
}

bench_recording() {
  local out=$1
  start_postgres "$_bench_work/pg"
  log "migrating, creating 20 monitors in every seed region"
  "$GEOCTL_BIN" db migrate >/dev/null
  for i in $(seq 1 20); do
    "$GEOCTL_BIN" monitor create --name "bench-$i" --type http --target "https://bench-$i.example.com/" \
      --every 1m >/dev/null 2>>"$_bench_work/create.log"
  done
  log "part 3: recording $BENCH_RESULTS results each way"
  timeout --kill-after=10 600 "$BENCH_BIN" record --database-url "$DATABASE_URL" --results "$BENCH_RESULTS" \
    --batch "$BENCH_BATCH" --json "$out"
}

# cost_load EXE CONCURRENCY CHECKS [WRAPPER…] [-- LOAD ARGS…]: one closed loop of the probe
# bench's `load` in the namespace, its outcome (JSON) on stdout.
cost_load() {
  local exe=$1 concurrency=$2 checks=$3 wrapper=() extra=()
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do wrapper+=("$1"); shift; done
  [ $# -eq 0 ] || { shift; extra=("$@"); }
  # Under valgrind a check at 512 in flight waits seconds for its turn: a bound of 120 s per check.
  timeout --kill-after=10 1800 ip netns exec "$_bench_ns" "${wrapper[@]}" "$exe" load \
    --url "http://fast.$BENCH_ZONE:8081/" --concurrency "$concurrency" --seconds 3600 --max-checks "$checks" \
    --check-timeout-secs 120 "${extra[@]}"
}

# json_field JSON NAME: a number field of a flat JSON object ("null" when absent).
json_field() {
  local v
  v=$(sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1")
  echo "${v:-null}"
}

# The cost of one check (`--cost`): instructions of the prober's process from callgrind over
# BENCH_COST_CHECKS checks (a run of no checks subtracted), and CPU time of the prober, the HTTP
# server and the DNS server over BENCH_COST_CPU_CHECKS checks run natively, for the bare client and
# geoctl's probe engine (and BENCH_PROBE_BASELINE's, an earlier build of this bench program) at each
# level of BENCH_COST_LEVELS. Then the top of geoctl's profile at the middle level.
bench_probe_cost() {
  local out=$1 level client exe extra levels server_pid
  ns_start "$_bench_work/http-fast.log" "$BENCH_BIN" serve-http --listen 127.0.0.1:8081 --lifetime-secs 3600
  server_pid=$BENCH_LAST_PID
  ns_wait_listening tcp 8081
  IFS=, read -r -a levels <<<"$BENCH_COST_LEVELS"
  local clients=(bare geoctl)
  [ -z "${BENCH_PROBE_BASELINE:-}" ] || clients+=(baseline)
  log "cost: callgrind over $BENCH_COST_CHECKS checks and native CPU over $BENCH_COST_CPU_CHECKS, per level and client"
  printf '\nCost per check: HTTP check with DNS (A) + fresh TCP connection + GET, target %s\n' "http://fast.$BENCH_ZONE:8081/"
  printf '   instructions: callgrind, %s checks, start-up subtracted; CPU: native run of %s checks, µs per check\n' \
    "$BENCH_COST_CHECKS" "$BENCH_COST_CPU_CHECKS"
  printf '   %9s  %-9s %14s %8s %10s %10s %10s %7s\n' "in flight" client "instr/check" "x bare" "CPU prober" "HTTP srv" "DNS srv" failed
  # Slow under valgrind is not lost: both clients wait 30 s for a DNS answer before asking again
  # (geoctl reads it from resolv.conf, which `ip netns exec` mounts afresh at each start).
  echo "options timeout:30 attempts:1" >>"/etc/netns/$_bench_ns/resolv.conf"
  : >"$out"
  declare -A instr=()
  for level in "${levels[@]}"; do
    for client in "${clients[@]}"; do
      exe=$BENCH_BIN extra=()
      case $client in
        bare) extra=(--bare-with-dns 127.0.0.1:53 --dns-retry-ms 30000) ;;
        baseline) exe=$BENCH_PROBE_BASELINE ;;
      esac
      local file="$BENCH_COST_DIR/probe-$client-$level.out" native s0 d0 s1 d1 zero full ok failed
      s0=$(cpu_of "$server_pid") d0=$(cpu_of "$BENCH_DNS_PID")
      native=$(cost_load "$exe" "$level" "$BENCH_COST_CPU_CHECKS" -- "${extra[@]}")
      s1=$(cpu_of "$server_pid") d1=$(cpu_of "$BENCH_DNS_PID")
      # shellcheck disable=SC2046
      cost_load "$exe" "$level" 0 $(callgrind_cmd "$file.zero") -- "${extra[@]}" >/dev/null
      # shellcheck disable=SC2046
      full=$(cost_load "$exe" "$level" "$BENCH_COST_CHECKS" $(callgrind_cmd "$file") -- "${extra[@]}")
      zero=$(callgrind_total "$file.zero")
      ok=$(json_field "$full" ok) failed=$(json_field "$full" failed)
      instr[$client-$level]=$(per_unit "$(callgrind_total "$file")" "$zero" "$BENCH_COST_CHECKS")
      local n=$BENCH_COST_CPU_CHECKS cpu ratio
      cpu=$(json_field "$native" cpu_s)
      ratio=$(awk -v a="${instr[$client-$level]}" -v b="${instr[bare-$level]}" 'BEGIN { printf "%.2f", a / b }')
      printf '   %9s  %-9s %14s %8s %10s %10s %10s %7s\n' "$level" "$client" "${instr[$client-$level]}" "$ratio" \
        "$(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.1f", c * 1e6 / n }')" \
        "$(awk -v a="$s0" -v b="$s1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
        "$(awk -v a="$d0" -v b="$d1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
        "$failed+$(json_field "$native" failed)"
      printf '{"in_flight":%s,"client":"%s","instructions_per_check":%s,"ratio_to_bare":%s,"checks":%s,"checks_ok":%s,"cpu_checks":%s,"cpu_us_per_check":{"prober":%s,"http_server":%s,"dns_server":%s},"cpu_checks_failed":%s}\n' \
        "$level" "$client" "${instr[$client-$level]}" "$ratio" "$BENCH_COST_CHECKS" "$ok" "$n" \
        "$(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.2f", c * 1e6 / n }')" \
        "$(awk -v a="$s0" -v b="$s1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')" \
        "$(awk -v a="$d0" -v b="$d1" -v n="$n" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')" \
        "$(json_field "$native" failed)" >>"$out"
    done
  done
  printf '   target: geoctl ≤ 1.3x bare at every level\n'
  if [ -n "${instr[geoctl-64]:-}" ] && [ -n "${instr[geoctl-512]:-}" ]; then
    printf '   instructions per check at 512 / at 64: geoctl %s, bare %s (target: geoctl'"'"'s growth ≤ bare'"'"'s)\n' \
      "$(awk -v a="${instr[geoctl-512]}" -v b="${instr[geoctl-64]}" 'BEGIN { printf "%.2f", a / b }')" \
      "$(awk -v a="${instr[bare-512]}" -v b="${instr[bare-64]}" 'BEGIN { printf "%.2f", a / b }')"
  fi
  local middle=${levels[$(( ${#levels[@]} / 2 ))]}
  printf '\n   geoctl at %s in flight, top functions by inclusive instructions (share of the run, start-up included;\n' "$middle"
  printf '   whole profile: callgrind_annotate %s)\n' "$BENCH_COST_DIR/probe-geoctl-$middle.out"
  callgrind_top "$BENCH_COST_DIR/probe-geoctl-$middle.out" "${BENCH_COST_TOP:-40}"
  printf '\n   and by their own (self) instructions\n'
  callgrind_top "$BENCH_COST_DIR/probe-geoctl-$middle.out" 20 no
}

bench_probe() {
  local cost=0
  case "${1:-}" in
    --cost) cost=1 ;;
    "") ;;
    *) echo "scripts/bench probe: unknown option $1 (--cost is the only one)" >&2; return 2 ;;
  esac
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/bench probe needs root (network namespaces, tc, Debian packages)" >&2
    return 1
  fi
  require_cargo
  _bench_work=$(mktemp -d /tmp/geoctl-bench.XXXXXX)
  chmod 755 "$_bench_work"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  # 512 checks in flight hold about a thousand sockets in one process.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  bench_install
  bench_build
  bench_namespace
  if [ "$cost" = 1 ]; then
    source scripts/lib/bench_cost.sh
    source scripts/lib/runs.sh
    cost_install
    bench_probe_cost target/bench/probe-cost.jsonl
    echo "JSON lines: target/bench/probe-cost.jsonl; profiles: $BENCH_COST_DIR/probe-*.out"
    return
  fi
  local parts=$_bench_work/parts
  bench_throughput "$parts/throughput.json"
  bench_accuracy "$parts/accuracy.json"
  bench_recording "$parts/recording.json"
  log "part 4: GeoIP lookups (city + ASN databases)"
  "$BENCH_BIN" geoip --json "$parts/geoip.json"
  "$BENCH_BIN" report "$parts/throughput.json" "$parts/accuracy.json" "$parts/recording.json" "$parts/geoip.json" \
    --out target/bench/probe.json
  echo "JSON: target/bench/probe.json"
}
