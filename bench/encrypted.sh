#!/usr/bin/env bash
# Throughput of Vigil's DNS-over-TLS and DNS-over-HTTPS listeners next to
# plain UDP and TCP, over reused connections, with dnsperf on loopback
# (cached-hit mix, Vigil pinned to one core, dnsperf to the other).
# Bounded: DURATION seconds per protocol. Installs Debian's dnsperf if missing.
#
#   bench/encrypted.sh
#   DURATION=5 bench/encrypted.sh
set -euo pipefail

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
VPORT=${VPORT:-15373}
DOTPORT=${DOTPORT:-15853}
DOHPORT=${DOHPORT:-15443}
SPORT=${SPORT:-15320}

. "$(dirname "$0")/lib.sh"
LCPU=1
[ "$(nproc)" -lt 2 ] && LCPU=0

bench_setup cmd/vigil bench/stubdns bench/gencert
"$work/gencert" -cert "$work/cert.pem" -key "$work/key.pem"
for i in $(seq 1 1000); do echo "host$i.example.com A"; done >"$work/queries.txt"

cat >"$work/vigil.toml" <<TOML
[server]
listen = ["127.0.0.1:$VPORT"]
dot_listen = ["127.0.0.1:$DOTPORT"]
doh_listen = ["127.0.0.1:$DOHPORT"]
cert_file = "$work/cert.pem"
key_file = "$work/key.pem"
[ratelimit]
enabled = false
[upstream]
servers = ["127.0.0.1:$SPORT"]
[store]
dir = "$work/state"
[http]
listen = ""
[log]
level = "warn"
TOML
taskset -c "$LCPU" "$work/stubdns" -listen "127.0.0.1:$SPORT" 2>/dev/null &
pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$work/vigil" serve -config "$work/vigil.toml" &
pids+=($!)
for _ in $(seq 1 100); do
	dnsperf -s 127.0.0.1 -p "$VPORT" -d "$work/queries.txt" -n 1 -l 2 >/dev/null 2>&1 && break
	sleep 0.05
done

run() { # mode port
	taskset -c "$LCPU" dnsperf -m "$1" -s 127.0.0.1 -p "$2" -d "$work/queries.txt" -c "$CLIENTS" -l "$DURATION" -T 1 2>/dev/null |
		awk '/Queries per second/ {q=$4} /Queries lost/ {l=$3} END {printf "%d QPS, %d lost\n", q, l}'
}
echo "cached mix, ${DURATION}s each, $CLIENTS connections, Vigil on one core:"
echo "udp: $(run udp "$VPORT")"
echo "tcp: $(run tcp "$VPORT")"
echo "dot: $(run dot "$DOTPORT")"
echo "doh: $(run doh "$DOHPORT")"
