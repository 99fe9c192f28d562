#!/usr/bin/env python3
"""Generate evscope's bundled example logs under assets/examples/.

    python3 scripts/gen_examples.py [OUT_DIR]      (default: assets/examples)

Writes, for each of the three domains (saas, bank, cart), a JSONL log and a
SQLite copy of it (table `events`), plus two test logs: hostile.jsonl (text
that attacks terminals and JSON pointers) and bad.jsonl (lines evscope must
report as invalid). The reducers (*.jq) are hand-written and live next to
the logs; this script does not touch them.

Everything is deterministic: each log has its own fixed seed and a synthetic
clock, so every run writes the same bytes (the .db files are the same for a
given SQLite version).
"""

import json
import os
import random
import sqlite3
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


class Clock:
    """Synthetic time: starts at START and moves forward by seeded amounts."""

    def __init__(self, rng):
        self.rng = rng
        self.t = START

    def tick(self, lo=5, hi=600):
        self.t += timedelta(seconds=self.rng.randint(lo, hi))
        return self.now()

    def now(self):
        return self.t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Log:
    """Collects events with ascending 1-based ids."""

    def __init__(self, clock):
        self.clock = clock
        self.events = []

    def emit(self, type_, stream, data, lo=5, hi=600):
        ev = {
            "id": len(self.events) + 1,
            "type": type_,
            "stream": stream,
            "time": self.clock.tick(lo, hi),
            "data": data,
        }
        self.events.append(ev)
        return ev


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path, events):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for ev in events:
            f.write(compact(ev))
            f.write("\n")


def write_sqlite(path, events):
    for p in (path, path + "-journal", path + "-wal", path + "-shm"):
        if os.path.exists(p):
            os.remove(p)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute(
            "CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT NOT NULL,"
            " stream TEXT, time TEXT, data TEXT NOT NULL)"
        )
        con.executemany(
            "INSERT INTO events(id, type, stream, time, data) VALUES (?, ?, ?, ?, ?)",
            [(e["id"], e["type"], e["stream"], e["time"], compact(e["data"])) for e in events],
        )
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()


# ---------------------------------------------------------------------------
# People. Display names mix plain ASCII, accents, CJK and a little emoji;
# each comes with an ASCII form for e-mail addresses.

FIRST = [
    ("Ada", "ada"), ("José", "jose"), ("Zoë", "zoe"), ("Chloé", "chloe"),
    ("Søren", "soren"), ("Łukasz", "lukasz"), ("Priya", "priya"), ("Ana", "ana"),
    ("Mateo", "mateo"), ("Ngozi", "ngozi"), ("Björn", "bjorn"), ("Aoife", "aoife"),
    ("Tomás", "tomas"), ("Fatima", "fatima"), ("Grace", "grace"), ("Kwame", "kwame"),
    ("Irène", "irene"), ("Dmitri", "dmitri"), ("Leïla", "leila"), ("Oscar", "oscar"),
    ("Émile", "emile"), ("Hannah", "hannah"), ("Rafael", "rafael"), ("Yusuf", "yusuf"),
]
LAST = [
    ("Lovelace", "lovelace"), ("Álvarez", "alvarez"), ("Müller", "muller"),
    ("Dubois", "dubois"), ("Nørgaard", "norgaard"), ("Kowalski", "kowalski"),
    ("Sharma", "sharma"), ("Souza", "souza"), ("García", "garcia"),
    ("Okafor", "okafor"), ("Ångström", "angstrom"), ("O'Brien", "obrien"),
    ("Núñez", "nunez"), ("Haddad", "haddad"), ("Hopper", "hopper"),
    ("Mensah", "mensah"), ("Lefèvre", "lefevre"), ("Petrov", "petrov"),
    ("Çelik", "celik"), ("Nakamura", "nakamura"),
]
FULL = [  # names written without a first/last split
    ("王芳", "wang.fang"), ("佐藤 健", "sato.ken"), ("김민준", "kim.minjun"),
    ("Nguyễn Thị Lan", "lan.nguyen"), ("李雷", "li.lei"), ("山田 花子", "yamada.hanako"),
    ("Αλέξανδρος Παππάς", "alexandros.pappas"), ("Ольга Иванова", "olga.ivanova"),
]
EMOJI = ["🚀", "✨", "🌱", "🎧", "☕"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.io"]


class People:
    def __init__(self, rng):
        self.rng = rng
        self.used = set()

    def new(self):
        rng = self.rng
        if rng.random() < 0.15:
            name, local = rng.choice(FULL)
        else:
            (f, fa), (l, la) = rng.choice(FIRST), rng.choice(LAST)
            name, local = f"{f} {l}", f"{fa}.{la}"
        if rng.random() < 0.06:
            name = f"{name} {rng.choice(EMOJI)}"
        domain = rng.choice(DOMAINS)
        email = f"{local}@{domain}"
        n = 2
        while email in self.used:
            email = f"{local}{n}@{domain}"
            n += 1
        self.used.add(email)
        return name, email


# ---------------------------------------------------------------------------
# 1. SaaS: users sign up, register applications, the applications' SQL
# queries are ingested and some are flagged as suspicious.

TABLES = ["orders", "customers", "invoices", "products", "sessions", "payments", "events"]
COLUMNS = ["id", "status", "created_at", "total", "email", "country", "amount"]
APP_NAMES = [
    "billing-api", "Analytics Dashboard", "inventory-sync", "Café Orders",
    "東京 inventory", "mobile-backend", "support-desk", "Reporting ✨",
    "checkout-service", "crm-lite", "Façade gateway", "data-export",
    "partner-portal", "Kundenportal", "payroll", "search-indexer",
]
PLANS = ["free", "pro", "team"]

# (sql, reason) pairs; reason None means a normal query.
SUSPICIOUS = [
    ("SELECT * FROM users WHERE name = '' OR '1'='1'", "sql_injection"),
    ("SELECT id FROM products WHERE id = 7; DROP TABLE orders; --", "stacked_query"),
    ("SELECT email FROM customers UNION SELECT username || ':' || password FROM admins",
     "union_select"),
    ("SELECT password_hash, email FROM users", "reads_credentials"),
    ("SELECT * FROM orders WHERE note LIKE '%' || (SELECT token FROM api_keys LIMIT 1) || '%'",
     "sql_injection"),
]


def saas_query(rng):
    """A normal SQL query and its duration in ms."""
    t = rng.choice(TABLES)
    kind = rng.random()
    if kind < 0.45:
        c = rng.choice(COLUMNS)
        sql = f"SELECT * FROM {t} WHERE {c} = $1 LIMIT {rng.choice([10, 20, 50, 100])}"
    elif kind < 0.65:
        sql = f"UPDATE {t} SET status = $1 WHERE id = $2"
    elif kind < 0.80:
        sql = f"INSERT INTO {t} (id, payload) VALUES ($1, $2)"
    elif kind < 0.95:
        c = rng.choice(COLUMNS)
        sql = f"SELECT {c}, count(*) FROM {t} GROUP BY {c} ORDER BY 2 DESC"
    else:
        sql = f"SELECT * FROM {t}"  # a full scan: sometimes slow
    ms = max(1, int(rng.lognormvariate(3.0, 1.0)))
    return sql, ms


def gen_saas(seed=1, target=1800):
    rng = random.Random(seed)
    log = Log(Clock(rng))
    people = People(rng)
    users = {}      # email -> {"plan", "apps": [...], "n"}
    user_list = []  # emails in signup order
    apps = {}       # app_id -> {"owner", "n"}
    app_list = []   # live app ids
    pending = []    # [events_to_wait, flag_data, stream]
    next_query = 1
    app_seq = 0
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"

    while len(log.events) < target:
        # Flags raised by the "analyser" a few events after the query.
        for p in pending:
            p[0] -= 1
        ready = [p for p in pending if p[0] <= 0]
        if ready:
            p = ready[0]
            pending.remove(p)
            log.emit("QueryFlagged", p[2], p[1], lo=1, hi=30)
            continue

        r = rng.random()
        if not user_list or r < 0.05:
            name, email = people.new()
            plan = rng.choices(PLANS, weights=[6, 3, 1])[0]
            users[email] = {"plan": plan, "apps": [], "n": len(user_list) + 1}
            user_list.append(email)
            log.emit("UserSignedUp", f"user-{users[email]['n']}",
                     {"email": email, "name": name, "plan": plan})
        elif not app_list or r < 0.10:
            candidates = [e for e in user_list[-40:] if len(users[e]["apps"]) < 3]
            if not candidates:
                continue
            email = rng.choice(candidates)
            app_seq += 1
            app_id = "app_" + "".join(rng.choice(alphabet) for _ in range(6))
            apps[app_id] = {"owner": email, "n": app_seq}
            app_list.append(app_id)
            users[email]["apps"].append(app_id)
            log.emit("ApplicationRegistered", f"app-{app_seq}",
                     {"email": email, "app_id": app_id, "name": rng.choice(APP_NAMES)})
        elif r < 0.125:
            email = rng.choice(user_list)
            old = users[email]["plan"]
            new = rng.choice([p for p in PLANS if p != old])
            users[email]["plan"] = new
            log.emit("PlanChanged", f"user-{users[email]['n']}",
                     {"email": email, "from": old, "to": new})
        elif r < 0.132 and len(app_list) > 5:
            app_id = rng.choice(app_list)
            owner = apps[app_id]["owner"]
            app_list.remove(app_id)
            users[owner]["apps"].remove(app_id)
            log.emit("ApplicationDeleted", f"app-{apps[app_id]['n']}",
                     {"email": owner, "app_id": app_id})
        else:
            # Recently registered applications are busier.
            app_id = app_list[min(len(app_list) - 1, int(len(app_list) * rng.random() ** 0.6))]
            qid = f"q_{next_query:06d}"
            next_query += 1
            reason = None
            if rng.random() < 0.025:
                sql, reason = rng.choice(SUSPICIOUS)
                ms = rng.randint(2, 400)
            else:
                sql, ms = saas_query(rng)
                if sql.startswith("SELECT * FROM") and " WHERE " not in sql:
                    ms = rng.randint(800, 12000)
                    if ms > 5000:
                        reason = "slow_query"
            stream = f"app-{apps[app_id]['n']}"
            log.emit("QueryIngested", stream,
                     {"app_id": app_id, "query_id": qid, "sql": sql, "duration_ms": ms},
                     lo=1, hi=90)
            if reason:
                pending.append([rng.randint(1, 4),
                                {"app_id": app_id, "query_id": qid, "reason": reason}, stream])
    # Flags still pending at the end are dropped (the analyser had not run yet).
    return log.events


# ---------------------------------------------------------------------------
# 2. Bank ledger. The generator keeps its own balances so that almost every
# withdrawal and transfer is covered; about 2% deliberately are not (the
# reducer rejects them with an overdraft error), plus a few other mistakes
# (deposit to a closed account, closing an account that still holds money).

def gen_bank(seed=2, target=1000):
    rng = random.Random(seed)
    log = Log(Clock(rng))
    people = People(rng)
    acc = {}        # id -> {"n", "balance", "limit", "open"}
    open_ids = []
    closed_ids = []
    n_acc = 0
    mistakes = 0    # events the generator knows the reducer will reject

    def stream(a):
        return f"account-{acc[a]['n']}"

    def available(a):
        return acc[a]["balance"] + acc[a]["limit"]

    def cents(lo, hi):
        return rng.randint(lo, hi) * 100 + rng.choice([0, 0, 0, 50, 99, rng.randint(1, 99)])

    while len(log.events) < target:
        r = rng.random()
        if len(open_ids) < 3 or (r < 0.05 and len(open_ids) < 60):
            n_acc += 1
            a = f"acc-{n_acc:03d}"
            owner, _ = people.new()
            data = {"account": a, "owner": owner}
            limit = 0
            if rng.random() < 0.4:
                limit = rng.choice([10000, 25000, 50000, 100000])
                data["overdraft_limit"] = limit
            acc[a] = {"n": n_acc, "balance": 0, "limit": limit, "open": True}
            open_ids.append(a)
            log.emit("AccountOpened", f"account-{n_acc}", data)
            amount = cents(20, 3000)
            acc[a]["balance"] += amount
            log.emit("Deposited", f"account-{n_acc}", {"account": a, "amount": amount})
        elif r < 0.35:
            a = rng.choice(open_ids)
            amount = cents(5, 2500)
            acc[a]["balance"] += amount
            log.emit("Deposited", stream(a), {"account": a, "amount": amount})
        elif r < 0.65:
            a = rng.choice(open_ids)
            if rng.random() < 0.03:
                amount = available(a) + cents(1, 400)       # too much: overdraft error
                mistakes += 1
            elif available(a) < 100:
                continue
            else:
                amount = rng.randint(1, min(available(a), 400000))
                acc[a]["balance"] -= amount
            log.emit("Withdrawn", stream(a), {"account": a, "amount": amount})
        elif r < 0.96:
            a, b = rng.sample(open_ids, 2)
            if rng.random() < 0.03:
                amount = available(a) + cents(1, 800)       # too much: overdraft error
                mistakes += 1
            elif available(a) < 100:
                continue
            else:
                amount = rng.randint(1, min(available(a), 300000))
                acc[a]["balance"] -= amount
                acc[b]["balance"] += amount
            log.emit("TransferMade", stream(a), {"from": a, "to": b, "amount": amount})
        elif r < 0.985 and len(open_ids) > 8:
            a = rng.choice(open_ids)
            if acc[a]["balance"] != 0 and rng.random() < 0.25:
                # Closing too early is rejected; the clerk then settles and retries.
                log.emit("AccountClosed", stream(a), {"account": a})
                mistakes += 1
            b = acc[a]["balance"]
            if b > 0:
                log.emit("Withdrawn", stream(a), {"account": a, "amount": b}, lo=30, hi=300)
            elif b < 0:
                log.emit("Deposited", stream(a), {"account": a, "amount": -b}, lo=30, hi=300)
            acc[a]["balance"] = 0
            acc[a]["open"] = False
            open_ids.remove(a)
            closed_ids.append(a)
            log.emit("AccountClosed", stream(a), {"account": a}, lo=5, hi=120)
        elif closed_ids and rng.random() < 0.2:
            a = rng.choice(closed_ids)                      # deposit to a closed account
            log.emit("Deposited", stream(a), {"account": a, "amount": cents(1, 200)})
            mistakes += 1
    return log.events, mistakes


# ---------------------------------------------------------------------------
# 3. Shopping carts: customers fill carts, change their minds, and either
# check out (the cart becomes an order) or abandon the cart.

CATALOG = [
    ("TEA-EARL-250", "Earl Grey tea 250g", 690),
    ("TEA-MATCHA-100", "抹茶 matcha 100g", 1450),
    ("COF-ESP-1KG", "Espresso beans 1kg", 2390),
    ("MUG-BLUE", "Blue mug", 1200),
    ("MUG-XL", "XL mug ☕", 1590),
    ("CHOC-70", "Chocolate 70% cacao", 329),
    ("SALSA-JAL", "Jalapeño salsa", 475),
    ("MIX-BRULEE", "Crème brûlée mix", 560),
    ("BOOK-SICP", "Structure and Interpretation of Computer Programs", 4900),
    ("BOOK-DDIA", "Designing Data-Intensive Applications", 3999),
    ("SOCKS-3P", "Socks, 3 pairs", 1299),
    ("CABLE-USBC", "USB-C cable 2m", 899),
    ("KBD-MECH", "Mechanical keyboard", 8900),
    ("PLANT-POTHOS", "Pothos plant 🌱", 1800),
    ("NB-A5-DOT", "A5 dotted notebook", 1150),
    ("PEN-GEL-10", "Gel pens, 10 pack", 799),
]


def gen_cart(seed=3, target=1000):
    rng = random.Random(seed)
    log = Log(Clock(rng))
    people = People(rng)
    customers = []
    carts = {}  # cart id -> {"n", "items": {sku: [qty, price]}}
    n_cart = 0

    while len(log.events) < target:
        r = rng.random()
        if len(carts) < 2 or (r < 0.12 and len(carts) < 15):
            n_cart += 1
            c = f"cart-{n_cart}"
            if not customers or rng.random() < 0.6:
                customers.append(people.new()[1])
            customer = rng.choice(customers)
            carts[c] = {"items": {}}
            log.emit("CartCreated", c, {"cart": c, "customer": customer})
            continue
        c = rng.choice(sorted(carts, key=lambda k: int(k.split("-")[1])))
        items = carts[c]["items"]
        # Near the end of the log nobody finishes, so some carts are still open.
        late = len(log.events) > target - 80
        if not items or r < 0.55 or r >= 0.89 or (late and r >= 0.78):
            sku, name, price = rng.choice(CATALOG)
            qty = rng.choices([1, 2, 3, 5], weights=[10, 4, 2, 1])[0]
            if sku in items:
                items[sku][0] += qty
            else:
                items[sku] = [qty, price]
            log.emit("ItemAdded", c, {"cart": c, "sku": sku, "name": name, "qty": qty,
                                      "price": price}, lo=5, hi=120)
        elif r < 0.67:
            sku = rng.choice(sorted(items))
            del items[sku]
            log.emit("ItemRemoved", c, {"cart": c, "sku": sku}, lo=5, hi=120)
        elif r < 0.78:
            sku = rng.choice(sorted(items))
            qty = rng.choice([q for q in (1, 2, 3, 4, 6) if q != items[sku][0]])
            items[sku][0] = qty
            log.emit("QuantityChanged", c, {"cart": c, "sku": sku, "qty": qty}, lo=5, hi=120)
        elif r < 0.86:
            total = sum(q * p for q, p in items.values())
            log.emit("CheckedOut", c, {"cart": c, "total": total}, lo=10, hi=300)
            del carts[c]
        else:
            log.emit("CartAbandoned", c, {"cart": c}, lo=600, hi=3600)
            del carts[c]
    return log.events


# ---------------------------------------------------------------------------
# Hostile text: terminal escape sequences, invisible and direction-changing
# characters, huge and deep values, keys that need JSON-pointer escaping.

def gen_hostile():
    rng = random.Random(4)
    log = Log(Clock(rng))
    deep = "bottom"
    for i in range(100):
        deep = {"level": 100 - i, "next": deep} if i % 2 else [100 - i, deep]
    lorem = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz     ") for _ in range(20000))
    e = log.emit
    e("Note", "hostile-1", {"text": "copy this \u001b]52;c;aGVsbG8=\u0007 please",
                            "title": "\u001b]0;pwned\u0007"})
    e("Note", "hostile-1", {"text": "before\u001b[2J\u001b[Hafter",
                            "color": "\u001b[31mred\u001b[0m \u001b[1;5mbold blink\u001b[m",
                            "cursor": "\u001b[10A\u001b[999C\u001b[6n"})
    e("FileUploaded", "hostile-2", {"name": "invoice_\u202egpj.exe",
                                    "isolates": "\u2066abc\u2069 \u2067\u05e9\u05dc\u05d5\u05dd\u2069",
                                    "marks": "\u200e\u200f\u061c"})
    e("UserSignedUp", "hostile-2", {"email": "admin\u200b@example.com",
                                    "name": "\ufeffBOM\u200c\u200d\u2060joined",
                                    "plan": "free"})
    e("Note", "hostile-3", {"text": "line one\u2028line two\u2029paragraph\u0085next line",
                            "newlines": "a\nb\r\nc\rd"})
    e("Note", "hostile-3", {"text": "tab\there\tand\tthere", "cr": "progress 10%\rprogress 99%",
                            "bell": "ding\u0007dong", "del": "rub\u007fout",
                            "backspace": "abc\b\b\bxyz", "nul": "nul\u0000byte",
                            "formfeed": "page\u000cbreak", "vt": "v\u000btab"})
    e("Note", "hostile-4", {"c1_csi": "\u009b31mred via C1\u009b0m",
                            "c1_osc": "\u009d0;c1 title\u009c",
                            "c1_misc": "\u0080\u0084\u0090\u0098\u009f"})
    e("Note", "hostile-4", {"hyperlink": "\u001b]8;;https://evil.example/\u0007click me\u001b]8;;\u0007",
                            "dcs": "\u001bP1$r0m\u001b\\",
                            "keypad": "\u001b=\u001b>"})
    e("Blob", "hostile-5", {"long": lorem, "no_spaces": "x" * 5000,
                            "wide": "全角文字" * 500})
    e("Deep", "hostile-5", {"deep": deep})
    e("Pointers", "hostile-6", {"a/b": 1, "m~n": 2, "~1": 3, "/": 4, "~0~1/": 5,
                                "~": {"/": {"~/": "both"}}, "": {"": "empty keys"},
                                "a.b": 6, "[0]": 7, "0": 8, " ": 9})
    e("Pointers", "hostile-6", {"a/b": 10, "": {"": "empty key changed", "x": "new"},
                                "~": {"/": {"~/": "both, changed"}}})
    e("Keys\u001b[2J", "hostile-7\u202e", {"\u001b]0;key title\u0007": "escape in a key",
                                           "\u202ekey": "bidi in a key", "k\u200bey": "zwsp",
                                           "tab\tkey": "tab in a key", "nl\nkey": "newline"})
    e("Unicode", "hostile-8", {"emoji": "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽",
                               "combining": "e\u0301 a\u0308 n\u0303",
                               "zalgo": "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334a\u0315\u035dl\u0356g\u0353o",
                               "cjk": "漢字かなカナ한글", "rtl": "עברית العربية",
                               "replacement": "\ufffd", "private_use": "\ue000\U000f0000",
                               "astral": "\U0001d54f\U0001f600"})
    e("Raw", "hostile-9", "\u001b]0;data is a bare string\u0007")
    e("Raw", "hostile-9", ["\u001b[2J", {"\u001b[31m": "\u202e"}, None, True, 0])
    e("Note\u2028Type", "hostile-10", {"text": "type contains a line separator"})
    e("Note", "hostile-10", {"text": "the end \u001b[?1049l\u001b[?25l (leave alt screen, hide cursor)"})
    lines = []
    for ev in log.events:
        if ev["stream"] == "hostile-8":
            # One line written fully \u-escaped (surrogate pairs for the emoji).
            lines.append(json.dumps(ev, ensure_ascii=True, separators=(",", ":")))
        else:
            lines.append(compact(ev))
    return log.events, lines


def gen_bad():
    """Lines, as bytes; good events carry id = their line number."""
    t = "2026-01-05T09:%02d:00Z"

    def good(n, type_, data):
        return compact({"id": n, "type": type_, "stream": "cart-1", "time": t % n,
                        "data": data}).encode("utf-8")

    return [
        good(1, "CartCreated", {"cart": "cart-1", "customer": "ada@example.com"}),
        good(2, "ItemAdded", {"cart": "cart-1", "sku": "MUG-BLUE", "qty": 1, "price": 1200}),
        b'{"id":3,"type":"ItemAdded","stream":"cart-1","data":{"cart":"cart-1","sku":"TEA",qty:2}}',
        good(4, "ItemAdded", {"cart": "cart-1", "sku": "CHOC-70", "qty": 2, "price": 329}),
        b'{"id":5,"type":"ItemAdded","stream":"cart-1","data":{"cart":"cart-1","sku":"caf\xff\xfe","qty":1}}',
        b'[6,"ItemAdded",{"cart":"cart-1","sku":"SOCKS-3P"}]',
        b'{"id":7,"stream":"cart-1","data":{"cart":"cart-1","note":"no type"}}',
        b"",
        good(9, "QuantityChanged", {"cart": "cart-1", "sku": "MUG-BLUE", "qty": 3}),
        b'{"id":10,"type":42,"stream":"cart-1","data":{"cart":"cart-1"}}',
        good(11, "ItemRemoved", {"cart": "cart-1", "sku": "CHOC-70"}),
        b'{"id":12,"type":"CheckedOut","stream":"cart-1","data":{"cart":"ca',
    ]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "assets", "examples")
    os.makedirs(out, exist_ok=True)

    saas = gen_saas()
    bank, bank_mistakes = gen_bank()
    cart = gen_cart()
    for name, events in (("saas", saas), ("bank", bank), ("cart", cart)):
        write_jsonl(os.path.join(out, f"{name}.jsonl"), events)
        write_sqlite(os.path.join(out, f"{name}.db"), events)
        print(f"{name}: {len(events)} events", file=sys.stderr)
    print(f"bank: {bank_mistakes} events the reducer should reject", file=sys.stderr)

    hostile, lines = gen_hostile()
    with open(os.path.join(out, "hostile.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    print(f"hostile: {len(hostile)} events", file=sys.stderr)

    bad = gen_bad()
    with open(os.path.join(out, "bad.jsonl"), "wb") as f:
        f.write(b"\n".join(bad))  # no newline after the truncated last line
    print(f"bad: {len(bad)} lines", file=sys.stderr)


if __name__ == "__main__":
    main()
