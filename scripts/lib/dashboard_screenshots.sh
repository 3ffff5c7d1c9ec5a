#!/usr/bin/env bash
# The screenshots under examples/dashboard/: a private PostgreSQL with a generated day of results
# (three monitors, three regions, ap-south failing api for the last 40 minutes, one incident), the
# dashboard on loopback, and headless Chromium. No Redis: the region cards say so. Needs a debug build.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/services.sh
work=$(mktemp -d /tmp/dash-shots.XXXXXX); chmod 755 "$work"; dpid=
trap 'kill $dpid 2>/dev/null || true; stop_services; rm -rf "$work"' EXIT
start_postgres "$work/pg"
export HOME=$work
g=target/debug/geoctl
$g db migrate >/dev/null
for spec in "shop-web|http|https://shop.example.com/|us-east,eu-west,ap-south" "api|http|https://api.example.com/health|us-east,eu-west,ap-south" "checkout-tcp|tcp|db.example.com:5432|us-east,eu-west"; do
  IFS='|' read -r name kind target regions <<<"$spec"
  $g monitor create --name "$name" --type "$kind" --target "$target" --regions "$regions" --every 1m >/dev/null
done
psql -X -q "$DATABASE_URL" <<'SQL'
INSERT INTO monitor_results (monitor_id, checked_at, is_up, execution_region, dns_resolution_time, tcp_connect_time,
  tls_handshake_time, first_byte_time, total_time, error_kind, error_message)
SELECT m.id, t, NOT (r = 'ap-south' AND m.name = 'api' AND t > now() - interval '40 minutes'),
  r, 2 + random() * 3, base / 4 + random() * 5, CASE WHEN m.type::text LIKE 'http%' THEN base / 4 + random() * 8 END,
  CASE WHEN m.type::text LIKE 'http%' THEN base / 3 + random() * 20 END,
  base + random() * 40 + CASE WHEN extract(hour FROM t) BETWEEN 12 AND 14 THEN 60 ELSE 0 END,
  CASE WHEN r = 'ap-south' AND m.name = 'api' AND t > now() - interval '40 minutes' THEN 'timeout' END,
  CASE WHEN r = 'ap-south' AND m.name = 'api' AND t > now() - interval '40 minutes' THEN 'no response within 10s' END
FROM monitors m JOIN monitor_regions mr ON mr.monitor_id = m.id,
  LATERAL (SELECT mr.region_code AS r, CASE mr.region_code WHEN 'us-east' THEN 40 WHEN 'eu-west' THEN 90 ELSE 180 END AS base) b,
  generate_series(now() - interval '24 hours', now(), interval '2 minutes') t;
INSERT INTO incidents (kind, cause, severity, monitor_id, summary, regions, first_error)
  SELECT 'monitor', 'down', 'warning', id, 'api fails from ap-south', '{ap-south}', 'timeout: no response within 10s'
  FROM monitors WHERE name = 'api';
SQL
$g summaries rebuild >/dev/null
$g statuspage add demo --title "Example status" --monitors shop-web,api >/dev/null
$g dashboard --listen 127.0.0.1:0 > "$work/url" 2>"$work/dash.log" & dpid=$!
for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(cat "$work/url")
api=$(psql -X -At "$DATABASE_URL" -c "SELECT id FROM monitors WHERE name = 'api'")
shot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,$3 --screenshot="$PWD/examples/dashboard/$1" "$2" >/dev/null 2>&1; }
shot overview.png "${url}?range=24h" 1150
shot monitor.png "${url}monitors/$api?range=24h" 1900
shot status.png "${url}status/demo" 700
ls -la examples/dashboard; cat "$work/dash.log"
