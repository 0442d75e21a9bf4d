#!/usr/bin/env bash
# What [[groups]] cost per query: cached and blocked QPS of Vigil with no
# groups, one group and sixteen groups over the same NAMES blocked names
# (split over sixteen lists), dnsperf on loopback against a local stub
# upstream. The querying client (127.0.0.1) is a member of several groups
# by address, prefix and name, and its groups block the names asked.
#
# The three configurations run in turn, a fresh process each, ROUNDS times,
# so that a change in the machine's load hits them alike; medians are
# reported. Vigil runs on one core, dnsperf on the other. With QUOTA=P
# Vigil is held to P % of a core and QPS per CPU-second is reported too.
#
#   bench/groups.sh                            # 1M names, 10 s x 3 rounds
#   NAMES=100000 DURATION=4 ROUNDS=2 bench/groups.sh
#   QUOTA=20 bench/groups.sh
set -euo pipefail

NAMES=${NAMES:-1000000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
VPORT=${VPORT:-15363}
SPORT=${SPORT:-15310}

. "$(dirname "$0")/lib.sh"

echo "building..." >&2
bench_setup cmd/vigil bench/stubdns bench/genlist bench/startup
cg_setup
echo "generating $NAMES names..." >&2
"$work/genlist" -n "$NAMES" -miss 10 -out "$work"
first_blocked=$(sed -n '3s/^||\(.*\)^$/\1/p' "$work/list.txt")
# Sixteen lists: the rules dealt round-robin.
for i in $(seq 0 15); do
	awk -v i="$i" 'NR % 16 == i' "$work/list.txt" >"$work/list$i.txt"
done

# write_config FILE GROUPS
write_config() {
	base_config "$1" "$work/state" ""
	cat >>"$1" <<TOML
[log]
level = "warn"
[[clients]]
name = "bench"
addresses = ["127.0.0.1"]
TOML
	for i in $(seq 0 15); do
		printf '[[lists]]\nname = "list%d"\nvendor = "Bench"\nsources = ["%s"]\nformat = "adblock"\n' "$i" "$work/list$i.txt" >>"$1"
	done
	local g
	for g in $(seq 0 $(($2 - 1))); do
		local member
		case $((g % 4)) in
		0) member='"127.0.0.1"' ;;
		1) member='"127.0.0.0/8"' ;;
		2) member='"bench"' ;;
		*) member='"10.0.0.0/8"' ;;
		esac
		# Every group the client is in has all sixteen lists, so every
		# name asked is blocked whichever groups decide.
		printf '[[groups]]\nname = "g%d"\nclients = [%s]\n' "$g" "$member" >>"$1"
		if [ $((g % 4)) = 3 ]; then
			printf 'lists = ["list%d"]\n' "$((g % 16))" >>"$1"
		fi
	done
}

stub_start

for n in 0 1 16; do write_config "$work/g$n.toml" "$n"; done
# The lists compile once into the store; every run after starts from it.
"$work/vigil" check -config "$work/g16.toml" >/dev/null


declare -A cached blocked
for r in $(seq 1 "$ROUNDS"); do
	for n in 0 1 16; do
		echo "round $r: $n groups..." >&2
		vigil_start "$work/g$n.toml"
		warm "$VPORT" "$work/cached.txt"
		read -r q _ < <(ROUNDS=1 mix "$VPORT" "$work/cached.txt")
		cached[$n]="${cached[$n]:-} $q"
		read -r q _ < <(ROUNDS=1 mix "$VPORT" "$work/blocked.txt")
		blocked[$n]="${blocked[$n]:-} $q"
		vigil_stop
	done
done

echo
echo "[[groups]] cost ($NAMES names in 16 lists; medians of $ROUNDS rounds of ${DURATION}s; $(date -u +%F))"
printf '%-10s %14s %14s' groups "cached QPS" "blocked QPS"
[ -n "$QUOTA" ] && printf ' %16s %16s' "cached /CPU-s" "blocked /CPU-s"
echo
for n in 0 1 16; do
	c=$(echo ${cached[$n]} | tr ' ' '\n' | median)
	b=$(echo ${blocked[$n]} | tr ' ' '\n' | median)
	printf '%-10s %14s %14s' "$n" "$c" "$b"
	[ -n "$QUOTA" ] && printf ' %16s %16s' "$(per_cpu "$c")" "$(per_cpu "$b")"
	echo
done
