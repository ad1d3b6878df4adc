#!/bin/sh
# bench-cli.sh (make bench-cli): the CLI's two start-up targets of issue 10,
# each as the median of the ratios of RUNS side-by-side hyperfine runs
# (BENCHMARKS.md):
#   1. `cgmon run -o /dev/null -- /bin/true` against alldeps, which links
#      the same packages outside this module and only runs /bin/true
#      (target: at most 1.15x); mini, containerd and `/usr/bin/time` are
#      shown beside them;
#   2. a long-lived `cgmon batch` of N lines of /bin/true against a bare
#      shell loop of N /bin/true, per execution (target: at most 1.2x).
# Many short runs drift less with the machine than few long ones, since
# hyperfine runs one command's runs before the next command's.
# Environment: GO (go), BENCH_BIN (/tmp/cgmon-bench), RUNS (5), N (500).
set -eu
cd "$(dirname "$0")/../.."
GO=${GO:-go}
BIN=${BENCH_BIN:-/tmp/cgmon-bench}
RUNS=${RUNS:-5}
N=${N:-500}

if ! command -v hyperfine >/dev/null; then
	echo "bench-cli: hyperfine is missing (Debian: apt-get install -y hyperfine)" >&2
	exit 1
fi
# The floor is only a floor if it links what cgmon links.
$GO test -count=1 -run '^TestAllDepsFollowsCgmon$' ./internal/startfloor
mkdir -p "$BIN"
$GO build -o "$BIN/cgmon" ./cmd/cgmon
for p in mini containerd alldeps medians; do
	$GO build -o "$BIN/$p" "./internal/startfloor/$p"
done
yes '{"command": ["/bin/true"]}' | head -n "$N" >"$BIN/batch.ndjson"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$RUNS" ]; do
	hyperfine -N --style basic --warmup 20 --runs 200 --export-json "$BIN/run-$r.json" \
		"$BIN/cgmon run -o /dev/null -- /bin/true" "$BIN/alldeps" "$BIN/containerd" "$BIN/mini" \
		'/usr/bin/time -o /dev/null /bin/true' >/dev/null
	hyperfine -N --style basic --warmup 1 --runs 5 --export-json "$BIN/batch-$r.json" \
		"$BIN/cgmon batch --parallel 1 -o /dev/null --summary /dev/null $BIN/batch.ndjson" \
		"sh -c 'i=0; while [ \$i -lt $N ]; do /bin/true; i=\$((i+1)); done'" >/dev/null
	r=$((r + 1))
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

runs=$(seq -f "$BIN/run-%g.json" 1 "$RUNS")
batches=$(seq -f "$BIN/batch-%g.json" 1 "$RUNS")
# shellcheck disable=SC2086 # the file lists are split on purpose
"$BIN/medians" -cmd "$BIN/cgmon run" -base "$BIN/alldeps" -target 1.15 $runs
# shellcheck disable=SC2086
"$BIN/medians" -cmd "$BIN/cgmon batch" -base "sh -c" -per "$N" -target 1.2 $batches
