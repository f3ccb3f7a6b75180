"""Benchmark: what folding ids costs when a version is compiled (push, load), and per request.

    python benchmarks/ids.py                 # 250,000 rules
    python benchmarks/ids.py --rules 1000000

Prints the CPU time of compile_bundle with `ids: {compare: exact}` (no folding) and with the
default `casefold`, for rules with mixed-case ids, and the time to fold one request's ids
(mixed case, and already folded: the common case, which allocates nothing).
"""

from __future__ import annotations

import argparse
import time
import timeit
from pathlib import Path

from policy_engine.actions import Action, Party, ResourceRef
from policy_engine.bundle import Bundle, compile_bundle
from policy_engine.bundle.ids import fold_action

MODEL = (Path(__file__).resolve().parents[1] / "policies" / "default" / "model.conf").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=250_000)
    args = parser.parse_args()
    text = "".join(
        f"p, role{i % 500}, *, tool:getTool_{i}, invoke, r.sub.mfa == True, allow\n" for i in range(args.rules)
    )
    for label, schema in (("exact", "ids: {compare: exact}\n"), ("casefold", "")):
        started = time.process_time()
        compile_bundle(Bundle("bench", MODEL, text, {}, schema))
        print(f"compile {args.rules} rules, ids {label:8}: {time.process_time() - started:.2f} s CPU")
    calls = 200_000
    for label, action in (
        ("mixed case", Action("Acme", Party("Alice"), "invoke", ResourceRef("tool", "getWeather"))),
        ("folded already", Action("acme", Party("alice"), "invoke", ResourceRef("tool", "getweather"))),
    ):
        per_call = timeit.timeit(lambda action=action: fold_action(action), number=calls) / calls
        print(f"fold one request's ids, {label:14}: {per_call * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
