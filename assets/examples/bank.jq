# Reducer for bank.jsonl / bank.db: a small bank ledger.
#
#   evscope assets/examples/bank.jsonl --reducer assets/examples/bank.jq
#
# For every event, `.` is the state before it and `$event` the event
# ({id, type, stream, time, data}); the output is the state after it.
# The reducer enforces the bank's rules with error(...): an event that
# breaks one (an overdraft, money moved to or from a closed account, ...)
# is marked with the message, and the state stays as it was.
#
# Amounts are integer cents, so sums are exact.
#
# Events:
#   AccountOpened {account, owner, overdraft_limit?}
#   Deposited     {account, amount}
#   Withdrawn     {account, amount}
#   TransferMade  {from, to, amount}
#   AccountClosed {account}

# The state before the first event.
def init: {
  accounts: {},   # account id -> {owner, balance, overdraft_limit, status, opened, closed?}
  totals: {deposited: 0, withdrawn: 0, transferred: 0, open: 0, closed: 0}
};

# The account $id, which must exist and be open.
def open_account($id):
  .accounts[$id] as $a
  | if $a == null then error("no such account: \($id)")
    elif $a.status != "open" then error("account \($id) is closed")
    else $a end;

def positive($amount):
  if ($amount | type) != "number" or $amount <= 0 then error("invalid amount: \($amount)") else . end;

# Put $amount cents into account $id.
def credit($id; $amount):
  positive($amount)
  | open_account($id) as $a
  | .accounts[$id].balance = $a.balance + $amount;

# Take $amount cents out of account $id. The balance may go below zero,
# but not below minus the account's overdraft limit.
def debit($id; $amount):
  positive($amount)
  | open_account($id) as $a
  | if $a.balance + $a.overdraft_limit < $amount then
      error("overdraft: account \($id) balance \($a.balance), withdrawal \($amount)")
    else
      .accounts[$id].balance = $a.balance - $amount
    end;

$event.data as $d
| if $event.type == "AccountOpened" then
    if .accounts[$d.account] != null then error("account \($d.account) already exists")
    else
      .accounts[$d.account] = {
        owner: $d.owner,
        balance: 0,
        overdraft_limit: ($d.overdraft_limit // 0),
        status: "open",
        opened: $event.time
      }
      | .totals.open += 1
    end

  elif $event.type == "Deposited" then
    credit($d.account; $d.amount)
    | .totals.deposited += $d.amount

  elif $event.type == "Withdrawn" then
    debit($d.account; $d.amount)
    | .totals.withdrawn += $d.amount

  elif $event.type == "TransferMade" then
    if $d.from == $d.to then error("transfer from \($d.from) to itself")
    else
      debit($d.from; $d.amount)        # if either step fails, the whole event fails
      | credit($d.to; $d.amount)
      | .totals.transferred += $d.amount
    end

  elif $event.type == "AccountClosed" then
    open_account($d.account) as $a
    | if $a.balance != 0 then
        error("account \($d.account) still holds \($a.balance) cents")
      else
        .accounts[$d.account].status = "closed"
        | .accounts[$d.account].closed = $event.time
        | .totals.open -= 1
        | .totals.closed += 1
      end

  else . end   # unknown event types leave the state as it is
