# `scripts/bench history`: sourced by scripts/bench after scripts/lib/services.sh.
#
# Months of results, both layouts side by side in one run on one private PostgreSQL (or the
# server DATABASE_URL names; it creates and drops databases geoctl_bench_plain/_days):
#   plain  today's layout before partitioning (the migrations before 20261206100001)
#   days   partitioned by day (geoctl db migrate, days made by geoctl db maintain)
# Each gets the same generated history with COPY: BENCH_HISTORY_MONITORS (1000) monitors x
# 3 regions x 1 check a minute over BENCH_HISTORY_DAYS (14) days up to now, results and metrics.
# Then, each layout: `monitor status`, `report --since 1d` and `--since 7d`, `monitor results
# NAME --since 1h` (seconds, the geoctl binary), `results::record` at batches of 500
# (results/s, benches/history.rs), and a prune of the oldest day (seconds, WAL written, size of
# both tables after); last, `db migrate` turning the plain layout's full tables into partitioned
# ones. EXPLAIN of the heaviest reads on the day layout goes to target/bench/history-explain.txt;
# figures to stdout and target/bench/history.json. Debug build unless BENCH_RELEASE=1.

history_psql() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# Seconds a command takes, its output discarded.
history_time() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  python3 -c "print(round($end - $start, 3))"
}

# The history, generated once per layout by the same query, in time order as agents write it.
HISTORY_RESULTS_SQL="
COPY (
  SELECT md5('m' || g)::uuid, r, t, 'up', (40 + (g + extract(minute FROM t)::int) % 60), NULL::jsonb,
         (g + extract(minute FROM t)::int) % 97 <> 0, r, NULL::text,
         3.0, 1.5, 3.0, 6.0, 20.0, 40.0 + (g + extract(minute FROM t)::int) % 60, NULL::jsonb, NULL::text, NULL::text,
         md5('m' || g) || ':' || r || ':' || (extract(epoch FROM t) * 1000)::bigint
  FROM generate_series(:'start'::timestamptz, now() - interval '1 minute', interval '1 minute') t,
       generate_series(1, :monitors) g, unnest(ARRAY['us-east', 'eu-west', 'ap-south']) r
) TO STDOUT"
HISTORY_RESULTS_COLUMNS="monitor_id, execution_region, checked_at, status, response_time_ms, details, is_up,
  target_region, error_kind, network_latency, dns_resolution_time, tcp_connect_time, tls_handshake_time,
  first_byte_time, total_time, region_specific_metrics, error_message, steps, run_key"
HISTORY_METRICS_SQL="
COPY (
  SELECT md5('m' || g)::uuid, r, t, '127.0.0.1'::inet, 'HTTP/1.1', 200, 512, 1.5, 3.0, 6.0, 20.0,
         40.0 + (g + extract(minute FROM t)::int) % 60,
         md5('m' || g) || ':' || r || ':' || (extract(epoch FROM t) * 1000)::bigint
  FROM generate_series(:'start'::timestamptz, now() - interval '1 minute', interval '1 minute') t,
       generate_series(1, :monitors) g, unnest(ARRAY['us-east', 'eu-west', 'ap-south']) r
) TO STDOUT"
HISTORY_METRICS_COLUMNS="monitor_id, region_code, checked_at, resolved_ip, http_version, status_code,
  response_size, dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time, total_time, run_key"

# Size of a table with its partitions and indexes, in bytes (a plain table has no partition tree).
history_size() {
  history_psql "$1" -c "SELECT COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('$2')),
                                        pg_total_relation_size('$2'))"
}

bench_history() {
  require_cargo
  local work monitors days start bin bench layout url admin out
  work=$(mktemp -d /tmp/geoctl-bench-history.XXXXXX)
  chmod 755 "$work"
  # shellcheck disable=SC2064
  trap "stop_services; rm -rf '$work'" EXIT
  [ -n "${DATABASE_URL:-}" ] || start_postgres "$work/pg"
  admin=$DATABASE_URL
  monitors=${BENCH_HISTORY_MONITORS:-1000}
  days=${BENCH_HISTORY_DAYS:-14}
  out=$(realpath -m "${CARGO_TARGET_DIR:-target}/bench")
  mkdir -p "$out"
  start=$(history_psql "$admin" -c "SELECT ((now() AT TIME ZONE 'UTC')::date - $days)::timestamp AT TIME ZONE 'UTC'")

  local profile=() build=debug
  [ "${BENCH_RELEASE:-0}" = 1 ] && profile=(--release) && build=release
  log "cargo build ($build): geoctl and benches/history.rs"
  cargo build --locked --bin geoctl "${profile[@]}"
  bench=$(cargo build --locked --bench history "${profile[@]}" --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "history" and m.get("executable"):
        print(m["executable"])')
  bin=$(realpath -m "${CARGO_TARGET_DIR:-target}/$build/geoctl")

  local -A fig=()
  for layout in plain days; do
    url=$(python3 -c "import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(p._replace(path='/geoctl_bench_$layout').geturl())" "$admin")
    history_psql "$admin" -c "DROP DATABASE IF EXISTS geoctl_bench_$layout" -c "CREATE DATABASE geoctl_bench_$layout"
    if [ "$layout" = plain ]; then
      GEOCTL_BENCH_DATABASE_URL=$url "$bench" plain-layout
    else
      DATABASE_URL=$url "$bin" db migrate >/dev/null
      # The history's days as partitions, as if partitioned before it began: the partition of
      # the past ends where it starts, a row per day in the default partition makes
      # `db maintain` create each day, and goes again.
      local t
      for t in monitor_results regional_performance_metrics; do
        history_psql "$url" -c "ALTER TABLE $t DETACH PARTITION ${t}_past" \
          -c "ALTER TABLE $t ATTACH PARTITION ${t}_past FOR VALUES FROM (MINVALUE) TO ('$start')"
      done
      history_psql "$url" -c "INSERT INTO monitor_results (monitor_id, checked_at, status, is_up)
        SELECT md5('marker')::uuid, '$start'::timestamptz + n * interval '1 day', 'up', true FROM generate_series(0, $days) n"
      history_psql "$url" -c "INSERT INTO regional_performance_metrics (monitor_id, region_code, checked_at)
        SELECT md5('marker')::uuid, 'us-east', '$start'::timestamptz + n * interval '1 day' FROM generate_series(0, $days) n"
      DATABASE_URL=$url "$bin" db maintain >/dev/null
      history_psql "$url" -c "DELETE FROM monitor_results WHERE monitor_id = md5('marker')::uuid" \
        -c "DELETE FROM regional_performance_metrics WHERE monitor_id = md5('marker')::uuid"
    fi
    history_psql "$url" -c "INSERT INTO monitors (id, name, type, target, interval_seconds)
        SELECT md5('m' || g)::uuid, 'm' || g, 'http', 'https://example.com/' || g, 60 FROM generate_series(1, $monitors) g" \
      -c "INSERT INTO monitor_regions (monitor_id, region_code)
        SELECT md5('m' || g)::uuid, r FROM generate_series(1, $monitors) g, unnest(ARRAY['us-east', 'eu-west', 'ap-south']) r"
    log "$layout: generating $monitors monitors x 3 regions x 1/min x $days days with COPY"
    local t0
    t0=$(date +%s)
    # Through stdin: psql interpolates its variables there, not in -c.
    history_psql "$url" -v start="$start" -v monitors="$monitors" <<<"$HISTORY_RESULTS_SQL" \
      | history_psql "$url" -c "COPY monitor_results ($HISTORY_RESULTS_COLUMNS) FROM STDIN"
    history_psql "$url" -v start="$start" -v monitors="$monitors" <<<"$HISTORY_METRICS_SQL" \
      | history_psql "$url" -c "COPY regional_performance_metrics ($HISTORY_METRICS_COLUMNS) FROM STDIN"
    history_psql "$url" -c "VACUUM ANALYZE monitor_results" -c "VACUUM ANALYZE regional_performance_metrics"
    fig[$layout.rows]=$(history_psql "$url" -c "SELECT count(*) FROM monitor_results")
    fig[$layout.load_s]=$(( $(date +%s) - t0 ))

    export DATABASE_URL=$url
    fig[$layout.status_s]=$(history_time "$bin" monitor status -o json)
    fig[$layout.report_1d_s]=$(history_time "$bin" report --since 1d -o json)
    fig[$layout.report_7d_s]=$(history_time "$bin" report --since 7d -o json)
    fig[$layout.results_1h_s]=$(history_time "$bin" monitor results m1 --since 1h -o json)
    fig[$layout.record_per_s]=$(GEOCTL_BENCH_DATABASE_URL=$url BENCH_MONITORS=$monitors "$bench" \
      | python3 -c 'import json, sys; print(round(json.load(sys.stdin)["results_per_s"]))')

    # The oldest day: a cutoff at the start of the day after it, as a duration from now
    # (rounded down: the cutoff falls just after that midnight, never before it).
    local older wal0 wal1
    older=$(history_psql "$url" -c "SELECT floor(extract(epoch FROM now() - ('$start'::timestamptz + interval '1 day')))::bigint")
    wal0=$(history_psql "$url" -c "SELECT pg_current_wal_lsn()")
    fig[$layout.prune_s]=$(history_time "$bin" db prune --older-than "${older}s" --yes -o json)
    wal1=$(history_psql "$url" -c "SELECT pg_current_wal_lsn()")
    fig[$layout.prune_wal_bytes]=$(history_psql "$url" -c "SELECT pg_wal_lsn_diff('$wal1', '$wal0')::bigint")
    fig[$layout.size_after_bytes]=$(( $(history_size "$url" monitor_results) + $(history_size "$url" regional_performance_metrics) ))

    if [ "$layout" = days ]; then
      local since1d since7d
      since1d=$(history_psql "$url" -c "SELECT now() - interval '1 day'")
      since7d=$(history_psql "$url" -c "SELECT now() - interval '7 days'")
      {
        echo "# monitor results m1 --since 1h"
        history_psql "$url" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
          SELECT r.checked_at, r.is_up, r.total_time FROM monitor_results r
          WHERE r.monitor_id = md5('m1')::uuid AND r.checked_at >= now() - interval '1 hour'
          ORDER BY r.checked_at DESC LIMIT 50"
        echo; echo "# report --since 7d: per-region statistics (results::query::region_stats)"
        history_psql "$url" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
          SELECT r.monitor_id, r.execution_region, count(*),
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up)
          FROM monitor_results r
          WHERE r.monitor_id = ANY(ARRAY(SELECT id FROM monitors)) AND r.checked_at >= '$since7d'
            AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
          GROUP BY 1, 2"
        echo; echo "# report --since 1d: where checks landed (report::landings)"
        history_psql "$url" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
          SELECT monitor_id, region_code, country_code, count(*) FROM regional_performance_metrics
          WHERE monitor_id = ANY(ARRAY(SELECT id FROM monitors)) AND checked_at >= '$since1d'
          GROUP BY 1, 2, 3"
        echo; echo "# monitor status: each region's latest result (results::status::statuses)"
        history_psql "$url" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
          SELECT mr.monitor_id, mr.region_code, l.checked_at FROM monitor_regions mr
          LEFT JOIN LATERAL (SELECT checked_at FROM monitor_results r
             WHERE r.monitor_id = mr.monitor_id AND r.execution_region = mr.region_code
               AND r.checked_at >= now() - interval '7 days'
             ORDER BY checked_at DESC LIMIT 1) l ON true
          WHERE mr.monitor_id = ANY(ARRAY(SELECT id FROM monitors LIMIT 2))"
      } >"$out/history-explain.txt"
    else
      # The plain layout's tables, full, turned into partitioned ones by `db migrate`.
      fig[plain.migrate_s]=$(history_time "$bin" db migrate)
    fi
    unset DATABASE_URL
    history_psql "$admin" -c "DROP DATABASE geoctl_bench_$layout"
  done

  local json
  json=$(for k in "${!fig[@]}"; do echo "$k=${fig[$k]}"; done | python3 -c '
import json, sys
fig = {}
for line in sys.stdin:
    key, value = line.strip().split("=", 1)
    layout, name = key.split(".", 1)
    fig.setdefault(layout, {})[name] = float(value)
print(json.dumps(fig, sort_keys=True))')
  echo "{\"monitors\": $monitors, \"days\": $days, \"build\": \"$build\", \"layouts\": $json}" >"$out/history.json"
  python3 - "$out/history.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p, q = d["layouts"]["plain"], d["layouts"]["days"]
print(f'{d["monitors"]} monitors x 3 regions x 1/min x {d["days"]} days: {int(q["rows"]):,} results and as many metrics rows ({d["build"]} build)')
print(f'{"":28} {"plain":>12} {"by day":>12}')
rows = [("prune oldest day (s)", "prune_s"), ("  WAL written (MB)", "prune_wal_bytes"), ("  tables after (MB)", "size_after_bytes"),
        ("monitor status (s)", "status_s"), ("report --since 1d (s)", "report_1d_s"), ("report --since 7d (s)", "report_7d_s"),
        ("monitor results --since 1h", "results_1h_s"), ("record, batches of 500 (/s)", "record_per_s")]
for label, key in rows:
    a, b = p[key], q[key]
    if key.endswith("bytes"):
        a, b = a / 1e6, b / 1e6
    print(f"{label:28} {a:12.3f} {b:12.3f}" if a < 1000 else f"{label:28} {a:12.0f} {b:12.0f}")
print(f'db migrate of the plain layout ({int(p["rows"]):,} rows per table): {p["migrate_s"]:.1f} s')
PY
  log "EXPLAIN of the heaviest reads: $out/history-explain.txt"
}
