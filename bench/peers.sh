#!/usr/bin/env bash
# Vigil side by side with other DNS servers, same harness, same run: each
# server in turn pinned to core 0, dnsperf and a stub upstream on core 1,
# the same deterministic list of NAMES names, the same query files.
#
# Per server: time from start to its first blocked answer, RSS when ready
# and after the load, cached-hit QPS (10k names, warm cache), blocked QPS
# (names on the list), p99 latency of cached hits at 10k QPS, lost
# queries, and RSS without a list. Every server is a caching forwarder to
# the stub, with query logging off, except Vigil's first row, which keeps
# its per-client log on (its default).
#
# Peers from Debian (installed when missing): dnsmasq (Pi-hole's engine;
# hosts file, exact names), Unbound (local-zone always_null), dnsdist
# (packet cache, SuffixMatchNode + SpoofAction). Go peers run when their
# binaries are given: COREDNS=/path/to/coredns (hosts plugin + cache),
# BLOCKY=/path/to/blocky (hosts-format denylist). Only 127.0.0.1; every
# run is bounded (DURATION seconds, ROUNDS rounds, medians).
#
# Also the forwarded mix (never-seen names, so every query goes to the stub).
#
# QUOTA=P holds each server to P % of one core (a cgroup of its own, see
# lib.sh) and adds QPS per CPU-second: at dnsperf's ceiling fast servers
# all tie, so only under a quota does the table say which is cheaper per
# query.
#
#   bench/peers.sh                               # 1M names, 10 s x 3
#   NAMES=100000 DURATION=5 ROUNDS=1 bench/peers.sh
#   PEERS="vigil unbound" bench/peers.sh
#   QUOTA=20 bench/peers.sh                      # per CPU-second, 20 % of a core each
set -euo pipefail

NAMES=${NAMES:-1000000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-15453}
SPORT=${SPORT:-15400}
APIPORT=${APIPORT:-18153}
PEERS=${PEERS:-"vigil vigil-nolog dnsmasq unbound dnsdist coredns blocky"}

. "$(dirname "$0")/lib.sh"

if [ "$(nproc)" -lt 2 ]; then
	echo "peers.sh needs two cores: one for the server, one for dnsperf" >&2
	exit 1
fi
VCPU=0
LCPU=1

need=()
for p in $PEERS; do
	case $p in
	dnsmasq) command -v dnsmasq >/dev/null || need+=(dnsmasq-base) ;;
	unbound) command -v unbound >/dev/null || need+=(unbound) ;;
	dnsdist) command -v dnsdist >/dev/null || need+=(dnsdist) ;;
	esac
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} (Debian packages)..." >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "building..." >&2
bench_setup cmd/vigil bench/stubdns bench/genlist bench/startup
cg_setup
chmod 755 "$work" # servers that drop privileges must read their files
echo "generating $NAMES names..." >&2
"$work/genlist" -n "$NAMES" -miss 3000000 -out "$work"
split_rounds "$work/miss.txt" # a fresh part per round: every query a cache miss
# Plain names from the adblock list, for the peers' own formats.
sed -n 's/^||\(.*\)^$/\1/p' "$work/list.txt" >"$work/names.txt"
first_blocked=$(head -1 "$work/names.txt")
awk '{print "0.0.0.0 " $1}' "$work/names.txt" >"$work/hosts.txt"
# The blocked mix: names on the list (exact, so every server blocks them,
# hosts-file ones included), spread over the list, in a fixed order.
awk 'NR % 10 == 3 {print $1 " A"}' "$work/names.txt" | head -100000 >"$work/blocked-exact.txt"

# config SERVER WITH_LIST -> the command line that starts SERVER
config() {
	local s=$1 list=$2 d="$work/$1-$2"
	rm -rf "$d" && mkdir -p "$d"
	case $s in
	vigil | vigil-nolog)
		cat >"$d/vigil.toml" <<-TOML
			[server]
			listen = ["127.0.0.1:$PORT"]
			[upstream]
			servers = ["127.0.0.1:$SPORT"]
			[ratelimit]
			enabled = false
			[store]
			dir = "$d/state"
			[http]
			listen = "127.0.0.1:$APIPORT"
			[log]
			level = "warn"
			[querylog]
			enabled = $([ "$s" = vigil ] && echo true || echo false)
		TOML
		if [ "$list" = yes ]; then
			printf '[[lists]]\nname = "bench"\nsources = ["%s"]\nformat = "adblock"\n' "$work/list.txt" >>"$d/vigil.toml"
		fi
		echo "env GOMAXPROCS=1 $work/vigil serve -config $d/vigil.toml"
		;;
	dnsmasq)
		local hosts=""
		[ "$list" = yes ] && hosts="--addn-hosts=$work/hosts.txt"
		echo "dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root --pid-file= \
			--listen-address=127.0.0.1 --bind-interfaces --port=$PORT --server=127.0.0.1#$SPORT --cache-size=10000 $hosts"
		;;
	unbound)
		cat >"$d/unbound.conf" <<-CONF
			server:
			  interface: 127.0.0.1
			  port: $PORT
			  num-threads: 1
			  so-rcvbuf: 4m
			  do-daemonize: no
			  username: ""
			  chroot: ""
			  directory: "$d"
			  pidfile: ""
			  use-syslog: no
			  verbosity: 0
			  do-not-query-localhost: no
			  module-config: "iterator"
			  qname-minimisation: no
			  access-control: 127.0.0.0/8 allow
			  include: "$d/list.conf"
			remote-control:
			  control-enable: no
			forward-zone:
			  name: "."
			  forward-addr: 127.0.0.1@$SPORT
		CONF
		: >"$d/list.conf"
		[ "$list" = yes ] && awk '{print "local-zone: \"" $1 ".\" always_null"}' "$work/names.txt" >"$d/list.conf"
		echo "unbound -d -c $d/unbound.conf"
		;;
	dnsdist)
		cat >"$d/dnsdist.conf" <<-LUA
			setSecurityPollSuffix("")
			setLocal("127.0.0.1:$PORT")
			newServer({address="127.0.0.1:$SPORT", checkName="health.bench."})
			getPool(""):setCache(newPacketCache(100000, {maxTTL=86400}))
		LUA
		if [ "$list" = yes ]; then
			cat >>"$d/dnsdist.conf" <<-LUA
				local smn = newSuffixMatchNode()
				for line in io.lines("$work/names.txt") do smn:add(line) end
				addAction(SuffixMatchNodeRule(smn), SpoofAction("0.0.0.0"))
			LUA
		fi
		echo "dnsdist --supervised --disable-syslog -C $d/dnsdist.conf"
		;;
	coredns)
		local hosts=""
		[ "$list" = yes ] && hosts="hosts $work/hosts.txt { 
			no_reverse
			fallthrough
		}"
		cat >"$d/Corefile" <<-CORE
			.:$PORT {
			  bind 127.0.0.1
			  $hosts
			  cache
			  forward . 127.0.0.1:$SPORT
			}
		CORE
		echo "env GOMAXPROCS=1 $COREDNS -conf $d/Corefile"
		;;
	blocky)
		cat >"$d/config.yml" <<-YML
			upstreams:
			  groups:
			    default:
			      - 127.0.0.1:$SPORT
			bootstrapDns: 127.0.0.1:$SPORT
			ports:
			  dns: 127.0.0.1:$PORT
			log:
			  level: warn
			blocking:
			  blockType: zeroIp
			  denylists:
			    bench:
			      - $( [ "$list" = yes ] && echo "$work/hosts.txt" || echo "$d/empty.txt")
			  clientGroupsBlock:
			    default:
			      - bench
		YML
		: >"$d/empty.txt"
		echo "env GOMAXPROCS=1 $BLOCKY serve --config $d/config.yml"
		;;
	esac
}

# start CMD -> STARTUP_MS, SPID (the startup tool), SRV (the server)
start() {
	local ms=""
	rm -f "$work/srv.pid" "$work/startup.ms"
	# shellcheck disable=SC2086
	"$work/startup" -addr "127.0.0.1:$PORT" -name "$first_blocked" -timeout 120s -pidfile "$work/srv.pid" -- \
		taskset -c "$VCPU" $(cg_cmd "$1") >"$work/startup.ms" 2>"$work/server.log" &
	SPID=$!
	pids+=("$SPID")
	while [ -z "$ms" ]; do
		kill -0 "$SPID" 2>/dev/null || { echo "server did not start: $(tail -3 "$work/server.log")" >&2; return 1; }
		sleep 0.05
		ms=$(cat "$work/startup.ms" 2>/dev/null || true)
	done
	SRV=$(cat "$work/srv.pid")
	pids+=("$SRV")
	STARTUP_MS=$ms
}

# start_plain CMD -> SRV, for a server without a list: wait for any answer
start_plain() {
	# shellcheck disable=SC2086
	taskset -c "$VCPU" $(cg_cmd "$1") >/dev/null 2>"$work/server.log" &
	SRV=$!
	SPID=$SRV
	pids+=("$SRV")
	for _ in $(seq 1 400); do
		dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/cached.txt" -n 1 -l 2 >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "server did not answer: $(tail -3 "$work/server.log")" >&2
	return 1
}

stop() {
	kill -TERM "$SRV" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
	sleep 0.5
}

stub_start

rows=()
for s in $PEERS; do
	case $s in
	coredns) [ -x "${COREDNS:-}" ] || { echo "skipping coredns: set COREDNS to its binary" >&2; continue; } ;;
	blocky) [ -x "${BLOCKY:-}" ] || { echo "skipping blocky: set BLOCKY to its binary" >&2; continue; } ;;
	esac
	echo "$s: with the list..." >&2
	if ! start "$(config "$s" yes)"; then
		rows+=("| $s | failed to start | | | | | | | |")
		continue
	fi
	sleep 1
	ready=$(rss_kb "$SRV")
	warm "$PORT" "$work/cached.txt"
	read -r cq cl cf < <(mix "$PORT" "$work/cached.txt")
	read -r bq bl bf < <(mix "$PORT" "$work/blocked-exact.txt")
	read -r fq fl ff < <(mix "$PORT" "$work/miss.txt")
	lat="n/a"
	[ -n "$QUOTA" ] || lat=$(p99 "$PORT" "$work/cached.txt" 10000)
	after=$(rss_kb "$SRV")
	stop
	echo "$s: without a list..." >&2
	nolist="n/a"
	if start_plain "$(config "$s" no)"; then
		sleep 1
		nolist=$(($(rss_kb "$SRV") / 1024))
	fi
	stop
	if [ -n "$QUOTA" ]; then
		rows+=("| $s | $(per_cpu "$cq") | $(per_cpu "$bq") | $(per_cpu "$fq") | $cq / $bq / $fq | $((cf + bf + ff)) | $(awk -v m="$STARTUP_MS" 'BEGIN {printf "%.2f", m / 1000}') | $((ready / 1024)) → $((after / 1024)) |")
	else
		rows+=("| $s | $cq | $bq | $fq | $lat | $((cl + bl + fl)) | $((cf + bf + ff)) | $(awk -v m="$STARTUP_MS" 'BEGIN {printf "%.2f", m / 1000}') | $((ready / 1024)) → $((after / 1024)) | $nolist |")
	fi
done

if [ -n "$QUOTA" ]; then
	cat <<EOF

$NAMES blocked names; each server pinned to core $VCPU and held to $QUOTA % of it (cgroup CPU quota), dnsperf ($CLIENTS clients, $OUTSTANDING outstanding, ${DURATION}s, median of $ROUNDS) and the stub upstream on core $LCPU; QPS per CPU-second = QPS / ($QUOTA / 100)

| server | cached QPS per CPU-s | blocked QPS per CPU-s | forwarded QPS per CPU-s | QPS at the quota (cached / blocked / forwarded) | SERVFAIL or REFUSED | start-up with list, s | RSS with list, MiB (ready → after load) |
|---|---|---|---|---|---|---|---|
EOF
else
	cat <<EOF

$NAMES blocked names; each server pinned to core $VCPU, dnsperf ($CLIENTS clients, $OUTSTANDING outstanding, ${DURATION}s, median of $ROUNDS) and the stub upstream on core $LCPU

| server | cached QPS | blocked QPS | forwarded QPS | cached p99 ms at 10k QPS | lost | SERVFAIL or REFUSED | start-up with list, s | RSS with list, MiB (ready → after load) | RSS without list, MiB |
|---|---|---|---|---|---|---|---|---|---|
EOF
fi
printf '%s\n' "${rows[@]}"
