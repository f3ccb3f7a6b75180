"""Hand-written fixture families under tests/fixtures/casbin/<family>/.

Each family is a model.conf, a policy.csv and a requests.json:
`{"product": [[values of field 1], [values of field 2], ...], "requests": [[...], ...]}`;
the cross product of "product" plus the listed "requests" are decided. A value is a
string, a number, null, or {"entity": id, "attr": {...}}, {"dict": {...}},
{"object": {...}} (a plain object with attributes), {"context": "2"} (an
EnforceContext for r2/p2/m2), or a list.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from policy_engine.engine import EnforceContext, Entity

ROOT = Path(__file__).resolve().parents[2] / "fixtures" / "casbin"


@dataclass(frozen=True)
class Family:
    name: str
    model: str
    policy: str
    requests: tuple[tuple[Any, ...], ...]


def _value(spec: Any) -> Any:
    if isinstance(spec, dict):
        if "entity" in spec:
            return Entity(spec["entity"], spec.get("attr", {}))
        if "dict" in spec:
            return dict(spec["dict"])
        if "object" in spec:
            return SimpleNamespace(**spec["object"])
        if "context" in spec:
            return EnforceContext.of(spec["context"])
        raise ValueError(f"unknown value spec {spec!r}")
    return spec


def load_family(name: str) -> Family:
    folder = ROOT / name
    spec = json.loads((folder / "requests.json").read_text(encoding="utf-8"))
    requests = [tuple(map(_value, combo)) for combo in itertools.product(*spec.get("product", []))]
    if not spec.get("product"):
        requests = []
    requests += [tuple(map(_value, values)) for values in spec.get("requests", [])]
    return Family(
        name=name,
        model=(folder / "model.conf").read_text(encoding="utf-8"),
        policy=(folder / "policy.csv").read_text(encoding="utf-8"),
        requests=tuple(requests),
    )


def family_names() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "model.conf").exists())
