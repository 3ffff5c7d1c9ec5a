# `scripts/bench history`: sourced by scripts/bench after scripts/lib/services.sh.
#
# Months of results, both layouts side by side in one run on one private PostgreSQL (or the
# server DATABASE_URL names; it creates and drops databases geoctl_bench_plain/_days):
#   plain  today's layout before partitioning (every migration but 20261206100001 and 20261207300001)
#   days   partitioned by day (geoctl db migrate, days made by geoctl db maintain)
# Each gets the same generated history with COPY (history_generate below): BENCH_HISTORY_MONITORS
# (1000) monitors x 3 regions x 1 check a minute over BENCH_HISTORY_DAYS (14) days up to now,
# results and metrics, and their daily summaries (`summaries rebuild`). It first checks the disk:
# a history that would leave less than BENCH_HISTORY_KEEP_FREE_GB (12) free exits 2 and says how
# much of it fits (the full size needs about 70 GB). Then, each layout: `monitor status`, `report --since 1d` and `--since 7d`, `monitor results
# NAME --since 1h` (seconds, the geoctl binary), `results::record` at batches of 500
# (results/s, benches/history.rs), a prune of the oldest day with `db prune --before` (seconds,
# WAL written, size of both tables after; with 3 days of history or more, each statement's
# duration in target/bench/history-prune-<layout>.txt) and of the next one with `--older-than`
# (with 4 days or more; its cutoff falls just inside the day after, trimmed row by row); `report` also with every hour read from results (as
# before the hourly summaries); last, `db migrate` turning the plain layout's full tables into partitioned
# ones. EXPLAIN of the heaviest reads on the day layout goes to target/bench/history-explain.txt;
# figures to stdout and target/bench/history.json. Debug build unless BENCH_RELEASE=1.

history_psql() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# Seconds a command takes, its output discarded.
history_time() {
  local start end
  start=$(date +%s.%N)
  # A command that fails has no time: the run stops here (the assignment of `$(…)` fails).
  "$@" >/dev/null || { echo "bench history: failed: $*" >&2; return 1; }
  end=$(date +%s.%N)
  python3 -c "print(round($end - $start, 3))"
}

# The generated history: monitors `md5('m' || g)::uuid` (g = 1..N, named `m<g>`) checked from
# us-east, eu-west and ap-south every minute; one in 97 checks down; response 40-99 ms.
# history_generate is the reusable part (the dashboard bench loads its data with it too):
#
#   history_generate URL FROM TO MONITORS [JOBS]
#
# COPYs the results and metrics rows of every minute in [FROM, TO) (timestamptz literals, FROM
# on a whole hour) into URL's monitor_results and regional_performance_metrics, whatever their
# layout (partitions must exist for the days, or the default partition takes them). It writes
# no monitors and no summaries: insert the monitors with history_monitors, and run `geoctl
# summaries rebuild` when the summaries are wanted. Fast because each hour is one COPY whose
# rows come sorted by (monitor, region, time), so every index takes them in order instead of
# at 3,000 places a minute, the monitors' ids are hashed once per hour rather than once per row,
# and JOBS (BENCH_HISTORY_JOBS, 2) streams run side by side, each over its own stretch of hours.
HISTORY_REGIONS="ARRAY['ap-south', 'eu-west', 'us-east']"
history_hour_sql() {
  local table=$1 hour=$2 to=$3 monitors=$4 columns
  case $table in
    monitor_results) columns="m.id, r, t, 'up', 40 + (m.g + extract(minute FROM t)::int) % 60, NULL::jsonb,
         (m.g + extract(minute FROM t)::int) % 97 <> 0, r, NULL::text,
         3.0, 1.5, 3.0, 6.0, 20.0, 40.0 + (m.g + extract(minute FROM t)::int) % 60, NULL::jsonb, NULL::text, NULL::text,
         m.hex || ':' || r || ':' || (extract(epoch FROM t) * 1000)::bigint" ;;
    regional_performance_metrics) columns="m.id, r, t, '127.0.0.1'::inet, 'HTTP/1.1', 200, 512, 1.5, 3.0, 6.0, 20.0,
         40.0 + (m.g + extract(minute FROM t)::int) % 60,
         m.hex || ':' || r || ':' || (extract(epoch FROM t) * 1000)::bigint" ;;
  esac
  echo "COPY (
  SELECT $columns
  FROM (SELECT md5('m' || g)::uuid AS id, md5('m' || g) AS hex, g FROM generate_series(1, $monitors) g) m,
       unnest($HISTORY_REGIONS) r,
       generate_series('$hour'::timestamptz, least('$hour'::timestamptz + interval '59 minutes', '$to'::timestamptz - interval '1 minute'), interval '1 minute') t
  ORDER BY m.id, r, t
) TO STDOUT;"
}
HISTORY_RESULTS_COLUMNS="monitor_id, execution_region, checked_at, status, response_time_ms, details, is_up,
  target_region, error_kind, network_latency, dns_resolution_time, tcp_connect_time, tls_handshake_time,
  first_byte_time, total_time, region_specific_metrics, error_message, steps, run_key"
HISTORY_METRICS_COLUMNS="monitor_id, region_code, checked_at, resolved_ip, http_version, status_code,
  response_size, dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time, total_time, run_key"

history_generate() {
  local url=$1 from=$2 to=$3 monitors=$4 jobs=${5:-${BENCH_HISTORY_JOBS:-2}} table columns job hour
  local -a hours pids=()
  mapfile -t hours < <(history_psql "$url" -c "SELECT generate_series('$from'::timestamptz, '$to'::timestamptz - interval '1 minute', interval '1 hour')")
  for table in monitor_results regional_performance_metrics; do
    columns=$HISTORY_RESULTS_COLUMNS
    [ "$table" = monitor_results ] || columns=$HISTORY_METRICS_COLUMNS
    for ((job = 0; job < jobs; job++)); do
      # Contiguous stretches of hours, so each stream writes in time order as agents do.
      local first=$((job * ${#hours[@]} / jobs)) last=$(((job + 1) * ${#hours[@]} / jobs))
      (
        for ((i = first; i < last; i++)); do history_hour_sql "$table" "${hours[i]}" "$to" "$monitors"; done \
          | PGOPTIONS='-c client_min_messages=warning -c work_mem=64MB' psql -X -q -v ON_ERROR_STOP=1 "$url" \
          | history_psql "$url" -c "COPY $table ($columns) FROM STDIN"
      ) &
      pids+=($!)
    done
  done
  for job in "${pids[@]}"; do wait "$job"; done
}

# history_monitors URL MONITORS: the monitors history_generate's rows belong to, in three regions.
history_monitors() {
  history_psql "$1" -c "INSERT INTO monitors (id, name, type, target, interval_seconds)
      SELECT md5('m' || g)::uuid, 'm' || g, 'http', 'https://example.com/' || g, 60 FROM generate_series(1, $2) g" \
    -c "INSERT INTO monitor_regions (monitor_id, region_code)
      SELECT md5('m' || g)::uuid, r FROM generate_series(1, $2) g, unnest($HISTORY_REGIONS) r"
}

# history_partition_days URL START DAYS GEOCTL: on a migrated database, the history's days as
# partitions, as if partitioned before it began: the partition of the past ends where it starts,
# a row per day in the default partition makes `db maintain` create each day (the hourly tables'
# with the results'), and goes again.
history_partition_days() {
  local url=$1 start=$2 days=$3 bin=$4 t
  for t in monitor_results regional_performance_metrics regional_monitor_hourly_summaries regional_monitor_hourly_landings; do
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
}

# Bytes one result and its metrics row take with their indexes in either layout (measured with
# 100 monitors over a day: 500 + 463), and what a run needs on top of that (WAL, summaries).
HISTORY_BYTES_PER_ROW=1000
HISTORY_SLACK=1.15

# history_check_disk DIR ROWS: refuses (exit 2) a history of ROWS results that would leave less
# than BENCH_HISTORY_KEEP_FREE_GB (12) free on DIR's disk, and says what would fit.
history_check_disk() {
  local dir=$1 rows=$2 keep=${BENCH_HISTORY_KEEP_FREE_GB:-12}
  python3 - "$dir" "$rows" "$keep" "$HISTORY_BYTES_PER_ROW" "$HISTORY_SLACK" <<'PY'
import shutil, sys
path, rows, keep, per_row, slack = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
need = rows * per_row * slack / 1e9
free = shutil.disk_usage(path).free / 1e9
print(f"==> history: {rows:,} results and as many metrics rows need about {need:.1f} GB; {free:.1f} GB free, keeping {keep:.0f} GB", file=sys.stderr)
if need > free - keep:
    fit = max(free - keep, 0) / need
    print(f"not enough disk: about {fit:.0%} of this history fits; lower BENCH_HISTORY_DAYS or BENCH_HISTORY_MONITORS "
          f"(or BENCH_HISTORY_KEEP_FREE_GB)", file=sys.stderr)
    sys.exit(2)
PY
}

# Size of a table with its partitions and indexes, in bytes (a plain table has no partition tree).
history_size() {
  history_psql "$1" -c "SELECT COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('$2')),
                                        pg_total_relation_size('$2'))"
}

bench_history() {
  require_cargo
  local work monitors days start until bin bench layout url admin out
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
  until=$(history_psql "$admin" -c "SELECT date_trunc('minute', now())")
  # One layout at a time is on disk: each database is dropped before the next is made.
  history_check_disk "$(history_psql "$admin" -c "SHOW data_directory")" \
    "$(history_psql "$admin" -c "SELECT 3 * $monitors * extract(epoch FROM '$until'::timestamptz - '$start'::timestamptz)::bigint / 60")" \
    || exit 2

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
      # geoctl works only on a schema it has migrated whole: the partitioning is recorded as
      # applied (and unrecorded before `db migrate` below), the tables stay as they were.
      history_psql "$url" -c "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
        SELECT v, 'bench: the plain tables, read as if partitioned', true, '\\x00', 0
        FROM unnest(ARRAY[20261206100001, 20261207300001]) v"
    else
      DATABASE_URL=$url "$bin" db migrate >/dev/null
      history_partition_days "$url" "$start" "$days" "$bin"
    fi
    history_monitors "$url" "$monitors"
    log "$layout: generating $monitors monitors x 3 regions x 1/min from $start to $until with COPY"
    local t0
    t0=$(date +%s)
    history_generate "$url" "$start" "$until" "$monitors"
    history_psql "$url" -c "VACUUM ANALYZE monitor_results" -c "VACUUM ANALYZE regional_performance_metrics"
    fig[$layout.load_s]=$(( $(date +%s) - t0 ))
    # The daily summaries agents would have kept, each day recomputed from its results.
    fig[$layout.summaries_s]=$(DATABASE_URL=$url history_time "$bin" summaries rebuild)
    fig[$layout.rows]=$(history_psql "$url" -c "SELECT count(*) FROM monitor_results")

    export DATABASE_URL=$url
    fig[$layout.status_s]=$(history_time "$bin" monitor status -o json)
    fig[$layout.report_1d_s]=$(history_time "$bin" report --since 1d -o json)
    fig[$layout.report_7d_s]=$(history_time "$bin" report --since 7d -o json)
    fig[$layout.results_1h_s]=$(history_time "$bin" monitor results m1 --since 1h -o json)
    # The same reports with every hour read from results, as before the hourly summaries: a
    # coverage that begins after now (see migration 20261207100001), restored afterwards.
    local coverage
    coverage=$(history_psql "$url" -c "SELECT COALESCE(complete_from::text, 'NULL') FROM hourly_summaries_coverage")
    history_psql "$url" -c "UPDATE hourly_summaries_coverage SET complete_from = date_trunc('hour', now(), 'UTC') + interval '2 hours'"
    fig[$layout.report_1d_results_s]=$(history_time "$bin" report --since 1d -o json)
    fig[$layout.report_7d_results_s]=$(history_time "$bin" report --since 7d -o json)
    history_psql "$url" -c "UPDATE hourly_summaries_coverage SET complete_from = $( [ "$coverage" = NULL ] && echo NULL || echo "'$coverage'")"
    fig[$layout.record_per_s]=$(GEOCTL_BENCH_DATABASE_URL=$url BENCH_MONITORS=$monitors "$bench" \
      | python3 -c 'import json, sys; print(round(json.load(sys.stdin)["results_per_s"]))')

    # The oldest day: `db prune --before` the day after it.
    # Only with 3 days or more: with fewer, the oldest day's end falls inside the summaries'
    # safety window (prune refuses it).
    local older wal0 wal1 log_from
    if [ "$days" -ge 3 ]; then
      older=$(history_psql "$url" -c "SELECT ('$start'::timestamptz AT TIME ZONE 'UTC')::date + 1")
      wal0=$(history_psql "$url" -c "SELECT pg_current_wal_lsn()")
      # Every statement of the prune with its duration, from the server's log (a private server's).
      history_psql "$admin" -c "ALTER DATABASE geoctl_bench_$layout SET log_min_duration_statement = 0"
      log_from=$( [ -f "$work/pg/server.log" ] && wc -l <"$work/pg/server.log" || echo 0)
      fig[$layout.prune_s]=$(history_time "$bin" db prune --before "$older" --yes -o json)
      history_psql "$admin" -c "ALTER DATABASE geoctl_bench_$layout RESET log_min_duration_statement"
      [ -f "$work/pg/server.log" ] \
        && tail -n +"$((log_from + 1))" "$work/pg/server.log" | grep -E 'duration: [0-9.]+ ms' >"$out/history-prune-$layout.txt" || true
      wal1=$(history_psql "$url" -c "SELECT pg_current_wal_lsn()")
      fig[$layout.prune_wal_bytes]=$(history_psql "$url" -c "SELECT pg_wal_lsn_diff('$wal1', '$wal0')::bigint")
      fig[$layout.size_after_bytes]=$(( $(history_size "$url" monitor_results) + $(history_size "$url" regional_performance_metrics) ))
      # The next day as cron prunes by a retention period: the cutoff falls just after its end
      # (rounded down to the second), so the first rows of the day after are deleted row by row.
      if [ "$days" -ge 4 ]; then
        older=$(history_psql "$url" -c "SELECT floor(extract(epoch FROM now() - ('$start'::timestamptz + interval '2 days')))::bigint")
        fig[$layout.prune_older_s]=$(history_time "$bin" db prune --older-than "${older}s" --yes -o json)
      fi
    else
      log "$layout: $days day(s) of history: no prune figure (it needs 3 days or more)"
    fi

    if [ "$layout" = days ]; then
      # The statements of the heaviest reads as geoctl sends them, with the bounds it computes.
      local e="EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)" ids="ARRAY(SELECT id FROM monitors)"
      local head="checked_at >= now() - interval '7 days' AND checked_at < date_trunc('hour', now() - interval '7 days', 'UTC') + interval '1 hour'"
      {
        echo "# monitor results m1 --since 1h (results::query::recent)"
        history_psql "$url" -c "$e SELECT r.checked_at, r.is_up, r.total_time FROM monitor_results r
          WHERE r.monitor_id = md5('m1')::uuid AND r.checked_at >= now() - interval '1 hour'
            AND r.checked_at <= now() + interval '1 hour'
          ORDER BY r.checked_at DESC LIMIT 50"
        # results::histogram::counts_sql("r"), as geoctl sends it.
        local hist="geoctl_histogram(array_agg(CASE WHEN r.total_time < 0.1 THEN 0 ELSE least(149, 1 + floor(ln(r.total_time / 0.1) / ln(1.1))::int) END) FILTER (WHERE r.is_up AND r.total_time IS NOT NULL))"
        echo; echo "# report --since 7d: the partial first hour's figures and histograms (results::query::summed, Grain::Results)"
        history_psql "$url" -c "$e SELECT r.monitor_id, r.execution_region, count(*), sum(r.total_time) FILTER (WHERE r.is_up), $hist
          FROM monitor_results r
          WHERE r.monitor_id = ANY($ids) AND ($head) AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
          GROUP BY 1, 2"
        echo; echo "# report --since 7d: the whole days after it (results::query::summed_days)"
        history_psql "$url" -c "$e SELECT monitor_id, region_code, day, total_checks FROM regional_monitor_summaries
          WHERE monitor_id = ANY($ids) AND day >= (now() AT TIME ZONE 'UTC')::date - 6
            AND day < (now() AT TIME ZONE 'UTC')::date + 1"
        echo; echo "# report --since 7d: where the partial first hour's checks landed (report::landings)"
        history_psql "$url" -c "$e SELECT monitor_id, region_code, country_code, count(*) FROM regional_performance_metrics
          WHERE monitor_id = ANY($ids) AND ($head) GROUP BY 1, 2, 3"
        local first_hour="date_trunc('hour', now() - interval '1 day', 'UTC') + interval '1 hour'"
        echo; echo "# report --since 1d: the partial first hour's figures and histograms (results::query::summed, Grain::Results)"
        history_psql "$url" -c "$e SELECT r.monitor_id, r.execution_region, count(*), sum(r.total_time) FILTER (WHERE r.is_up), $hist
          FROM monitor_results r
          WHERE r.monitor_id = ANY($ids) AND (r.checked_at >= now() - interval '1 day' AND r.checked_at < $first_hour)
            AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
          GROUP BY 1, 2"
        echo; echo "# report --since 1d: where the whole hours' checks landed, and their hop counts (report::landings)"
        history_psql "$url" -c "$e SELECT monitor_id, region_code, country_code, city, asn, isp, sum(checks),
            geoctl_histogram_sum(hop_counts)
          FROM regional_monitor_hourly_landings
          WHERE monitor_id = ANY($ids) AND (hour >= $first_hour AND hour < date_trunc('hour', now(), 'UTC') + interval '1 hour')
          GROUP BY 1, 2, 3, 4, 5, 6"
        echo; echo "# report --since 1d: the whole hours after it, with their histograms (results::query::summed, Grain::Hours)"
        history_psql "$url" -c "$e SELECT monitor_id, region_code, hour, total_checks, response_time_sum, response_histogram
          FROM regional_monitor_hourly_summaries
          WHERE monitor_id = ANY($ids) AND (hour >= $first_hour AND hour < date_trunc('hour', now(), 'UTC') + interval '1 hour')"
        echo; echo "# monitor status: each region's latest result (results::status::statuses)"
        history_psql "$url" -c "$e SELECT mr.monitor_id, mr.region_code, l.checked_at FROM monitor_regions mr
          LEFT JOIN LATERAL (SELECT checked_at FROM monitor_results r
             WHERE r.monitor_id = mr.monitor_id AND r.execution_region = mr.region_code
               AND r.checked_at >= now() - interval '7 days' AND r.checked_at <= now() + interval '1 hour'
             ORDER BY checked_at DESC LIMIT 1) l ON true
          WHERE mr.monitor_id = ANY(ARRAY(SELECT id FROM monitors LIMIT 2))"
      } >"$out/history-explain.txt"
    else
      # The plain layout's tables, full, turned into partitioned ones by `db migrate`.
      history_psql "$url" -c "DELETE FROM _sqlx_migrations WHERE version IN (20261206100001, 20261207300001)"
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
        ("prune next, --older-than (s)", "prune_older_s"),
        ("monitor status (s)", "status_s"), ("report --since 1d (s)", "report_1d_s"),
        ("  every hour from results (s)", "report_1d_results_s"), ("report --since 7d (s)", "report_7d_s"),
        ("  every hour from results (s)", "report_7d_results_s"),
        ("monitor results --since 1h", "results_1h_s"), ("record, batches of 500 (/s)", "record_per_s"),
        ("load with COPY (s)", "load_s"), ("summaries rebuild (s)", "summaries_s")]
for label, key in rows:
    if key not in p or key not in q:
        print(f"{label:28} {'-':>12} {'-':>12}")
        continue
    a, b = p[key], q[key]
    if key.endswith("bytes"):
        a, b = a / 1e6, b / 1e6
    print(f"{label:28} {a:12.3f} {b:12.3f}" if a < 1000 else f"{label:28} {a:12.0f} {b:12.0f}")
print(f'db migrate of the plain layout ({int(p["rows"]):,} rows per table): {p["migrate_s"]:.1f} s')
PY
  log "EXPLAIN of the heaviest reads: $out/history-explain.txt"
}
