#!/usr/bin/env bash
# What alerts cost the DNS path: cached and blocked QPS of Vigil with
# [alerts] off and with every rule on (evaluated every ALERT_INTERVAL,
# default 20s as shipped, against a log that grows with the run), dnsperf on loopback against a local stub
# upstream. The two configurations run in turn, a fresh process each,
# ROUNDS times; medians. With QUOTA=P Vigil is held to P % of a core and
# QPS per CPU-second is reported too.
#
#   bench/alerts.sh                        # 100k names, 10 s x 3 rounds
#   QUOTA=20 bench/alerts.sh
set -euo pipefail

NAMES=${NAMES:-100000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
VPORT=${VPORT:-15373}
SPORT=${SPORT:-15320}
ALERT_INTERVAL=${ALERT_INTERVAL:-20s}

. "$(dirname "$0")/lib.sh"

echo "building..." >&2
bench_setup cmd/vigil bench/stubdns bench/genlist bench/startup
cg_setup
"$work/genlist" -n "$NAMES" -miss 10 -out "$work"
first_blocked=$(sed -n '3s/^||\(.*\)^$/\1/p' "$work/list.txt")

# write_config FILE ALERTS(yes|no)
write_config() {
	base_config "$1" "$work/state-$2" ""
	cat >>"$1" <<TOML
[log]
level = "error"
[[lists]]
name = "bench"
vendor = "Bench"
sources = ["$work/list.txt"]
format = "adblock"
TOML
	if [ "$2" = yes ]; then
		# A destination nobody listens on: deliveries fail fast, and are
		# retried off the DNS path as they would be for real.
		cat >>"$1" <<TOML
[alerts]
interval = "$ALERT_INTERVAL"
[[alerts.destinations]]
name = "nowhere"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
TOML
	fi
}

stub_start
write_config "$work/no.toml" no
write_config "$work/yes.toml" yes


declare -A cached blocked
for r in $(seq 1 "$ROUNDS"); do
	for a in no yes; do
		echo "round $r: alerts $a..." >&2
		vigil_start "$work/$a.toml"
		# Both settle first: a start with alerts on reads the last 10
		# minutes of the log once (what happened while it was down).
		sleep 5
		warm "$VPORT" "$work/cached.txt"
		read -r q _ < <(ROUNDS=1 mix "$VPORT" "$work/cached.txt")
		cached[$a]="${cached[$a]:-} $q"
		read -r q _ < <(ROUNDS=1 mix "$VPORT" "$work/blocked.txt")
		blocked[$a]="${blocked[$a]:-} $q"
		vigil_stop
	done
done

echo
echo "[alerts] cost ($NAMES names; medians of $ROUNDS rounds of ${DURATION}s; $(date -u +%F))"
printf '%-10s %14s %14s' alerts "cached QPS" "blocked QPS"
[ -n "$QUOTA" ] && printf ' %16s %16s' "cached /CPU-s" "blocked /CPU-s"
echo
for a in no yes; do
	c=$(echo ${cached[$a]} | tr ' ' '\n' | median)
	b=$(echo ${blocked[$a]} | tr ' ' '\n' | median)
	printf '%-10s %14s %14s' "$a" "$c" "$b"
	[ -n "$QUOTA" ] && printf ' %16s %16s' "$(per_cpu "$c")" "$(per_cpu "$b")"
	echo
done
