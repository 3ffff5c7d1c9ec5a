# Pieces shared by runs of many monitors against real agents: `scripts/bench queue` (its scale
# part) and `scripts/soak`. Sourced after scripts/lib/services.sh; not run on its own.
#
# Both judge a run by `run_key` = `<monitor>:<region>:<due ms>`, the key each scheduled run is
# recorded under (src/agent/job.rs), so "recorded once, twice or not at all" is a query over
# monitor_results rather than a count the agents keep (and lose when one is killed).

# Whether PID still runs (a zombie does not). The helpers below say so when it does not,
# through `on_process_gone PID` when the caller defines one (bench queue prints the end of
# the agent's log), instead of failing on a missing /proc file.
process_running() {
  [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

require_running() {
  process_running "$1" && return 0
  if declare -F on_process_gone >/dev/null; then
    on_process_gone "$1"
  else
    echo "process $1 is no longer running" >&2
  fi
  return 1
}

# CPU seconds (user + system) of a process so far.
cpu_of() {
  require_running "$1" || return 1
  awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"
}

# CPU seconds of a process and all its children, live and exited (PostgreSQL:
# the postmaster's reaped backends are in its cutime/cstime).
cpu_tree_of() {
  local total child
  require_running "$1" || return 1
  total=$(awk '{ print ($14 + $15 + $16 + $17) / 100 }' "/proc/$1/stat")
  for child in $(pgrep -P "$1"); do
    total=$(awk -v t="$total" -v c="$(cpu_of "$child" 2>/dev/null || echo 0)" 'BEGIN { print t + c }')
  done
  echo "$total"
}

# Peak RSS of a process, MiB.
rss_of() {
  require_running "$1" || return 1
  awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

# Current and peak RSS of a process, MiB: "RSS HWM".
rss_now_and_peak_of() {
  awk '/VmRSS/ { r = $2 } /VmHWM/ { h = $2 } END { printf "%.0f %.0f", r / 1024, h / 1024 }' "/proc/$1/status"
}

# artifact FILE NAME KIND: the executable cargo reported for that target
# (FILE holds `cargo build --message-format=json-render-diagnostics` output).
artifact() {
  grep '"reason":"compiler-artifact"' "$1" | grep "\"name\":\"$2\"" | grep "\"kind\":\[\"$3\"\]" \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
}

psql_q() {
  "$(pg_bindir)/psql" -X -A -t -q "$DATABASE_URL" -c "$1"
}

# monitors_yaml N PREFIX TARGET EVERY: a `monitor apply` file of N HTTP monitors named
# PREFIX-1…PREFIX-N, each checking TARGET/<its number>, every EVERY, in every active region.
monitors_yaml() {
  local n=$1 prefix=$2 target=$3 every=$4 i
  echo "monitors:"
  for i in $(seq 1 "$n"); do
    printf '  - {name: %s-%s, type: http, target: "%s/%s", every: %s, timeout: 10s}\n' \
      "$prefix" "$i" "$target" "$i" "$every"
  done
}

# runs_cte START_MS END_MS: SQL for a CTE body listing every run recorded with a scheduled
# time in [START_MS, END_MS]: monitor, region, due (ms), n (rows recorded for that run_key) and
# started (ms, the earliest check's start).
runs_cte() {
  cat <<EOF
      SELECT split_part(run_key, ':', 1) AS monitor, split_part(run_key, ':', 2) AS region,
             split_part(run_key, ':', 3)::bigint AS due, count(*) AS n,
             min(extract(epoch FROM checked_at) * 1000) AS started
      FROM monitor_results WHERE run_key ~ '^[^:]+:[^:]+:[0-9]+$'
        AND split_part(run_key, ':', 3)::bigint BETWEEN $1 AND $2
      GROUP BY run_key
EOF
}
