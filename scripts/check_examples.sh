#!/usr/bin/env bash
# Check the bundled example logs against their reducers, using jq (1.6) as
# the reference implementation of evscope's fold:
#
#   jq -n -S 'reduce inputs as $event (INIT; . as $s | try (REDUCER) catch $s)' LOG
#
# where INIT is the reducer file's `def init` (or {}), and REDUCER is the
# whole reducer file (jq allows definitions inside an expression).
#
# For each example it prints the event count, the number of events whose
# reducer step failed (state left unchanged), the first few error messages and
# a summary of the final state; it checks a few invariants of each domain and
# that the SQLite copy holds the same events as the JSONL file.
# Exits non-zero if a reducer fails to run or a check fails.
#
#   scripts/check_examples.sh            # all examples
#   scripts/check_examples.sh bank       # one of saas bank cart bench hostile bad
set -euo pipefail
cd "$(dirname "$0")/.."
EX=${EX:-assets/examples}
JQ=${JQ:-jq}
failed=0

fail() { echo "  FAIL: $*"; failed=1; }

# The initial state of a reducer file, as a jq expression. The file's main
# expression is run once on null with an event of no known type (which must
# leave its input unchanged) and then `init` is called in the file's scope.
init_expr() {
  local reducer=$1
  if grep -q '^def init:' "$reducer"; then
    printf '({"type":"", "data":{}} as $event | null | %s\n| init)' "$(cat "$reducer")"
  else
    printf '{}'
  fi
}

# The oracle exactly as written in DESIGN.md: prints the final state.
fold_plain() {
  local reducer=$1 log=$2
  "$JQ" -n -S "reduce inputs as \$event ($(init_expr "$reducer"); . as \$s | try ($(cat "$reducer")
) catch \$s)" "$log"
}

# The same fold, also recording which events failed and why:
# prints {events, errors: [{id, type, error}], state}.
fold_counted() {
  local reducer=$1 log=$2
  "$JQ" -n -S "reduce inputs as \$event ({events: 0, errors: [], state: $(init_expr "$reducer")};
    .events += 1
    | ([try (.state | $(cat "$reducer")
          | {ok: .}) catch {err: .}]
       | if length == 0 then {err: \"no output\"} else last end) as \$r
    | if \$r | has(\"ok\") then .state = \$r.ok
      else .errors += [{id: \$event.id, type: \$event.type, error: \$r.err}] end)" "$log"
}

# The SQLite copy must hold exactly the events of the JSONL file.
check_db() {
  local name=$1
  python3 - "$EX/$name.jsonl" "$EX/$name.db" <<'EOF' || fail "$name.db differs from $name.jsonl"
import json, sqlite3, sys
jsonl, db = sys.argv[1], sys.argv[2]
want = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
mode = con.execute("PRAGMA journal_mode").fetchone()[0]
rows = con.execute("SELECT id, type, stream, time, data FROM events ORDER BY id").fetchall()
got = [{"id": i, "type": t, "stream": s, "time": tm, "data": json.loads(d)} for i, t, s, tm, d in rows]
if mode.lower() == "wal":
    sys.exit(f"  {db} is in WAL mode")
if got != want:
    sys.exit(f"  {db}: {len(got)} rows, {jsonl}: {len(want)} lines; contents differ")
print(f"  {db}: {len(rows)} rows, same as the JSONL file (journal_mode={mode})")
EOF
}

# check NAME EXPECT_ERRORS(zero|some) SUMMARY_JQ
check() {
  local name=$1 expect=$2 summary=$3 out plain n nerr
  echo "== $name: $EX/$name.jsonl with $EX/$name.jq"
  if ! out=$(fold_counted "$EX/$name.jq" "$EX/$name.jsonl"); then
    fail "the reducer did not run"; return
  fi
  if ! plain=$(fold_plain "$EX/$name.jq" "$EX/$name.jsonl"); then
    fail "the plain oracle did not run"; return
  fi
  n=$(jq '.events' <<<"$out")
  nerr=$(jq '.errors | length' <<<"$out")
  echo "  events: $n   reducer errors: $nerr"
  if [[ $nerr -gt 0 ]]; then
    jq -r '.errors[:5][] | "    #\(.id) \(.type): \(.error)"' <<<"$out"
    [[ $nerr -gt 5 ]] && echo "    ..."
    echo "  errors by kind:"
    jq -r '.errors | map(.error | gsub("acc-[0-9]+"; "ACC") | gsub("[0-9]+"; "N"))
           | group_by(.) | map("    \(length) x \(.[0])")[]' <<<"$out"
  fi
  [[ $expect == zero && $nerr -ne 0 ]] && fail "expected no reducer errors"
  [[ $expect == some && $nerr -eq 0 ]] && fail "expected some reducer errors"
  if [[ "$(jq -c .state <<<"$out")" != "$(jq -c . <<<"$plain")" ]]; then
    fail "the counting fold and the plain oracle disagree"
  fi
  jq -r "$summary" <<<"$plain" | sed 's/^/  /' || fail "summary failed"
  if [[ $(jq -r "$summary" <<<"$plain" | grep -c 'MISMATCH') -ne 0 ]]; then
    fail "an invariant does not hold"
  fi
  check_db "$name"
}

saas_summary='
  "users: \(.users | length), apps: \(.apps | length), stats: \(.stats | tojson)",
  "busiest apps: \([.apps | to_entries[] | {id: .key, name: .value.name, queries: .value.queries}]
                   | sort_by(-.queries, .id) | .[:3] | map("\(.id) \(.name) (\(.queries))") | join(", "))",
  "check stats.users and stats.apps count the users and apps: \(
     if .stats.users == (.users | length) and .stats.apps == (.apps | length) then "ok" else "MISMATCH" end)",
  "check every app is listed under its owner: \(
     . as $s | if all(.apps | to_entries[]; .key as $k | $s.users[.value.owner].apps | index([$k]) != null)
               then "ok" else "MISMATCH" end)"'

bank_summary='
  "accounts: \(.accounts | length) (\(.totals.open) open, \(.totals.closed) closed)",
  "totals: \(.totals | tojson)",
  "lowest balance: \([.accounts | to_entries[] | {id: .key, b: .value.balance, l: .value.overdraft_limit}]
                     | min_by(.b) | "\(.id) \(.b) (limit \(.l))")",
  "check sum of balances = deposited - withdrawn: \(
     if ([.accounts[].balance] | add) == .totals.deposited - .totals.withdrawn then "ok" else "MISMATCH" end)",
  "check no balance below its overdraft limit: \(
     if all(.accounts[]; .balance + .overdraft_limit >= 0) then "ok" else "MISMATCH" end)",
  "check closed accounts hold nothing: \(
     if all(.accounts[] | select(.status == "closed"); .balance == 0) then "ok" else "MISMATCH" end)"'

cart_summary='
  "open carts: \(.carts | length), orders: \(.orders | length), customers: \(.customers | length)",
  "stats: \(.stats | tojson)",
  "biggest order: \(.orders | to_entries | max_by(.value.total) | "\(.key) \(.value.total) cents, \(.value.items | length) lines")",
  "check revenue = sum of order totals: \(
     if ([.orders[].total] | add) == .stats.revenue then "ok" else "MISMATCH" end)",
  "check every total = sum of qty * price: \(
     if all((.carts[], .orders[]); .total == ([.items[] | .qty * .price] | add // 0)) then "ok" else "MISMATCH" end)"'

want=${1:-all}
[[ $want == all || $want == saas ]] && check saas zero "$saas_summary"
[[ $want == all || $want == bank ]] && check bank some "$bank_summary"
[[ $want == all || $want == cart ]] && check cart zero "$cart_summary"

if [[ $want == all || $want == bench ]]; then
  tmp=$(mktemp -d)
  for mode in "" "--accounts 1000"; do
    echo "== bench: 5000 events from scripts/gen_bench_log.py${mode:+ $mode}, with $EX/bench.jq"
    # shellcheck disable=SC2086
    if python3 scripts/gen_bench_log.py 5000 "$tmp/b.jsonl" $mode 2>/dev/null &&
       out=$(fold_counted "$EX/bench.jq" "$tmp/b.jsonl"); then
      jq -r '"  events: \(.events)   reducer errors: \(.errors | length)   users: \(.state.users | length)",
             "  check every user has credits and logins: \(
               if all(.state.users[]; .credits >= 0 and .logins >= 0 and .name != null) then "ok" else "MISMATCH" end)"' <<<"$out"
      [[ $(jq '.errors | length' <<<"$out") -eq 0 ]] || fail "bench.jq reported errors"
      jq -e 'all(.state.users[]; .name != null)' <<<"$out" >/dev/null || fail "a user without a sign-up"
    else
      fail "the bench generator or bench.jq did not run"
    fi
  done
  rm -rf "$tmp"
fi

if [[ $want == all || $want == hostile ]]; then
  echo "== hostile: $EX/hostile.jsonl with the default reducer"
  if n=$(jq -n '[inputs] | length' "$EX/hostile.jsonl") &&
     keys=$(fold_plain assets/default-reducer.jq "$EX/hostile.jsonl" | jq -ac 'keys'); then
    echo "  events: $n   state keys: $keys"
  else
    fail "hostile.jsonl does not fold with assets/default-reducer.jq"
  fi
fi

if [[ $want == all || $want == bad ]]; then
  echo "== bad: $EX/bad.jsonl (meant to be partly unreadable)"
  echo "  lines: $(($(wc -l <"$EX/bad.jsonl") + 1)) ($(wc -c <"$EX/bad.jsonl") bytes, no final newline)"
  if jq -c . "$EX/bad.jsonl" >/dev/null 2>&1; then fail "bad.jsonl parses cleanly with jq"; fi
fi

if [[ $failed -ne 0 ]]; then echo "FAILED"; exit 1; fi
echo "all checks passed"
