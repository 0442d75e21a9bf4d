# Shared set-up for the benchmark scripts; source it, do not run it.
#
# Sets root (the repository) and work (a temporary directory removed on
# exit), an array pids whose processes are killed on exit, installs
# Debian's dnsperf if missing, and builds the named commands into $work:
#
#   . "$(dirname "$0")/lib.sh"
#   bench_setup cmd/vigil bench/stubdns
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
pids=()
bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap bench_cleanup EXIT

bench_setup() {
	if ! command -v dnsperf >/dev/null; then
		echo "installing dnsperf (Debian package)..." >&2
		local sudo=""
		[ "$(id -u)" = 0 ] || sudo="sudo"
		$sudo apt-get update -qq && $sudo apt-get install -y -qq dnsperf >/dev/null
	fi
	local pkg
	for pkg in "$@"; do
		(cd "$root" && go build -o "$work/$(basename "$pkg")" "./$pkg")
	done
}
