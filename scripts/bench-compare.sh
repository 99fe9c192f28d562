#!/usr/bin/env bash
# evscope side by side with the jaq CLI and /usr/bin/jq: the same logs, the
# same reducer (assets/examples/bench.jq), one machine, one run. Prints a
# Markdown table (wall time, events/s, peak RSS per tool and log size), the
# machine, the versions, and evscope's seek and diff p50/p99 from
# benches/fold.rs; saves it to bench-data/compare-YYYYMMDD-HHMM.md.
#
#   scripts/bench-compare.sh              # 5k 10k 20k 100k 1M; ~6-8 min on 2 cores
#   scripts/bench-compare.sh --quick      # 5k 10k 20k 100k; ~5 min (2 of them jq timeouts)
#   scripts/bench-compare.sh --with-10m   # also 10M events over 100k accounts (+~15 min)
#   scripts/bench-compare.sh --repeat 3   # best of 3 per cell
#   scripts/bench-compare.sh --rev HEAD   # measure a commit, not the working tree
#   scripts/bench-compare.sh --help       # all options
#
# Needs: cargo, python3, GNU time as /usr/bin/time (apt-get install time),
# jq as /usr/bin/jq (apt-get install jq; override with JQ=path). The jaq CLI
# is installed on first use with `cargo install jaq --locked` into
# bench-data/tools (network to crates.io; override with JAQ=path). Logs are
# generated once into bench-data/compare/logs (1M events: 167 MB; 10M: 1.6 GB).
# The measuring itself is scripts/bench_compare.py.
#
# --rev REV builds evscope as committed at REV (`git archive` into
# bench-data/compare/src, its own target directory there), so uncommitted
# work in the tree is neither measured nor in the way; the logs, the reducer
# and these scripts are taken from the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench-compare: $*" >&2; exit 1; }
note() { echo "bench-compare: $*" >&2; }

build_rev=""
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help)
      python3 scripts/bench_compare.py --help
      echo "  --rev REV        build and measure evscope as committed at REV (e.g. HEAD)"
      exit 0 ;;
    --rev) [[ $# -ge 2 ]] || die "--rev needs a revision"; build_rev=$2; shift 2 ;;
    --rev=*) build_rev=${1#--rev=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
cmdline="scripts/bench-compare.sh${build_rev:+ --rev $build_rev}${args[*]:+ ${args[*]}}"
set -- ${args[@]+"${args[@]}"}

command -v python3 >/dev/null || die "python3 is needed"
command -v cargo >/dev/null || die "cargo is needed (a Rust toolchain: https://rustup.rs)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is needed: apt-get install time"
/usr/bin/time -f '%e %M' true 2>/dev/null || die "/usr/bin/time is not GNU time (needs -f '%e %M'): apt-get install time"
JQ=${JQ:-/usr/bin/jq}
[[ -x $JQ ]] || die "$JQ is needed: apt-get install jq (or set JQ=/path/to/jq)"

# Check the options before building anything.
python3 scripts/bench_compare.py --plan-only "$@"

started=$(date +%s)  # the whole run, build included, for the report
src_dir=.
if [[ -n $build_rev ]]; then
  commit=$(git rev-parse --verify --quiet "$build_rev^{commit}") || die "--rev $build_rev: not a commit"
  rev=$(git rev-parse --short "$commit")
  src_dir=bench-data/compare/src
  note "exporting $rev (git archive) into $src_dir ..."
  rm -rf "$src_dir.tmp" && mkdir -p "$src_dir.tmp"
  git archive "$commit" | tar -x -C "$src_dir.tmp"
  rm -rf "$src_dir" && mv "$src_dir.tmp" "$src_dir"
  export CARGO_TARGET_DIR=$PWD/bench-data/compare/target
else
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ -n $(git status --porcelain --untracked-files=no -- src benches Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    rev="$rev with uncommitted changes"
  fi
fi

note "building evscope (cargo build --release) and benches/fold.rs in $src_dir ..."
hint=""
[[ -n $build_rev ]] || hint=" (work in progress in the tree? --rev HEAD builds the last commit)"
(cd "$src_dir" && cargo build --release --quiet) || die "cargo build --release failed$hint"
fold_bench=$(cd "$src_dir" && cargo bench --bench fold --no-run --message-format=json-render-diagnostics 2>/dev/null |
  python3 -c '
import json, sys
exe = ""
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "fold" and m.get("executable"):
        exe = m["executable"]
print(exe)') || die "cargo bench --bench fold --no-run failed"
[[ -n $fold_bench ]] || die "could not find the benches/fold.rs executable"
evscope_bin=$(cd "$src_dir" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/evscope
[[ -x $evscope_bin ]] || die "no evscope binary at $evscope_bin"

# Copy the binaries so that a rebuild by someone else during the run does not
# change what is measured.
run_dir=bench-data/compare/run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$run_dir/bin"
cp "$evscope_bin" "$run_dir/bin/evscope"
cp "$fold_bench" "$run_dir/bin/fold-bench"

if [[ -n ${JAQ:-} ]]; then
  [[ -x $JAQ ]] || die "JAQ=$JAQ is not an executable"
else
  JAQ=bench-data/tools/bin/jaq
  if [[ ! -x $JAQ ]]; then
    note "installing the jaq CLI: cargo install jaq --locked --root bench-data/tools (a few minutes, once) ..."
    env -u CARGO_TARGET_DIR cargo install jaq --locked --root bench-data/tools --quiet ||
      die "cargo install jaq failed (it needs network access to crates.io; or set JAQ=/path/to/jaq)"
  fi
fi
note "jaq: $("$JAQ" --version), jq: $("$JQ" --version), evscope: $rev"
note "build and setup took $(($(date +%s) - started)) s"

rc=0
python3 scripts/bench_compare.py \
  --evscope "$run_dir/bin/evscope" --fold-bench "$run_dir/bin/fold-bench" \
  --jaq "$JAQ" --jq "$JQ" --evscope-rev "$rev" --run-dir "$run_dir" \
  --cmdline "$cmdline" --started-epoch "$started" "$@" || rc=$?
rm -rf "${run_dir:?}/bin"  # the copies are big; the programs and stderr files stay
exit "$rc"
