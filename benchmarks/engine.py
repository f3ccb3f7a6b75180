"""Benchmark: policy_engine.Engine against pycasbin's Enforcer and FastEnforcer.

    python benchmarks/engine.py                       # 1k, 10k, 100k and 1M rules
    python benchmarks/engine.py --sizes 1000,10000
    python benchmarks/engine.py --sizes 1000 --pattern-rules 10000   # pattern roles beside plain

The workload is LLM actions (deterministic seed): tenants (Casbin domains),
per-tenant role hierarchies (admin > engineer > analyst > viewer, plus agent
and contractor roles), users and agents with one or two roles, tools, data
scopes with `*` patterns, models and memory, ABAC conditions on subject and
resource attributes (MFA, clearance against classification), and deny rules
that override allows. Request values are `Entity`s carrying attributes.

Each size runs in its own child process (clean resident-memory numbers) and
reports: pycasbin Enforcer and FastEnforcer (domain as cache key) ops/s,
skipped once a decision takes longer than --pycasbin-limit seconds at a
smaller size; Engine ops/s uncached and with the decision cache warm; the
ratios; p50/p99 per decision; load+compile time; resident memory. It also
checks that the Engine agrees with pycasbin on every request pycasbin ran.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy_engine.engine import Engine, Entity  # noqa: E402

MODEL = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch(r.obj, p.obj) && r.act == p.act \
  && (p.cond == "none" || (p.cond == "mfa" && r.sub.mfa == True) \
  || (p.cond == "clearance" && r.sub.clearance >= r.obj.level))
"""

ROLES = ["viewer", "analyst", "engineer", "admin", "agent_basic", "agent_retriever", "contractor"]
HIERARCHY = [("admin", "engineer"), ("engineer", "analyst"), ("analyst", "viewer")]
TOOLS = [f"tool:t{i:03d}" for i in range(60)]
SCOPES = [f"data:s{i:02d}" for i in range(30)]
MODELS = [f"model:m{i}" for i in range(6)]
RULES_PER_TENANT = 125
USERS_PER_TENANT = 24


def _object_for(rnd: random.Random) -> tuple[str, str]:
    """A rule's (object pattern, action)."""
    kind = rnd.random()
    if kind < 0.5:
        return rnd.choice(TOOLS), "invoke"
    if kind < 0.8:
        scope = rnd.choice(SCOPES)
        return (f"{scope}/*" if rnd.random() < 0.6 else f"{scope}/r{rnd.randrange(20)}"), rnd.choice(
            ["read", "read", "write"]
        )
    if kind < 0.9:
        return rnd.choice(MODELS), "generate"
    return "memory:*", rnd.choice(["read", "write"])


def workload(size: int, seed: int) -> tuple[str, int, int]:
    """Policy text with `size` p rules (plus g rules); returns (text, tenants, g rule count)."""
    rnd = random.Random(seed)
    tenants = max(1, size // RULES_PER_TENANT)
    lines: list[str] = []
    g_lines = 0
    made = 0
    for t in range(tenants):
        tenant = f"tenant{t:05d}"
        quota = (size - made) // (tenants - t)
        for _ in range(quota):
            obj, act = _object_for(rnd)
            role = rnd.choice(ROLES)
            cond = rnd.choices(["none", "mfa", "clearance"], weights=[6, 2, 2])[0]
            eft = "deny" if rnd.random() < 0.08 else "allow"
            lines.append(f"p, {role}, {tenant}, {obj}, {act}, {cond}, {eft}")
        made += quota
        for parent, child in HIERARCHY:
            lines.append(f"g, {parent}, {child}, {tenant}")
            g_lines += 1
        for u in range(USERS_PER_TENANT):
            for role in rnd.sample(ROLES, rnd.choice([1, 1, 2])):
                lines.append(f"g, user{u:02d}, {role}, {tenant}")
                g_lines += 1
    return "\n".join(lines) + "\n", tenants, g_lines


def requests(count: int, tenants: int, seed: int) -> list[tuple[Any, ...]]:
    rnd = random.Random(seed + 1)
    out: list[tuple[Any, ...]] = []
    for _ in range(count):
        sub = Entity(
            f"user{rnd.randrange(USERS_PER_TENANT + 4):02d}",
            {"mfa": rnd.random() < 0.6, "clearance": rnd.randrange(5)},
        )
        kind = rnd.random()
        if kind < 0.5:
            obj, act = rnd.choice(TOOLS), "invoke"
        elif kind < 0.8:
            obj, act = f"{rnd.choice(SCOPES)}/r{rnd.randrange(20)}", rnd.choice(["read", "write"])
        elif kind < 0.9:
            obj, act = rnd.choice(MODELS), "generate"
        else:
            obj, act = f"memory:n{rnd.randrange(9)}", rnd.choice(["read", "write"])
        out.append((sub, f"tenant{rnd.randrange(tenants):05d}", Entity(obj, {"level": rnd.randrange(5)}), act))
    return out


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99


def _timed(fn: Any, reqs: list[tuple[Any, ...]]) -> tuple[float, float, float, list[Any]]:
    """ops/s, p50 µs, p99 µs, results."""
    samples: list[int] = []
    results: list[Any] = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        start = clock()
        for values in reqs:
            t0 = clock()
            results.append(fn(*values))
            samples.append(clock() - t0)
        total = clock() - start
    finally:
        gc.enable()
    p50, p99 = _percentiles(samples)
    return len(reqs) / (total / 1e9), p50, p99, results


def _budgeted(fn: Any, reqs: list[tuple[Any, ...]], budget: float) -> tuple[float, float, list[Any]]:
    """Run until the time budget is spent (at least 3 requests): ops/s, seconds per op, results."""
    results: list[Any] = []
    start = time.perf_counter()
    for values in reqs:
        results.append(fn(*values))
        if len(results) >= 3 and time.perf_counter() - start > budget:
            break
    elapsed = time.perf_counter() - start
    return len(results) / elapsed, elapsed / len(results), results


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    policy, tenants, g_lines = workload(size, args.seed)
    reqs = requests(args.requests, tenants, args.seed)
    result: dict[str, Any] = {"size": size, "tenants": tenants, "g_rules": g_lines}

    gc.collect()
    rss_before = _rss_mib()
    start = time.perf_counter()
    engine = Engine.from_text(MODEL, policy)
    result["load_s"] = time.perf_counter() - start
    gc.collect()
    result["rss_mib"] = _rss_mib()
    result["engine_mib"] = result["rss_mib"] - rss_before

    ops, p50, p99, uncached = _timed(engine.decide_uncached, reqs)
    result.update(uncached_ops=ops, uncached_p50=p50, uncached_p99=p99)
    result["allowed_share"] = sum(d.allowed for d in uncached) / len(uncached)
    for values in reqs:  # warm the cache
        engine.decide(*values)
    ops, p50, p99, _ = _timed(engine.decide, reqs)
    result.update(cached_ops=ops, cached_p50=p50, cached_p99=p99)
    expected = [d.allowed for d in uncached]

    if args.pycasbin_limit > 0 and size <= args.pycasbin_max:
        import casbin
        from casbin.persist.adapters import FileAdapter

        path = Path(args.tmp) / f"policy-{size}.csv"
        model_path = Path(args.tmp) / "model.conf"
        path.write_text(policy)
        model_path.write_text(MODEL)
        del engine
        gc.collect()
        for label, factory in (
            ("casbin", lambda: casbin.Enforcer(str(model_path), FileAdapter(str(path)))),
            (
                "fast",
                lambda: casbin.FastEnforcer(
                    str(model_path), FileAdapter(str(path)), cache_key_order=[1]
                ),
            ),
        ):
            start = time.perf_counter()
            enforcer = factory()
            result[f"{label}_load_s"] = time.perf_counter() - start
            ops, per_op, got = _budgeted(enforcer.enforce, reqs, args.pycasbin_budget)
            result[f"{label}_ops"] = ops
            result[f"{label}_per_op_s"] = per_op
            result[f"{label}_checked"] = len(got)
            result[f"{label}_mismatches"] = sum(a != b for a, b in zip(got, expected, strict=False))
            del enforcer
            gc.collect()
    return result


def _fmt_ops(value: float | None) -> str:
    if value is None:
        return "skipped"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    return f"{a / b:,.0f}x"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'rules':>9} {'g rules':>8} {'tenants':>7} | {'pycasbin/s':>10} {'Fast/s':>8} | "
        f"{'Engine/s':>9} {'cached/s':>9} | {'vs pycasbin':>11} {'vs Fast':>8} | "
        f"{'p50 µs':>7} {'p99 µs':>7} {'p50c µs':>7} {'p99c µs':>7} | {'load s':>6} {'RSS MiB':>8} {'+engine':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['size']:>9,} {r['g_rules']:>8,} {r['tenants']:>7,} | "
            f"{_fmt_ops(r.get('casbin_ops')):>10} {_fmt_ops(r.get('fast_ops')):>8} | "
            f"{_fmt_ops(r['uncached_ops']):>9} {_fmt_ops(r['cached_ops']):>9} | "
            f"{_ratio(r['uncached_ops'], r.get('casbin_ops')):>11} "
            f"{_ratio(r['uncached_ops'], r.get('fast_ops')):>8} | "
            f"{r['uncached_p50']:>7.1f} {r['uncached_p99']:>7.1f} "
            f"{r['cached_p50']:>7.1f} {r['cached_p99']:>7.1f} | "
            f"{r['load_s']:>6.2f} {r['rss_mib']:>8.0f} {r['engine_mib']:>8.0f}"
        )
    print()
    for r in rows:
        notes = [f"allowed {r['allowed_share']:.0%} of requests"]
        for label, name in (("casbin", "pycasbin"), ("fast", "FastEnforcer")):
            if f"{label}_ops" in r:
                notes.append(
                    f"{name}: load {r[f'{label}_load_s']:.1f} s, {r[f'{label}_per_op_s'] * 1e3:.2f} ms/decision "
                    f"over {r[f'{label}_checked']} requests, {r[f'{label}_mismatches']} disagreements with Engine"
                )
        print(f"{r['size']:>9,}: " + "; ".join(notes))


PLAIN_RBAC = """\
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
PATTERN_RBAC = PLAIN_RBAC.replace("g = _, _", "g = _, _\ng2 = _, _").replace(
    "r.obj == p.obj", "g2(r.obj, p.obj)"
)
WORLD_USERS, WORLD_ROLES, WORLD_COLLECTIONS, WORLD_ACTIONS = 2000, 100, 100, ["read", "write", "share", "delete"]


def pattern_worlds(size: int, seed: int) -> tuple[str, str, list[tuple[str, str, str]]]:
    """Plain RBAC (rules name objects) and RBAC with pattern object groups (g2 by keyMatch2:
    `/cNNN/:id` belongs to `grp_cNNN`, rules name groups), `size` p rules each, over one
    generated world, and varied requests drawn from that world."""
    rnd = random.Random(seed)
    links = [f"g, user{u:04d}, role{rnd.randrange(WORLD_ROLES):02d}" for u in range(WORLD_USERS)]
    links += [f"g, role{r:02d}, role{rnd.randrange(r):02d}" for r in range(1, WORLD_ROLES, 7)]
    plain, pattern = list(links), list(links)
    pattern += [f"g2, /c{c:03d}/:id, grp_c{c:03d}" for c in range(WORLD_COLLECTIONS)]
    for _ in range(size):
        role, act = f"role{rnd.randrange(WORLD_ROLES):02d}", rnd.choice(WORLD_ACTIONS)
        collection = rnd.randrange(WORLD_COLLECTIONS)
        plain.append(f"p, {role}, /c{collection:03d}/d{rnd.randrange(50)}, {act}")
        pattern.append(f"p, {role}, grp_c{collection:03d}, {act}")
    reqs = [
        (f"user{rnd.randrange(WORLD_USERS):04d}", f"/c{rnd.randrange(WORLD_COLLECTIONS):03d}/d{rnd.randrange(50)}",
         rnd.choice(WORLD_ACTIONS))
        for _ in range(20000)
    ]  # fmt: skip
    return "\n".join(plain) + "\n", "\n".join(pattern) + "\n", reqs


def pattern_comparison(size: int, seed: int, rounds: int = 6) -> None:
    """Print uncached decisions per second: plain RBAC beside RBAC with pattern object groups.

    The first pass meets every request name for the first time; then `rounds` passes of
    each model alternate (A B, B A, ...) and the ratio is the median of the rounds' ratios:
    the machine's noise moves both sides of a round together."""
    plain_text, pattern_text, reqs = pattern_worlds(size, seed)
    plain = Engine.from_text(PLAIN_RBAC, plain_text)
    pattern = Engine.from_text(PATTERN_RBAC, pattern_text)
    pattern.add_named_matching_func("g2", "keyMatch2")
    engines = {"plain RBAC (r.obj == p.obj)": plain, "pattern RBAC (g2 keyMatch2)": pattern}
    print(f"\nRBAC with pattern roles ({size:,} p rules, {len(reqs):,} varied requests, uncached)")
    first = {label: _timed(engine.decide_uncached, reqs) for label, engine in engines.items()}
    passes: dict[str, list[tuple[float, float, float]]] = {label: [] for label in engines}
    for round_ in range(rounds):
        order = list(engines) if round_ % 2 == 0 else list(reversed(engines))
        for label in order:
            ops, p50, p99, _ = _timed(engines[label].decide_uncached, reqs)
            passes[label].append((ops, p50, p99))
    for label, results in passes.items():
        share = sum(d.allowed for d in first[label][3]) / len(reqs)
        ops = statistics.median(r[0] for r in results)
        p50 = statistics.median(r[1] for r in results)
        p99 = statistics.median(r[2] for r in results)
        print(f"  {label:<30} first pass {first[label][0]:>9,.0f}/s  then {ops:>9,.0f}/s  "
              f"p50 {p50:5.1f} µs  p99 {p99:5.1f} µs  allowed {share:.0%}")  # fmt: skip
    plain_label, pattern_label = list(engines)
    ratios = [p[0] / q[0] for p, q in zip(passes[plain_label], passes[pattern_label], strict=True)]
    print(f"  pattern / plain time per decision: {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}..{max(ratios):.2f}; first pass "
          f"{first[plain_label][0] / first[pattern_label][0]:.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--pycasbin-budget", type=float, default=3.0, help="seconds per enforcer")
    parser.add_argument(
        "--pycasbin-limit",
        type=float,
        default=0.25,
        help="skip pycasbin at larger sizes once a decision took this many seconds",
    )
    parser.add_argument("--pycasbin-max", type=int, default=10**9, help=argparse.SUPPRESS)
    parser.add_argument("--pattern-rules", type=int, default=10000, help="0 skips the pattern-role run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", default="/tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one is not None:
        print(json.dumps(run_size(args.one, args)))
        return

    rows: list[dict[str, Any]] = []
    pycasbin_on = True
    for size in (int(s) for s in args.sizes.split(",")):
        command = [
            sys.executable, __file__, "--one", str(size), "--requests", str(args.requests),
            "--seed", str(args.seed), "--pycasbin-budget", str(args.pycasbin_budget),
            "--pycasbin-limit", str(args.pycasbin_limit if pycasbin_on else 0), "--tmp", args.tmp,
        ]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        slowest = max(row.get("casbin_per_op_s", 0), row.get("fast_per_op_s", 0))
        if slowest > args.pycasbin_limit:
            pycasbin_on = False
        print(f"... {size:,} rules done", file=sys.stderr, flush=True)
    print_table(rows)
    if args.pattern_rules:
        pattern_comparison(args.pattern_rules, args.seed)


if __name__ == "__main__":
    main()
