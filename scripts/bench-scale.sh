#!/usr/bin/env bash
# The scale figures of a big log in the real explorer (benches/tui/scale.rs):
# first frame, full load and snapshot save, `evscope state` cold and warm,
# reopen from the snapshot cache, live tail at 1,000 appends a second.
#
#   scripts/bench-scale.sh [LOG] [-- BENCH OPTIONS]
#
# LOG defaults to bench-data/bench-10m.jsonl (generated when missing: 10M
# events over 100,000 accounts, about 1.5 GB). BENCH OPTIONS: --tail-secs S,
# --rate N, --poll-ms MS, --timeout-secs S, --no-headless.
#
# The binary measured is $EVSCOPE_BIN if set; otherwise target/release/evscope
# is built and copied (with its time) to a temporary directory, so rebuilding
# the tree during the run does not change what is measured. The output is
# also written to bench-data/scale-DATE.txt. Needs tmux; /usr/bin/time for
# the headless peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

log="bench-data/bench-10m.jsonl"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  log="$1"
  shift
fi
[ "${1:-}" = "--" ] && shift

if [ ! -s "$log" ]; then
  if [ "$log" = "bench-data/bench-10m.jsonl" ]; then
    mkdir -p bench-data
    echo "generating $log ..."
    python3 scripts/gen_bench_log.py 10000000 "$log" --accounts 100000
  else
    echo "bench-scale: no log at $log" >&2
    exit 1
  fi
fi
command -v tmux >/dev/null || { echo "bench-scale: needs tmux (apt-get install tmux)" >&2; exit 1; }

tmp=""
if [ -z "${EVSCOPE_BIN:-}" ]; then
  cargo build --release
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cp -p target/release/evscope "$tmp/evscope"
  export EVSCOPE_BIN="$tmp/evscope"
fi

out="bench-data/scale-$(date +%Y%m%d-%H%M).txt"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')" | tee "$out"
cargo bench --bench tui -- --scale "$log" "$@" 2>&1 | tee -a "$out"
echo "written to $out"
