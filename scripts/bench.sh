#!/usr/bin/env bash
# Generate the deterministic 1M-event log (once) and run the fold benchmark.
#   scripts/bench.sh [N]       (default N = 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
log="bench-data/bench-$n.jsonl"
mkdir -p bench-data
if [ ! -s "$log" ]; then
  echo "generating $log ..."
  python3 scripts/gen_bench_log.py "$n" "$log"
fi
ls -l "$log"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo bench --bench fold -- "$log" assets/examples/bench.jq
