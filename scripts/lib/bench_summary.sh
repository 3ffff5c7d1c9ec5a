# `scripts/bench summary`: sourced by scripts/bench after scripts/lib/services.sh.
#
# Starts a private PostgreSQL (or uses DATABASE_URL when set: its geoctl tables
# are emptied), builds the `summary` bench in release mode and runs it: write cost
# per batch with 0 and with BENCH_PER_KEY (1000) results per key already
# recorded today, against the previous per-key recompute, and `monitor status`
# at BENCH_MONITORS (1000) monitors in one query against one per monitor.

bench_summary() {
  require_cargo
  local work
  work=$(mktemp -d /tmp/geoctl-bench-summary.XXXXXX)
  chmod 755 "$work"
  # shellcheck disable=SC2064
  trap "stop_services; rm -rf '$work'" EXIT
  [ -n "${DATABASE_URL:-}" ] || start_postgres "$work/pg"
  export GEOCTL_BENCH_DATABASE_URL="$DATABASE_URL"
  log "cargo bench --bench summary"
  cargo bench --locked --bench summary
}
