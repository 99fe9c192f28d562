# Reducer for the benchmark logs written by scripts/gen_bench_log.py.
#
#   python3 scripts/gen_bench_log.py 1000000 bench-data/1m.jsonl
#   evscope bench-data/1m.jsonl --reducer assets/examples/bench.jq
#
# One entry per user, keyed by e-mail. Kept deliberately simple: it measures
# the cost of folding (one small update per event on a large state).
#
# Events: UserSignedUp {email, name, plan}, Credited {email, amount},
#         LoggedIn {email, ip}, UserDeleted {email}

def init: {users: {}};

$event.data.email as $email
| if $event.type == "UserSignedUp" then
    .users[$email] = {name: $event.data.name, plan: $event.data.plan, credits: 0, logins: 0}
  elif $event.type == "Credited" then
    .users[$email].credits += $event.data.amount
  elif $event.type == "LoggedIn" then
    .users[$email].logins += 1
    | .users[$email].last_ip = $event.data.ip
  elif $event.type == "UserDeleted" then
    del(.users[$email])
  else . end
