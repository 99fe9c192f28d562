# Reducer for cart.jsonl / cart.db: shopping carts that become orders.
#
#   evscope assets/examples/cart.jsonl --reducer assets/examples/cart.jq
#
# For every event, `.` is the state before it and `$event` the event
# ({id, type, stream, time, data}); the output is the state after it.
# Open carts live under .carts; a checked-out cart is removed from there
# (del) and reappears under .orders, so the diff of a CheckedOut event shows
# the move. Prices are integer cents.
#
# Events:
#   CartCreated     {cart, customer}
#   ItemAdded       {cart, sku, name, qty, price}
#   ItemRemoved     {cart, sku}
#   QuantityChanged {cart, sku, qty}        (qty 0 removes the line)
#   CheckedOut      {cart, total?}          (total, when given, must match)
#   CartAbandoned   {cart}

# The state before the first event.
def init: {
  carts: {},       # cart id -> {customer, created, items: {sku: {name, qty, price}}, total}
  orders: {},      # cart id -> the cart as it was checked out, plus checked_out
  customers: {},   # customer -> {orders, spent}
  stats: {created: 0, checked_out: 0, abandoned: 0, revenue: 0}
};

# Fail unless $c is an open cart.
def need_cart($c):
  if .carts[$c] == null then error("no open cart \($c)") else . end;

# Recompute a cart's total from its lines (qty * price, in cents).
def retotal:
  .total = ([.items[] | .qty * .price] | add // 0);

$event.data as $d
| if $event.type == "CartCreated" then
    if .carts[$d.cart] != null or .orders[$d.cart] != null then error("cart \($d.cart) already exists")
    else
      .carts[$d.cart] = {customer: $d.customer, created: $event.time, items: {}, total: 0}
      | .stats.created += 1
    end

  elif $event.type == "ItemAdded" then
    need_cart($d.cart)
    | .carts[$d.cart] |= (
        if .items[$d.sku] == null then
          .items[$d.sku] = {name: $d.name, qty: $d.qty, price: $d.price}
        else
          .items[$d.sku].qty += $d.qty      # same product again: more of it
        end
        | retotal
      )

  elif $event.type == "ItemRemoved" then
    need_cart($d.cart)
    | .carts[$d.cart] |= (del(.items[$d.sku]) | retotal)

  elif $event.type == "QuantityChanged" then
    need_cart($d.cart)
    | if .carts[$d.cart].items[$d.sku] == null then error("\($d.sku) is not in \($d.cart)")
      else
        .carts[$d.cart] |= (
          if $d.qty == 0 then del(.items[$d.sku]) else .items[$d.sku].qty = $d.qty end
          | retotal
        )
      end

  elif $event.type == "CheckedOut" then
    need_cart($d.cart)
    | .carts[$d.cart] as $cart
    | if $d.total != null and $d.total != $cart.total then
        error("checkout total \($d.total) does not match cart total \($cart.total)")
      else
        .orders[$d.cart] = ($cart + {checked_out: $event.time})
        | del(.carts[$d.cart])
        | .customers[$cart.customer].orders += 1
        | .customers[$cart.customer].spent += $cart.total
        | .stats.checked_out += 1
        | .stats.revenue += $cart.total
      end

  elif $event.type == "CartAbandoned" then
    need_cart($d.cart)
    | del(.carts[$d.cart])
    | .stats.abandoned += 1

  else . end   # unknown event types leave the state as it is
