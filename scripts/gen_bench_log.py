#!/usr/bin/env python3
"""Write a large, deterministic JSONL event log for benchmarks.

    python3 scripts/gen_bench_log.py N OUT.jsonl [--accounts K] [--seed S]

N events (ids 1..N) of four types, folded by assets/examples/bench.jq:

    UserSignedUp {email, name, plan}
    Credited     {email, amount}
    LoggedIn     {email, ip}
    UserDeleted  {email}

By default the user population grows: about half of all events are sign-ups
and few users are deleted, so 1M events end with roughly 470k users. With
--accounts K the events range over a fixed pool of K users (a deleted user
may sign up again), so the state stays bounded whatever N is.

Every Credited, LoggedIn and UserDeleted names a user who exists at that
point. Timestamps are synthetic (from 2026-01-05T09:00:00Z, a few seconds
apart). The output is the same bytes on every run. OUT may be "-" for
standard output. Put big logs in bench-data/ (ignored by git).
"""

import argparse
import calendar
import random
import sys
import time

START = calendar.timegm((2026, 1, 5, 9, 0, 0))

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken",
         "Dennis", "Frances", "John", "Radia", "Tim", "Hedy", "Niklaus", "Leslie",
         "José", "Zoë", "Søren", "Chloé", "Björn", "Łukasz", "Priya", "Kwame"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton",
        "Thompson", "Ritchie", "Allen", "McCarthy", "Perlman", "Berners-Lee",
        "Lamarr", "Wirth", "Lamport", "Müller", "García", "Nørgaard", "Okafor"]
ASCII = {"José": "jose", "Zoë": "zoe", "Søren": "soren", "Chloé": "chloe",
         "Björn": "bjorn", "Łukasz": "lukasz", "Müller": "muller", "García": "garcia",
         "Nørgaard": "norgaard"}
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.io"]
PLANS = ["free", "free", "free", "pro", "pro", "team"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, help="number of events")
    ap.add_argument("out", help="output file (.jsonl), or - for stdout")
    ap.add_argument("--accounts", type=int, metavar="K",
                    help="use a fixed pool of K users (bounded state)")
    ap.add_argument("--seed", type=int, default=20260105)
    args = ap.parse_args()
    if args.n < 0 or (args.accounts is not None and args.accounts < 1):
        ap.error("N must be >= 0 and K >= 1")

    rng = random.Random(args.seed)
    rand = rng.random

    # Per-user name/email, made on first use. Index = user number (stream user-N).
    names = []
    emails = []

    def make_user(i):
        f = FIRST[int(rand() * len(FIRST))]
        l = LAST[int(rand() * len(LAST))]
        d = DOMAINS[int(rand() * len(DOMAINS))]
        local = f"{ASCII.get(f, f).lower()}.{ASCII.get(l, l).lower()}.{i}"
        names.append(f"{f} {l}")
        emails.append(f"{local}@{d}")

    # Live users: a list plus each user's position in it, for O(1)
    # random choice and O(1) removal (swap with the last one).
    alive = []
    pos = {}

    def add_alive(i):
        pos[i] = len(alive)
        alive.append(i)

    def remove_alive(i):
        p = pos.pop(i)
        last = alive.pop()
        if last != i:
            alive[p] = last
            pos[last] = p

    names.append(None)   # user numbers start at 1
    emails.append(None)
    pool = args.accounts
    if pool:
        for i in range(1, pool + 1):
            make_user(i)

    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="\n")
    t = START
    last_t = None
    ts = ""
    buf = []
    started = time.perf_counter()
    for ev_id in range(1, args.n + 1):
        t += int(rand() * 4)           # 0..3 s between events
        if t != last_t:
            ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
            last_t = t
        r = rand()
        if pool:
            u = int(rand() * pool) + 1
            if u not in pos:
                kind = 0               # a free slot: somebody signs up
            elif r < 0.55:
                kind = 1
            elif r < 0.97:
                kind = 2
            else:
                kind = 3
        else:
            if not alive or r < 0.50:
                kind = 0
                make_user(len(names))
                u = len(names) - 1
            else:
                u = alive[int(rand() * len(alive))]
                kind = 1 if r < 0.77 else (2 if r < 0.97 else 3)
        email = emails[u]
        if kind == 0:
            add_alive(u)
            buf.append(f'{{"id":{ev_id},"type":"UserSignedUp","stream":"user-{u}",'
                       f'"time":"{ts}","data":{{"email":"{email}","name":"{names[u]}",'
                       f'"plan":"{PLANS[int(rand() * 6)]}"}}}}\n')
        elif kind == 1:
            buf.append(f'{{"id":{ev_id},"type":"Credited","stream":"user-{u}",'
                       f'"time":"{ts}","data":{{"email":"{email}",'
                       f'"amount":{int(rand() * 500) * 10 + 10}}}}}\n')
        elif kind == 2:
            ip = int(rand() * 4294967296)
            buf.append(f'{{"id":{ev_id},"type":"LoggedIn","stream":"user-{u}",'
                       f'"time":"{ts}","data":{{"email":"{email}",'
                       f'"ip":"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}"}}}}\n')
        else:
            remove_alive(u)
            buf.append(f'{{"id":{ev_id},"type":"UserDeleted","stream":"user-{u}",'
                       f'"time":"{ts}","data":{{"email":"{email}"}}}}\n')
        if len(buf) >= 8192:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))
    if out is not sys.stdout:
        out.close()
    print(f"{args.n} events, {len(alive)} live users at the end, "
          f"{time.perf_counter() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
