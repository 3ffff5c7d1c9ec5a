# scripts/bench backup: `geoctl backup run` against `pg_dump | gzip | aws s3 cp -`,
# the same database to the same S3-compatible server (moto) in the same run.
# Sourced by scripts/bench.
#
# BENCH_BACKUP_MB (default 1024) is the size of SQL the benchmark table dumps to;
# BENCH_GEOCTL_BIN uses a prebuilt geoctl instead of building a release binary.

bench_backup() {
  source scripts/lib/moto.sh
  local size_mb=${BENCH_BACKUP_MB:-1024} work bin awsvenv rows
  work=$(mktemp -d /tmp/geoctl-bench-backup.XXXXXX)
  chmod 755 "$work"
  _bench_backup_work=$work  # the EXIT trap runs after this function's locals are gone
  trap 'stop_moto; stop_services; rm -rf "$_bench_backup_work"' EXIT
  command -v /usr/bin/time >/dev/null || apt_install time >/dev/null
  [ -x /usr/bin/time ] || apt_install time >/dev/null

  if [ -n "${BENCH_GEOCTL_BIN:-}" ]; then
    bin=$BENCH_GEOCTL_BIN   # a binary built elsewhere (say which profile when quoting figures)
  else
    log "building geoctl (release)"
    cargo build --release --locked --bin geoctl >&2
    bin=${CARGO_TARGET_DIR:-$PWD/target}/release/geoctl
  fi

  start_postgres "$work/pg"
  start_moto "$work/moto"
  awsvenv=${GEOCTL_AWSCLI_VENV:-${CARGO_TARGET_DIR:-$PWD/target}/awscli-venv}
  if [ ! -x "$awsvenv/bin/aws" ]; then
    log "installing awscli into $awsvenv"
    python3 -m venv "$awsvenv" && "$awsvenv/bin/pip" install -q --disable-pip-version-check 'awscli>=1.30,<2' >&2
  fi

  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
  local endpoint=$GEOCTL_TEST_AWS_ENDPOINT bucket=geoctl-bench
  "$awsvenv/bin/aws" --endpoint-url "$endpoint" s3 mb "s3://$bucket" >/dev/null

  # ~145 bytes of SQL per row.
  rows=$(( size_mb * 1048576 / 145 ))
  log "creating a table of $rows rows (~${size_mb} MiB of SQL)"
  psql -X -q "$DATABASE_URL" -c "CREATE TABLE bench AS SELECT g AS id, now() AS at, md5(g::text) AS a,
      md5((g * 7)::text) AS b, repeat(chr(65 + g % 26), 40) AS c FROM generate_series(1, $rows) g" >&2
  local db_bytes
  db_bytes=$(psql -X -At "$DATABASE_URL" -c "SELECT pg_database_size(current_database())")

  log "geoctl backup run"
  local t0 t1 geoctl_s
  t0=$(date +%s.%N)
  DATABASE_URL=$DATABASE_URL S3_ENDPOINT=$endpoint S3_MONITOR_BUCKET_NAME=$bucket \
    /usr/bin/time -v -o "$work/geoctl.time" "$bin" backup run -o json >"$work/geoctl.json"
  t1=$(date +%s.%N)
  geoctl_s=$(python3 -c "print($t1 - $t0)")

  log "pg_dump | gzip | aws s3 cp -"
  local peer_s
  t0=$(date +%s.%N)
  ( set -o pipefail
    /usr/bin/time -v -o "$work/pg_dump.time" pg_dump --format=plain --no-owner --no-privileges -d "$DATABASE_URL" \
      | /usr/bin/time -v -o "$work/gzip.time" gzip -6 \
      | /usr/bin/time -v -o "$work/aws.time" "$awsvenv/bin/aws" --endpoint-url "$endpoint" s3 cp - "s3://$bucket/peer/backup.sql.gz" )
  t1=$(date +%s.%N)
  peer_s=$(python3 -c "print($t1 - $t0)")

  local rss_geoctl rss_pgdump rss_gzip rss_aws dump_bytes stored peer_stored
  rss() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
  rss_geoctl=$(rss "$work/geoctl.time"); rss_pgdump=$(rss "$work/pg_dump.time")
  rss_gzip=$(rss "$work/gzip.time"); rss_aws=$(rss "$work/aws.time")
  dump_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dump_bytes"])' "$work/geoctl.json")
  stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$work/geoctl.json")
  peer_stored=$("$awsvenv/bin/aws" --endpoint-url "$endpoint" s3api head-object --bucket "$bucket" --key peer/backup.sql.gz \
    --query ContentLength --output text)

  mkdir -p "${CARGO_TARGET_DIR:-target}/bench"
  python3 - "$dump_bytes" "$stored" "$peer_stored" "$geoctl_s" "$peer_s" "$rss_geoctl" "$rss_pgdump" "$rss_gzip" \
    "$rss_aws" "$db_bytes" "$rows" >"${CARGO_TARGET_DIR:-target}/bench/backup.json" <<'PY'
import json, sys
dump, stored, peer_stored, gs, ps, rg, rp, rz, ra, dbb, rows = sys.argv[1:]
mb = int(dump) / 1e6
print(json.dumps({
  "database_bytes": int(dbb), "rows": int(rows), "sql_bytes": int(dump),
  "geoctl": {"seconds": float(gs), "sql_mb_per_s": mb / float(gs), "stored_bytes": int(stored), "peak_rss_kib": int(rg)},
  "peer_pg_dump_gzip_aws_s3_cp": {"seconds": float(ps), "sql_mb_per_s": mb / float(ps), "stored_bytes": int(peer_stored),
      "peak_rss_kib": {"pg_dump": int(rp), "gzip": int(rz), "aws": int(ra)}},
}, indent=2))
PY
  cat <<EOF2
backup of a $((db_bytes / 1048576)) MiB database ($rows rows, $((dump_bytes / 1048576)) MiB of SQL) to moto S3 on loopback
  geoctl backup run              $(printf '%6.1f' "$geoctl_s") s  $(python3 -c "print(f'{$dump_bytes / 1e6 / $geoctl_s:6.1f}')") MB/s of SQL  peak RSS geoctl $((rss_geoctl / 1024)) MiB (+ pg_dump)  stored $((stored / 1048576)) MiB
  pg_dump | gzip | aws s3 cp -   $(printf '%6.1f' "$peer_s") s  $(python3 -c "print(f'{$dump_bytes / 1e6 / $peer_s:6.1f}')") MB/s of SQL  peak RSS gzip $((rss_gzip / 1024)) MiB, aws $((rss_aws / 1024)) MiB, pg_dump $((rss_pgdump / 1024)) MiB  stored $((peer_stored / 1048576)) MiB
  (figures in ${CARGO_TARGET_DIR:-target}/bench/backup.json; the machine's other load is not controlled)
EOF2
}
