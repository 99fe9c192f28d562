# Reducer for saas.jsonl / saas.db: a service that watches its customers'
# SQL queries.
#
#   evscope assets/examples/saas.jsonl --reducer assets/examples/saas.jq
#
# How evscope runs it: for every event, `.` is the state before the event,
# `$event` is the event ({id, type, stream, time, data}), and the output is
# the state after it. An error leaves the state unchanged and is shown on
# the event.
#
# Events:
#   UserSignedUp          {email, name, plan}
#   PlanChanged           {email, from, to}
#   ApplicationRegistered {email, app_id, name}
#   ApplicationDeleted    {email, app_id}
#   QueryIngested         {app_id, query_id, sql, duration_ms}
#   QueryFlagged          {app_id, query_id, reason}

# The state before the first event.
def init: {
  users: {},   # email  -> {name, plan, apps: [app_id...], signed_up}
  apps: {},    # app_id -> {owner, name, registered, queries, total_ms,
               #            max_ms, flagged: [query_id...], last_query}
  stats: {users: 0, apps: 0, queries: 0, flagged: 0, plans: {}, flag_reasons: {}}
};

# Fail unless the application exists: a query for an unknown (or deleted)
# application is a bug upstream, and we want to see it on the event.
def need_app($id):
  if .apps[$id] == null then error("unknown application \($id)") else . end;

def need_user($email):
  if .users[$email] == null then error("unknown user \($email)") else . end;

$event.data as $d
| if $event.type == "UserSignedUp" then
    .users[$d.email] = {name: $d.name, plan: $d.plan, apps: [], signed_up: $event.time}
    | .stats.users += 1
    | .stats.plans[$d.plan] += 1          # a missing counter starts from null, and null + 1 == 1

  elif $event.type == "PlanChanged" then
    need_user($d.email)
    | if .users[$d.email].plan != $d.from then
        error("plan of \($d.email) is \(.users[$d.email].plan), not \($d.from)")
      else
        .users[$d.email].plan = $d.to
        | .stats.plans[$d.from] -= 1
        | .stats.plans[$d.to] += 1
      end

  elif $event.type == "ApplicationRegistered" then
    need_user($d.email)
    | .apps[$d.app_id] = {
        owner: $d.email, name: $d.name, registered: $event.time,
        queries: 0, total_ms: 0, max_ms: 0, flagged: []
      }
    | .users[$d.email].apps += [$d.app_id]
    | .stats.apps += 1

  elif $event.type == "ApplicationDeleted" then
    need_app($d.app_id)
    | .apps[$d.app_id].owner as $owner
    | del(.apps[$d.app_id])
    | .users[$owner].apps |= map(select(. != $d.app_id))
    | .stats.apps -= 1

  elif $event.type == "QueryIngested" then
    need_app($d.app_id)
    | .apps[$d.app_id] |= (
        .queries += 1
        | .total_ms += $d.duration_ms
        | .max_ms = ([.max_ms, $d.duration_ms] | max)
        | .last_query = {query_id: $d.query_id, sql: $d.sql, duration_ms: $d.duration_ms, at: $event.time}
      )
    | .stats.queries += 1

  elif $event.type == "QueryFlagged" then
    need_app($d.app_id)
    | .apps[$d.app_id].flagged += [$d.query_id]
    | .stats.flagged += 1
    | .stats.flag_reasons[$d.reason] += 1

  else . end   # unknown event types leave the state as it is
