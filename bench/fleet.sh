#!/usr/bin/env bash
# What shipping the per-client log to a fleet's PostgreSQL costs the DNS
# path: blocked QPS of Vigil with [fleet] off and on (every blocked lookup
# logged and shipped), dnsperf on loopback against a local stub upstream.
# The two configurations run in turn, a fresh process each, ROUNDS times;
# medians. With QUOTA=P Vigil is held to P % of a core and QPS per
# CPU-second is reported too. A throwaway PostgreSQL cluster (Debian's
# postgresql) is started in the work directory, on a Unix socket, as the
# postgres user, on the other core. At the end: the entries PostgreSQL
# holds and its disk per million entries.
#
#   bench/fleet.sh                        # 100k names, 10 s x 3 rounds
#   QUOTA=20 bench/fleet.sh
set -euo pipefail

NAMES=${NAMES:-100000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
VPORT=${VPORT:-15383}
SPORT=${SPORT:-15330}

. "$(dirname "$0")/lib.sh"

echo "building..." >&2
bench_setup cmd/vigil bench/stubdns bench/genlist bench/startup
cg_setup
"$work/genlist" -n "$NAMES" -miss 10 -out "$work"
first_blocked=$(sed -n '3s/^||\(.*\)^$/\1/p' "$work/list.txt")

# PostgreSQL, as an unprivileged user when run as root.
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
pg=$work/pg
mkdir -p "$pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then
	chown postgres "$pg"
	chmod 755 "$work"
	as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$pgbin/initdb" -D "$pg/data" -U vigil --auth=trust --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$pg' -c fsync=off -c synchronous_commit=off" start >/dev/null
trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg/data" -m immediate stop >/dev/null 2>&1 || true; bench_cleanup' EXIT
dsn="host=$pg user=vigil dbname=postgres sslmode=disable"
psql_q() { "$pgbin/psql" -X -qtA "$dsn" -c "$1"; }

# write_config FILE FLEET(yes|no)
write_config() {
	base_config "$1" "$work/state-$2" ""
	cat >>"$1" <<TOML
[log]
level = "error"
[querylog]
log_lines = false
[[lists]]
name = "bench"
vendor = "Bench"
sources = ["$work/list.txt"]
format = "adblock"
TOML
	if [ "$2" = yes ]; then
		cat >>"$1" <<TOML
[fleet]
postgres = "$dsn"
replica = "bench"
TOML
	fi
}

stub_start
write_config "$work/no.toml" no
write_config "$work/yes.toml" yes

declare -A blocked
for r in $(seq 1 "$ROUNDS"); do
	for a in no yes; do
		echo "round $r: fleet $a..." >&2
		vigil_start "$work/$a.toml"
		sleep 2
		read -r q _ < <(ROUNDS=1 mix "$VPORT" "$work/blocked.txt")
		blocked[$a]="${blocked[$a]:-} $q"
		vigil_stop
	done
done

echo
echo "[fleet] cost ($NAMES names; medians of $ROUNDS rounds of ${DURATION}s; $(date -u +%F))"
printf '%-10s %14s' fleet "blocked QPS"
[ -n "$QUOTA" ] && printf ' %16s' "blocked /CPU-s"
echo
for a in no yes; do
	b=$(echo ${blocked[$a]} | tr ' ' '\n' | median)
	printf '%-10s %14s' "$a" "$b"
	[ -n "$QUOTA" ] && printf ' %16s' "$(per_cpu "$b")"
	echo
done
# What the rounds shipped (each stop leaves the last second's entries
# for the next start with the fleet on: ship it now).
vigil_start "$work/yes.toml"
sleep 3
vigil_stop
n=$(psql_q "SELECT count(*) FROM vigil_blocked")
bytes=$(psql_q "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits WHERE inhparent = 'vigil_blocked'::regclass")
echo "PostgreSQL holds $n blocked lookups in $((bytes / 1048576)) MiB (tables and indexes): $(awk -v b="$bytes" -v n="$n" 'BEGIN { if (n > 0) printf "%.0f", b / n * 1000000 / 1048576; else print "?" }') MiB per million"
