# A test bed of Docker Engines: one region per engine, as the seed runs one
# Swarm per region. Sourced after scripts/lib/services.sh (for log).
#
# testbed_up DIR N starts N dockerd instances, each in a network namespace of
# its own (Docker's documented way to run several daemons on one host: own
# --data-root, --exec-root, --pidfile and sockets). The namespaces hang off one
# host bridge, so engines reach each other (a worker joining a manager, the
# overlay's VXLAN) and the host, and nothing else: the only addresses used are
# 10.231.0.0/24 on that bridge and each namespace's loopback.
#
# Every engine serves its API on tcp://<its address>:2376 with --tlsverify and
# a server certificate from a test CA made under DIR; the client certificate
# (ca.pem, cert.pem, key.pem, as docker and geoctl expect) is in DIR/client.
# A second client certificate from another CA (DIR/stranger) lets tests show
# that a wrong certificate is refused. testbed_down DIR stops the engines,
# removes the namespaces, the bridge and DIR's engine state.
#
# Several beds can live at once (two `scripts/test` runs, or one beside the
# quickstart's): each claims a free index K by creating its bridge gxbK (an
# atomic `ip link add`), keeps it in DIR/bed so a restart finds it again, and
# names everything after it: namespaces gxbKeN, veths gxbKhN/gxbKvN, addresses
# 10.231.K.0/24, cgroups geoctl-testbed-K-N. testbed_down removes only its own.
#
# After testbed_up: TESTBED_HOSTS (tcp://10.231.K.11:2376 …), TESTBED_CERTS
# (the client certificate directory) and TESTBED_HOST_ADDR (the host's address
# on the bridge, where the tasks reach services on the host; also in
# DIR/host_addr).

TESTBED_BED=

_testbed_bridge() { echo "gxb$TESTBED_BED"; }
_testbed_ns() { echo "gxb${TESTBED_BED}e$1"; }
_testbed_addr() { echo "10.231.$TESTBED_BED.$((10 + $1))"; }

# Claims DIR's bed index: the one recorded there when this bed is still up
# (DIR/host_addr is written by testbed_up and removed by testbed_down) or its
# bridge can be made again, else the first free one.
_testbed_claim() {
  local dir=$1 k
  if [ -f "$dir/bed" ]; then
    k=$(cat "$dir/bed")
    if { [ -f "$dir/host_addr" ] && ip link show "gxb$k" >/dev/null 2>&1; } ||
      ip link add "gxb$k" type bridge 2>/dev/null; then
      TESTBED_BED=$k
      return 0
    fi
  fi
  for k in $(seq 0 63); do
    # An address range already routed here (an older bed's, a VPN's) is not free either.
    [ -z "$(ip route show "10.231.$k.0/24")" ] || continue
    if ip link add "gxb$k" type bridge 2>/dev/null; then
      TESTBED_BED=$k
      echo "$k" >"$dir/bed"
      return 0
    fi
  done
  echo "no free test bed index: bridges gxb0 to gxb63 all exist (ip link show type bridge; a stale one can be removed with ip link delete gxbK)" >&2
  return 1
}

# A CA and certificates, with openssl: DIR/ca/{ca.pem,ca-key.pem}, one server
# certificate per engine (its address as the subject alternative name) and
# the client certificates.
_testbed_certs() {
  local dir=$1 count=$2 i
  mkdir -p "$dir/ca" "$dir/client" "$dir/stranger"
  (
    umask 077
    cd "$dir/ca"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=geoctl test bed CA" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    for i in $(seq 1 "$count"); do
      openssl req -newkey rsa:2048 -nodes -subj "/CN=engine$i" -keyout "server$i-key.pem" \
        -out "server$i.csr" 2>/dev/null
      printf 'subjectAltName=IP:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$(_testbed_addr "$i")" >"server$i.ext"
      openssl x509 -req -in "server$i.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
        -extfile "server$i.ext" -out "server$i.pem" 2>/dev/null
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=geoctl" -keyout ../client/key.pem \
      -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
      -extfile client.ext -out ../client/cert.pem 2>/dev/null
    cp ca.pem ../client/ca.pem
    # Another CA's client certificate, trusting the right CA: the engines must refuse it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stranger" \
      -keyout ../stranger/key.pem -out ../stranger/cert.pem 2>/dev/null
    cp ca.pem ../stranger/ca.pem
  )
}

testbed_up() {
  local dir=$1 count=${2:-3} i ns addr host_if ns_if bridge hosts=()
  command -v dockerd >/dev/null || apt_install docker.io >/dev/null
  command -v openssl >/dev/null || apt_install openssl >/dev/null
  command -v ip >/dev/null || apt_install iproute2 >/dev/null
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  _testbed_claim "$dir" || return 1
  bridge=$(_testbed_bridge)
  TESTBED_HOST_ADDR=10.231.$TESTBED_BED.1
  # The certificates name the engines' addresses, which follow the bed's index.
  if [ ! -f "$dir/client/cert.pem" ] || [ "$(cat "$dir/certs_for" 2>/dev/null)" != "$TESTBED_BED" ]; then
    rm -rf "$dir/ca" "$dir/client" "$dir/stranger"
    _testbed_certs "$dir" "$count"
    echo "$TESTBED_BED" >"$dir/certs_for"
  fi
  if ! ip -4 addr show dev "$bridge" | grep -q "inet $TESTBED_HOST_ADDR/"; then
    ip addr add "$TESTBED_HOST_ADDR/24" dev "$bridge"
  fi
  ip link set "$bridge" up
  echo "$TESTBED_HOST_ADDR" >"$dir/host_addr"
  # The host's own dockerd may set FORWARD to DROP; the engines' traffic
  # between namespaces crosses this bridge and must pass.
  iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD -i "$bridge" -o "$bridge" -j ACCEPT
  for i in $(seq 1 "$count"); do
    ns=$(_testbed_ns "$i")
    addr=$(_testbed_addr "$i")
    host_if="gxb${TESTBED_BED}h$i"
    ns_if="gxb${TESTBED_BED}v$i"
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns"
      ip link add "$host_if" type veth peer name "$ns_if"
      ip link set "$host_if" master "$bridge" up
      ip link set "$ns_if" netns "$ns"
      ip -n "$ns" addr add "$addr/24" dev "$ns_if"
      ip -n "$ns" link set "$ns_if" up
      ip -n "$ns" link set lo up
      ip -n "$ns" route add default via "$TESTBED_HOST_ADDR"
    fi
    mkdir -p "$dir/engine$i"
    if [ ! -f "$dir/engine$i/dockerd.pid" ] || ! kill -0 "$(cat "$dir/engine$i/dockerd.pid")" 2>/dev/null; then
      log "starting engine $i in namespace $ns at tcp://$addr:2376"
      # Each engine's address pools differ, so that a worker joined from
      # another engine never sees its own bridge in a manager's overlay range.
      # nsenter, not `ip netns exec`: the latter remounts /sys in a mount
      # namespace of its own, which hides the host's cgroup mounts from dockerd.
      nsenter --net="/var/run/netns/$ns" setsid dockerd \
        --data-root "$dir/engine$i/data" --exec-root "$dir/engine$i/exec" \
        --pidfile "$dir/engine$i/dockerd.pid" \
        --host "unix://$dir/engine$i/docker.sock" --host "tcp://$addr:2376" \
        --tlsverify --tlscacert "$dir/ca/ca.pem" --tlscert "$dir/ca/server$i.pem" \
        --tlskey "$dir/ca/server$i-key.pem" \
        --bip "172.$((40 + i)).0.1/24" --default-address-pool "base=172.$((50 + i)).0.0/16,size=24" \
        --cgroup-parent "geoctl-testbed-$TESTBED_BED-$i" \
        >"$dir/engine$i/dockerd.log" 2>&1 </dev/null &
    fi
    hosts+=("tcp://$addr:2376")
  done
  for i in $(seq 1 "$count"); do
    local ready=0
    for _ in $(seq 1 120); do
      if curl -fsS --cacert "$dir/client/ca.pem" --cert "$dir/client/cert.pem" --key "$dir/client/key.pem" \
        "https://$(_testbed_addr "$i"):2376/_ping" >/dev/null 2>&1; then
        ready=1
        break
      fi
      sleep 0.5
    done
    if [ "$ready" != 1 ]; then
      echo "engine $i did not answer at tcp://$(_testbed_addr "$i"):2376 within 60 s; its log:" >&2
      tail -n 30 "$dir/engine$i/dockerd.log" >&2
      return 1
    fi
  done
  TESTBED_HOSTS="${hosts[*]}"
  TESTBED_CERTS="$dir/client"
  export TESTBED_HOSTS TESTBED_CERTS TESTBED_HOST_ADDR
  printf '%s\n' "${hosts[@]}" >"$dir/hosts"
}

testbed_down() {
  local dir=$1 i pid ns
  [ -d "$dir" ] || return 0
  for i in $(seq 1 32); do
    [ -d "$dir/engine$i" ] || continue
    if [ -f "$dir/engine$i/dockerd.pid" ]; then
      pid=$(cat "$dir/engine$i/dockerd.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    # The engine's containers' mounts (overlay, shm) go with its data.
    { grep -o " $dir/engine$i/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$dir/engine$i"
  done
  [ -f "$dir/bed" ] || return 0
  TESTBED_BED=$(cat "$dir/bed")
  local bridge
  bridge=$(_testbed_bridge)
  for ns in $(ip netns list | awk -v p="^gxb${TESTBED_BED}e[0-9]+$" '$1 ~ p {print $1}'); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns delete "$ns"
  done
  if ip link show "$bridge" >/dev/null 2>&1; then
    ip link delete "$bridge"
  fi
  iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null || true
  rm -f "$dir/hosts" "$dir/host_addr"
}
