#!/usr/bin/env python3
"""Measure evscope, the jaq CLI and jq folding the same logs; print a Markdown table.

Run through scripts/bench-compare.sh, which builds evscope, installs jaq and
passes the paths of the tools here. Options (see --help):

    --quick          sizes 5k 10k 20k 100k; seek/diff measured on 100k
    --with-10m       also a 10M-event log over 100,000 accounts (evscope, plain jaq)
    --sizes LIST     explicit prefix sizes, e.g. 5k,10k,20k (instead of the default set)
    --repeat N       best of N runs per cell (by wall time)
    --timeout S      per-run limit for the quadratic rows (jq, jaq with recovery)
    --rss-cap-mb MB  any run whose resident memory goes over MB is killed

Every tool folds the same log with the same reducer (assets/examples/bench.jq).
jq and jaq run the fold that defines evscope's semantics (README, "Writing a
reducer"):

    jq -n 'reduce inputs as $event (INIT; . as $s | try (REDUCER) catch $s)' LOG

and, as a second row each, the plain fold without error recovery:

    jq -n 'reduce inputs as $event (INIT; REDUCER)' LOG

which gives the same state on these logs (bench.jq rejects no event) but
would abort at the first failing event. evscope runs
`evscope state LOG --reducer bench.jq -c` (cold: no snapshot cache).

Wall time and peak RSS come from `/usr/bin/time -f '%e %M'` around each run.
A watchdog kills a run (its whole process group) at the timeout or when its
resident memory passes the cap; larger sizes are then not run for that row.
The final states of all finished runs of a size are compared (parsed JSON,
keys sorted): "states agree", or the mismatch and the files to diff.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = os.path.join(ROOT, "scripts", "gen_bench_log.py")
REDUCER = "assets/examples/bench.jq"
LONG_TIMEOUT = 1800.0  # safety net for the rows expected to finish (evscope, plain jaq)


# ---------------------------------------------------------------- arguments

def parse_size(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5000, 5k, 1M)")
    n = float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    if n < 1 or n != int(n):
        raise argparse.ArgumentTypeError(f"not a positive whole number of events: {text!r}")
    return int(n)


def size_label(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/bench-compare.sh",
        description="evscope vs the jaq CLI vs /usr/bin/jq: the same logs, the same reducer, "
                    "one machine, one run. Prints a Markdown table and saves it to "
                    "bench-data/compare-YYYYMMDD-HHMM.md.")
    ap.add_argument("--quick", action="store_true",
                    help="sizes 5k 10k 20k 100k, seek/diff on 100k (a few minutes)")
    ap.add_argument("--with-10m", action="store_true",
                    help="add a 10M-event log over 100,000 accounts for evscope and plain jaq "
                         "(~1.6 GB of log; adds about 15 minutes)")
    ap.add_argument("--sizes", type=lambda s: [parse_size(x) for x in s.split(",") if x.strip()],
                    help="comma-separated prefix sizes instead of the default set, e.g. 5k,10k,1M")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="runs per cell; the fastest is shown (default 1)")
    ap.add_argument("--timeout", type=float, default=120.0, metavar="S",
                    help="per-run limit in seconds for jq and jaq-with-recovery (default 120); "
                         "evscope and plain jaq get %d s" % LONG_TIMEOUT)
    ap.add_argument("--rss-cap-mb", type=int, default=6000, metavar="MB",
                    help="kill any run whose resident memory exceeds MB (default 6000; "
                         "jaq with recovery needs ~11 GB for 20k events)")
    ap.add_argument("--no-fold-bench", action="store_true",
                    help="skip evscope's seek/diff measurement (benches/fold.rs)")
    ap.add_argument("--plan-only", action="store_true", help=argparse.SUPPRESS)
    # Filled in by bench-compare.sh.
    for name in ("evscope", "fold-bench", "jaq", "jq", "evscope-rev", "run-dir", "cmdline",
                 "started-epoch"):
        ap.add_argument("--" + name, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.timeout <= 0 or args.rss_cap_mb <= 0:
        ap.error("--timeout and --rss-cap-mb must be positive")
    if args.sizes and args.quick:
        ap.error("--sizes and --quick do not go together")
    if args.sizes:
        args.sizes = sorted(set(args.sizes))
    elif args.quick:
        args.sizes = [5_000, 10_000, 20_000, 100_000]
    else:
        args.sizes = [5_000, 10_000, 20_000, 100_000, 1_000_000]
    return args


# ---------------------------------------------------------------- logs

@dataclass
class Log:
    label: str          # "1M", "10M (100k accounts)"
    events: int
    path: str
    accounts: int = 0   # 0: the growing population (prefixes of one log)


def line_count(path):
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def fresh(path, events):
    """The file exists, is newer than the generator and has `events` lines."""
    return (os.path.exists(path)
            and os.path.getmtime(path) >= os.path.getmtime(GEN)
            and line_count(path) == events)


def generate(events, path, accounts=0):
    cmd = [sys.executable, GEN, str(events), path + ".tmp"]
    if accounts:
        cmd += ["--accounts", str(accounts)]
    say(f"generating {os.path.relpath(path, ROOT)} ({events:,} events"
        f"{f', {accounts:,} accounts' if accounts else ''}) ...")
    subprocess.run(cmd, check=True, cwd=ROOT)
    os.replace(path + ".tmp", path)


def prepare_logs(sizes, with_10m, log_dir):
    """Prefix logs of one generated log (the generator is deterministic, so
    the first N events of the largest log are exactly the N-event log)."""
    os.makedirs(log_dir, exist_ok=True)
    largest = max(sizes)
    big = os.path.join(log_dir, f"bench-{largest}.jsonl")
    if not fresh(big, largest):
        generate(largest, big)
    logs = []
    for n in sizes:
        path = os.path.join(log_dir, f"bench-{n}.jsonl")
        if n != largest and not fresh(path, n):
            with open(big, "rb") as src, open(path + ".tmp", "wb") as dst:
                for i, line in enumerate(src):
                    if i == n:
                        break
                    dst.write(line)
            os.replace(path + ".tmp", path)
        logs.append(Log(size_label(n), n, path))
    if with_10m:
        n, k = 10_000_000, 100_000
        path = os.path.join(log_dir, f"bench-{n}-accounts-{k}.jsonl")
        if not fresh(path, n):
            generate(n, path, accounts=k)
        logs.append(Log(f"{size_label(n)} ({k // 1000}k accounts)", n, path, accounts=k))
    return logs


# ---------------------------------------------------------------- running

@dataclass
class Result:
    kind: str                  # ok | timeout | rsscap | error | skipped | notplanned
    wall: float = 0.0          # s
    rss_mb: float = 0.0
    note: str = ""
    output: str = ""           # file holding the final state (ok only)


def children_rss_kb(pid):
    """Resident set of the processes /usr/bin/time started (its children)."""
    total = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        return 0
    for kid in kids:
        try:
            with open(f"/proc/{kid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def measure(cmd, out_path, err_path, timeout, cap_mb, env=None):
    """One run of cmd under /usr/bin/time, stdout to out_path."""
    time_file = out_path + ".time"
    full = ["/usr/bin/time", "-f", "%e %M", "-o", time_file] + cmd
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=ROOT, env=env, start_new_session=True)
    start = time.monotonic()
    peak_kb = 0
    while True:
        try:
            rc = proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        elapsed = time.monotonic() - start
        rss = children_rss_kb(proc.pid)
        peak_kb = max(peak_kb, rss)
        if elapsed > timeout or rss > cap_mb * 1024:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for leftover in (time_file, out_path):  # partial output of a killed run
                if os.path.exists(leftover):
                    os.remove(leftover)
            if elapsed > timeout:
                return Result("timeout", elapsed, peak_kb / 1024, f"> {timeout:g} s")
            return Result("rsscap", elapsed, rss / 1024,
                          f"killed at {elapsed:.0f} s: RSS > {cap_mb:,} MB")
    try:
        with open(time_file) as f:
            last = f.read().strip().splitlines()[-1]
        os.remove(time_file)
        wall_s, rss_kb = last.split()
        wall, rss_mb = float(wall_s), int(rss_kb) / 1024
    except (OSError, IndexError, ValueError):
        wall, rss_mb = time.monotonic() - start, peak_kb / 1024
    if rc != 0:
        with open(err_path, "rb") as f:
            tail = f.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        return Result("error", wall, rss_mb, f"exit {rc}: " + " | ".join(tail))
    return Result("ok", wall, rss_mb, output=out_path)


@dataclass
class Tool:
    key: str
    label: str
    quadratic: bool             # runs under --timeout, and stops growing after a failure
    max_events: int             # larger logs are not planned for this row
    pooled: bool                # runs on the 10M pooled log
    command: object             # function(log_path) -> argv
    env: object = None          # function(scratch_dir) -> env dict or None
    failed_at: str = ""
    results: dict = field(default_factory=dict)


def make_programs(reducer_path, run_dir):
    """The jq programs for the same fold and the plain fold, as files."""
    with open(os.path.join(ROOT, reducer_path), encoding="utf-8") as f:
        reducer = f.read()
    if re.search(r"^\s*def\s+init\s*:", reducer, re.M):
        # The file's `init`, in the file's own scope: run the main expression
        # once on null with an event of no known type (it must leave its
        # input alone, as bench.jq does), then call init.
        init = '({"type": "", "data": {}} as $event | null | %s\n| init)' % reducer
    else:
        init = "{}"
    same = ("reduce inputs as $event (%s;\n  . as $s | try (%s\n) catch $s)\n" % (init, reducer))
    plain = "reduce inputs as $event (%s;\n  %s\n)\n" % (init, reducer)
    paths = {}
    for name, text in (("same-fold.jq", same), ("plain-fold.jq", plain)):
        paths[name] = os.path.join(run_dir, name)
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(text)
    return paths["same-fold.jq"], paths["plain-fold.jq"]


def evscope_supports(evscope, flag):
    try:
        out = subprocess.run([evscope, "state", "--help"], capture_output=True, text=True,
                             cwd=ROOT, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(r"(^|\s)" + re.escape(flag) + r"\b", out) is not None


def canonical_digest(path):
    with open(path, "rb") as f:
        value = json.loads(f.read())
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    summary = ""
    if isinstance(value, dict) and isinstance(value.get("users"), dict):
        summary = f"{len(value['users']):,} users"
    return hashlib.sha256(text.encode()).hexdigest(), summary


def compare_states(log, tools):
    """'states agree (...)' or a description of the mismatch; True if they agree."""
    done = [(t, t.results[log.label]) for t in tools
            if log.label in t.results and t.results[log.label].kind == "ok"]
    if len(done) < 2:
        return True, f"{log.label}: only {len(done)} tool(s) finished; nothing to compare"
    digests = {}
    summary = ""
    for t, r in done:
        try:
            d, s = canonical_digest(r.output)
        except (OSError, ValueError) as e:
            d, s = f"unreadable ({e})", ""
        digests[t.label] = d
        summary = summary or s
    if len(set(digests.values())) == 1:
        names = ", ".join(t.key for t, _ in done)
        return True, f"{log.label}: states agree ({names}{'; ' + summary if summary else ''})"
    ref = done[0][1].output
    lines = [f"{log.label}: STATES DIFFER"]
    for t, r in done:
        lines.append(f"  {t.key}: sha256 {digests[t.label][:16]}  {os.path.relpath(r.output, ROOT)}")
    lines.append(f"  compare with: diff <(jq -S . {os.path.relpath(ref, ROOT)}) "
                 f"<(jq -S . OTHER) | head")
    return False, "\n".join(lines)


def run_fold_bench(bench_exe, log, run_dir, timeout, cap_mb):
    """benches/fold.rs on one log (same watchdog as the other runs): its
    stdout lines and the parsed figures."""
    scratch = tempfile.mkdtemp(prefix="cache-", dir=run_dir)
    # 300 seeks on every log: a far seek in the 10M log takes tens of
    # milliseconds (it took seconds once, and 30 were run there: the p99
    # was then the slowest seek).
    seeks = "300"
    env = dict(os.environ, EVSCOPE_CACHE_DIR=scratch, EVSCOPE_SEEKS=seeks)
    say(f"[{log.label}] evscope seek/diff (benches/fold.rs, {seeks} seeks) ...")
    out = os.path.join(run_dir, f"fold-bench-{log.events}.txt")
    try:
        r = measure([bench_exe, log.path, REDUCER], out, out + ".stderr", timeout, cap_mb, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with open(out, encoding="utf-8", errors="replace") as f:
        lines = f.read().strip().splitlines()
    if r.kind != "ok":
        return lines, {"error": r.note}
    figures = {}
    pat = re.compile(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms")
    for line in lines:
        m = pat.search(line)
        if line.startswith("seek") and m:
            figures["seek"] = (m.group(1), m.group(2))
            n = re.search(r"(\d+) samples", line)
            figures["samples"] = n.group(1) if n else "?"
        elif line.startswith("thinning level"):
            figures["thinning"] = line
        elif line.startswith("diff") and m:
            figures["diff"] = (m.group(1), m.group(2))
        elif line.startswith("fold:"):
            m2 = re.search(r"([\d.]+) events/s", line)
            if m2:
                figures["fold_eps"] = float(m2.group(1))
        elif line.startswith("peak RSS:"):
            m2 = re.search(r"([\d.]+) MB", line)
            if m2:
                figures["rss"] = float(m2.group(1))
    return lines, figures


# ---------------------------------------------------------------- output

def say(msg):
    print(msg, file=sys.stderr, flush=True)


def events_label(log, noun="events"):
    """'1M events', '10M events (100k accounts)'; noun='-event log': '1M-event log'."""
    text = f"{size_label(log.events)}{' ' if noun == 'events' else ''}{noun}"
    if log.accounts:
        text += f" ({size_label(log.accounts)} accounts)"
    return text


def fmt_wall(s):
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s" if s < 100 else f"{s:.0f} s"


def fmt_rate(events, wall):
    if wall <= 0:
        return "n/a"  # below /usr/bin/time's 0.01 s resolution
    r = events / wall
    digits = len(str(int(r)))
    r = round(r, -max(0, digits - 3))   # 3 significant figures
    return f"{int(r):,}/s"


def fmt_mb(mb):
    return f"{mb:,.0f} MB" if mb < 10_000 else f"{mb / 1024:.1f} GB"


def cell(r, events):
    if r is None or r.kind == "notplanned":
        return "—"
    if r.kind == "ok":
        return f"{fmt_wall(r.wall)} · {fmt_rate(events, r.wall)} · {fmt_mb(r.rss_mb)}"
    if r.kind == "timeout":
        return f"timeout ({r.note})"
    if r.kind == "rsscap":
        return r.note
    if r.kind == "skipped":
        return f"not run ({r.note})"
    return f"failed ({r.note})"


def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        ram = f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    osname = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {ram} RAM, {osname}, "
            f"Linux {platform.release()}")


def tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------- main

def main(argv):
    args = parse_args(argv)
    plan = ", ".join(size_label(n) for n in args.sizes) + (", 10M (100k accounts)" if args.with_10m else "")
    if args.plan_only:
        say(f"plan: sizes {plan}; best of {args.repeat}; timeout {args.timeout:g} s for jq and "
            f"jaq-with-recovery; RSS cap {args.rss_cap_mb:,} MB")
        return 0
    for name in ("evscope", "jaq", "jq", "run_dir"):
        if not getattr(args, name):
            sys.exit(f"bench_compare.py: --{name.replace('_', '-')} missing; "
                     "run scripts/bench-compare.sh instead")

    started = time.monotonic()
    started_at = datetime.datetime.now()
    load_start = loadavg()
    run_dir = args.run_dir
    os.makedirs(run_dir, exist_ok=True)
    logs = prepare_logs(args.sizes, args.with_10m, os.path.join(ROOT, "bench-data", "compare", "logs"))
    same_prog, plain_prog = make_programs(REDUCER, run_dir)

    no_cache = evscope_supports(args.evscope, "--no-cache")
    ev_cmd = [args.evscope, "state", None, "--reducer", REDUCER, "-c"] + (["--no-cache"] if no_cache else [])

    def ev_env(scratch):
        # Cold fold: an empty snapshot cache directory of its own for every run
        # (and --no-cache when this build has it).
        return dict(os.environ, EVSCOPE_CACHE_DIR=scratch)

    jaq_version = tool_version([args.jaq, "--version"])
    jq_version = tool_version([args.jq, "--version"])
    jaq_name = jaq_version                    # "jaq 3.1.2"
    jq_name = jq_version.replace("jq-", "jq ")  # "jq-1.6" -> "jq 1.6"
    prefix_max = 1_000_000
    tools = [
        Tool("evscope", "evscope", False, 10**12, True,
             lambda log: [log if a is None else a for a in ev_cmd], ev_env),
        Tool("jaq", f"{jaq_name}, same fold", True, prefix_max, False,
             lambda log: [args.jaq, "-n", "-c", "-f", same_prog, log]),
        Tool("jaq-plain", f"{jaq_name}, plain reduce", False, 10**12, True,
             lambda log: [args.jaq, "-n", "-c", "-f", plain_prog, log]),
        Tool("jq", f"{jq_name}, same fold", True, prefix_max, False,
             lambda log: [args.jq, "-n", "-c", "-f", same_prog, log]),
        Tool("jq-plain", f"{jq_name}, plain reduce", True, prefix_max, False,
             lambda log: [args.jq, "-n", "-c", "-f", plain_prog, log]),
    ]

    all_agree = True
    agreement = []
    for log in logs:
        for t in tools:
            if log.events > t.max_events or (log.accounts and not t.pooled):
                t.results[log.label] = Result("notplanned")
                continue
            if t.failed_at:
                t.results[log.label] = Result("skipped", note=t.failed_at)
                continue
            timeout = args.timeout if t.quadratic else LONG_TIMEOUT
            best = None
            out = os.path.join(run_dir, f"{t.key}-{log.events}.json")
            for i in range(args.repeat):
                scratch = tempfile.mkdtemp(prefix="cache-", dir=run_dir)
                try:
                    r = measure(t.command(log.path), out,
                                os.path.join(run_dir, f"{t.key}-{log.events}.stderr"),
                                timeout, args.rss_cap_mb, t.env(scratch) if t.env else None)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
                if r.kind != "ok":
                    best = r
                    break
                if best is None or r.wall < best.wall:
                    best = r
            t.results[log.label] = best
            if best.kind != "ok":
                why = {"timeout": "timeout", "rsscap": "over the RSS cap"}.get(best.kind, "failed")
                t.failed_at = f"{why} at {log.label}"
            say(f"[{log.label}] {t.label}: {cell(best, log.events)}")
        agree, text = compare_states(log, tools)
        all_agree &= agree
        agreement.append((agree, text))
        say(text)
        if agree:  # the state files are big; keep them only when they differ
            for t in tools:
                r = t.results.get(log.label)
                if r and r.output and os.path.exists(r.output):
                    os.remove(r.output)

    bench = []
    if not args.no_fold_bench and args.fold_bench:
        targets = [lg for lg in logs if not lg.accounts][-1:] + [lg for lg in logs if lg.accounts]
        for log in targets:
            lines, figs = run_fold_bench(args.fold_bench, log, run_dir, LONG_TIMEOUT,
                                         args.rss_cap_mb)
            bench.append((log, lines, figs))

    elapsed = time.monotonic() - started
    md = render(args, logs, tools, agreement, bench, jaq_version, jq_version, no_cache,
                started_at, elapsed, load_start, loadavg())
    print(md)
    out_md = os.path.join(ROOT, "bench-data", started_at.strftime("compare-%Y%m%d-%H%M.md"))
    with open(out_md, "w", encoding="utf-8") as f:
        f.write(md + "\n")
    say(f"saved {os.path.relpath(out_md, ROOT)}; run files in {os.path.relpath(run_dir, ROOT)}")
    if not all_agree:
        say("FAILED: the tools' final states differ (see above)")
        return 1
    return 0


def render(args, logs, tools, agreement, bench, jaq_version, jq_version, no_cache,
           started_at, elapsed, load_start, load_end):
    out = []
    heads = [events_label(lg) for lg in logs]
    out.append("| tool | " + " | ".join(heads) + " |")
    out.append("|---|" + "---:|" * len(logs))
    for t in tools:
        cells = [cell(t.results.get(lg.label), lg.events) for lg in logs]
        out.append(f"| {t.label} | " + " | ".join(cells) + " |")
    out.append("")
    runs = f"best of {args.repeat} runs" if args.repeat > 1 else "one run"
    notes = [
        f"Each cell: wall time · events/s · peak RSS, from `/usr/bin/time -f '%e %M'`, {runs}.",
        "Logs: the first N events of one `scripts/gen_bench_log.py` log (~167 bytes an event; "
        "the user population grows)"
        + ("; the 10M log is `gen_bench_log.py 10000000 OUT --accounts 100000` (bounded state)"
           if any(lg.accounts for lg in logs) else "")
        + f". Reducer `{REDUCER}`.",
        f"evscope: `evscope state LOG --reducer {REDUCER} -c{' --no-cache' if no_cache else ''}` "
        "(release build, default settings, empty snapshot cache).",
        "*same fold*: `jq -n -c 'reduce inputs as $event (INIT; . as $s | try (REDUCER) catch $s)' LOG`, "
        "evscope's semantics (an event whose reducer fails leaves the state as it was); "
        "INIT is the reducer's `init`.",
        "*plain reduce*: `jq -n -c 'reduce inputs as $event (INIT; REDUCER)' LOG`: no error recovery "
        "(the first failing event would abort the fold; none fails in these logs).",
        f"jq and jaq *same fold* runs are stopped after {args.timeout:g} s, any run above "
        f"{args.rss_cap_mb:,} MB resident; a row stops at its first failure."
        + (" — : not run." if any(r.kind == "notplanned" for t in tools for r in t.results.values())
           else ""),
        "Every run writes its final state (`-c`) to a file; the files are compared "
        "(parsed, keys sorted) and then deleted.",
    ]
    out.extend("- " + n for n in notes)
    out.append("")
    if all(a for a, _ in agreement):
        out.append("Final states: the same at every size for every run that finished.")
    else:
        out.append("Final states compared (outputs parsed, keys sorted):")
        out.append("")
        out.append("```")
        out.extend(text for _, text in agreement)
        out.append("```")
    out.append("")
    for log, lines, figs in bench:
        if "seek" in figs and "diff" in figs:
            extra = ""
            if "fold_eps" in figs:
                extra = f" (in-process fold there: {fmt_rate(figs['fold_eps'], 1.0)}"
                extra += f", peak RSS {fmt_mb(figs['rss'])})" if "rss" in figs else ")"
            out.append(f"evscope on the {events_label(log, '-event log')} (`benches/fold.rs`, {figs.get('samples', '?')} random events): "
                       f"state at an event p50 {figs['seek'][0]} ms, p99 {figs['seek'][1]} ms; "
                       f"diff at the cursor p50 {figs['diff'][0]} ms, p99 {figs['diff'][1]} ms{extra}.")
        else:
            why = figs.get("error", "could not parse its output")
            out.append(f"evscope seek/diff on the {events_label(log, '-event log')}: {why}. "
                       "benches/fold.rs printed:")
            out.extend("    " + line for line in lines)
        out.append("")
    out.append(f"Machine: {machine_line()}; load average {load_start} at the start, "
               f"{load_end} at the end (other work on the machine makes figures noisy).")
    out.append("")
    out.append(f"Versions: {jq_version} ({args.jq}), {jaq_version} (`cargo install jaq --locked`), "
               f"evscope {args.evscope_rev or 'unknown'}.")
    out.append("")
    total = elapsed
    if args.started_epoch:
        total = time.time() - float(args.started_epoch)
    mins, secs = divmod(int(round(total)), 60)
    out.append(f"Measured {started_at:%Y-%m-%d %H:%M} with `{args.cmdline or 'scripts/bench-compare.sh'}` "
               f"(took {mins} min {secs:02d} s in all, build included).")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
