"""Harvest pycasbin's own examples and test assertions into tests/fixtures/upstream/.

    python scripts/harvest_upstream.py                   # downloads the pinned sdist with pip
    python scripts/harvest_upstream.py --sdist PATH      # or reads one already downloaded

The source distribution of pycasbin (pinned below, checked against its
sha256) is read without installing or executing anything from it:

* every file under `examples/` is copied to `examples/` (pycasbin 2.8.0's
  sdist ships none: the manifest says so);
* every `test_*` method of its `tests/*.py` is parsed (Python's `ast`, never
  run) into cases, one per enforcer it builds from example files: the model
  and policy it loads, the role and function setup calls it makes
  (`add_named_matching_func`, ...; functions defined inside the test are
  recorded by name only), and each
  `assertTrue/False(e.enforce(...))`, `assertEqual(e.enforce(...), bool)`
  and `assertTupleEqual(e.enforce_ex(...), (bool, [...]))` whose arguments
  are literals, in source order (setup calls between assertions stay
  between them). A case that changes the policy (management API) is left
  out; what is left out is counted, with the reason, in the manifest.

Output is sorted and byte-for-byte reproducible: `assertions.json` (cases by
file and test name) and `manifest.json` (version, sdist name and sha256,
files, counts, what was left out and why).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "2.8.0"
SDIST_SHA256 = "2615c8940d58caf03c9206246d9499209fd520448c682d2f2ca101c41d9b0aee"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "upstream"
SETUP_CALLS = {
    "add_named_matching_func",
    "add_named_domain_matching_func",
    "add_named_link_condition_func",
    "add_named_domain_link_condition_func",
    "set_named_link_condition_func_params",
    "set_named_domain_link_condition_func_params",
    "add_function",
}
# e.get_role_manager().<method>(fn) / e.get_named_role_manager("g2").<method>(fn)
MANAGER_CALLS = {
    "add_matching_func": "add_named_matching_func",
    "add_domain_matching_func": "add_named_domain_matching_func",
}
ASSERTIONS = {"assertTrue": True, "assertFalse": False}


def download(version: str, into: Path) -> Path:
    """The sdist of pycasbin==version, fetched by pip (no wheels, no dependencies)."""
    subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
         f"pycasbin=={version}", "-d", str(into)],
        check=True,
    )  # fmt: skip
    found = sorted(into.glob(f"pycasbin-{version}.tar.gz"))
    if not found:
        raise SystemExit(f"pip did not produce pycasbin-{version}.tar.gz in {into}")
    return found[0]


def _dotted(node: ast.expr) -> str | None:
    """`casbin.util.key_match2` / `util.time_match_func` as `casbin.util.<name>`, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    else:
        return None
    parts.reverse()
    if parts[:2] == ["casbin", "util"] or parts[:1] == ["util"]:
        return "casbin.util." + parts[-1]
    return None


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False, None


def _examples(call: ast.Call) -> list[str]:
    """The get_examples("...") file names among a constructor's arguments."""
    names = []
    for arg in call.args:
        if (
            isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name)
            and arg.func.id == "get_examples" and arg.args
        ):  # fmt: skip
            ok, value = _literal(arg.args[0])
            if ok and isinstance(value, str):
                names.append(value)
    return names


def _enforcer_files(node: ast.AST) -> list[str] | None:
    """Model (and policy) file names when `node` builds an enforcer from examples."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in ("get_enforcer", "Enforcer", "SyncedEnforcer", "FastEnforcer"):
        files = _examples(node)
        return files or None
    return None


def _cases(module: str, cls: str, fn: ast.FunctionDef, left_out: dict[str, int]) -> list[dict[str, Any]]:
    """One case per enforcer the test builds from example files, with the steps that follow."""
    for node in ast.walk(fn):
        if isinstance(node, (ast.For, ast.While, ast.With, ast.AsyncWith, ast.AsyncFor)):
            left_out["tests with loops or context managers"] += 1
            return []
    cases: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    enforcer = ""
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            found = _enforcer_files(stmt.value)
            if found is not None and isinstance(stmt.targets[0], ast.Name):
                enforcer = stmt.targets[0].id
                number = len(cases) + 1
                current = {
                    "test": f"{module}::{cls}::{fn.name}" + (f"#{number}" if number > 1 else ""),
                    "model": found[0],
                    "policy": found[1] if len(found) > 1 else None,
                    "steps": [],
                }
                cases.append(current)
                continue
        if current is None:
            continue
        if _changes_policy(stmt, enforcer):
            current["changes_policy"] = True
        if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
            continue
        call = stmt.value
        if not isinstance(call.func, ast.Attribute):
            continue
        method = call.func.attr
        manager = _manager_of(call.func.value, enforcer)
        if manager is not None and method in MANAGER_CALLS:
            method = MANAGER_CALLS[method]
            call = ast.Call(call.func, [ast.Constant(manager), *call.args], [])
        if method in SETUP_CALLS:
            args: list[Any] = []
            for arg in call.args:
                ok, value = _literal(arg)
                if ok:
                    args.append(value)
                else:
                    args.append({"function": _dotted(arg) or ast.unparse(arg)})
            current["steps"].append({"setup": method, "args": args})
            continue
        step = _assertion(method, call)
        if step is None:
            if method.startswith("assert"):
                left_out["assertions other than a literal enforce/enforce_ex"] += 1
            continue
        current["steps"].append(step)
    kept = []
    for case in cases:
        if case.pop("changes_policy", False):
            left_out["cases that change the policy through the management API"] += 1
        elif any("enforce" in step for step in case["steps"]):
            kept.append(case)
    return kept


_READ_ONLY = ("get_", "has_", "is_", "enforce", "batch_enforce", "new_enforce_context")


def _manager_of(node: ast.expr, enforcer: str) -> str | None:
    """"g" for `e.get_role_manager()`, the ptype for `e.get_named_role_manager("g2")`."""
    if not (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name) and node.func.value.id == enforcer
    ):  # fmt: skip
        return None
    if node.func.attr == "get_role_manager" and not node.args:
        return "g"
    if node.func.attr == "get_named_role_manager" and len(node.args) == 1:
        ok, value = _literal(node.args[0])
        return value if ok and isinstance(value, str) else None
    return None


def _changes_policy(stmt: ast.stmt, enforcer: str) -> bool:
    """Whether `stmt` calls a method of the enforcer that is neither a query nor a setup call."""
    for node in ast.walk(stmt):
        if (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == enforcer
        ):  # fmt: skip
            method = node.func.attr
            if method not in SETUP_CALLS and not method.startswith(_READ_ONLY):
                return True
    return False


def _assertion(method: str, call: ast.Call) -> dict[str, Any] | None:
    if not call.args or not isinstance(call.args[0], ast.Call):
        return None
    inner = call.args[0]
    if not isinstance(inner.func, ast.Attribute) or inner.func.attr not in ("enforce", "enforce_ex"):
        return None
    values = []
    for arg in inner.args:
        ok, value = _literal(arg)
        if not ok:
            return None
        values.append(value)
    if method in ASSERTIONS and inner.func.attr == "enforce" and len(call.args) == 1:
        return {"enforce": values, "expect": ASSERTIONS[method]}
    if method in ("assertEqual", "assertTupleEqual") and len(call.args) == 2:
        ok, expected = _literal(call.args[1])
        if not ok:
            return None
        if inner.func.attr == "enforce" and isinstance(expected, bool):
            return {"enforce": values, "expect": expected}
        if inner.func.attr == "enforce_ex" and isinstance(expected, tuple) and len(expected) == 2:
            return {"enforce": values, "expect": expected[0], "explain": list(expected[1])}
    return None


def harvest(sdist: Path, out: Path) -> dict[str, Any]:
    data = sdist.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    prefix = f"pycasbin-{VERSION}/"
    examples: dict[str, bytes] = {}
    tests: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            path = member.name[len(prefix):]
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            if path.startswith("examples/"):
                examples[path[len("examples/"):]] = extracted.read()
            elif path.startswith("tests/") and path.endswith(".py"):
                tests[path] = extracted.read().decode("utf-8")
    left_out: dict[str, int] = dict.fromkeys(
        ["tests with loops or context managers",
         "assertions other than a literal enforce/enforce_ex",
         "cases that change the policy through the management API"], 0,
    )  # fmt: skip
    cases: list[dict[str, Any]] = []
    for module, source in sorted(tests.items()):
        tree = ast.parse(source)
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test"):
                    cases.extend(_cases(module, cls.name, fn, left_out))
    cases.sort(key=lambda c: c["test"])
    referenced = sorted({c["model"] for c in cases} | {c["policy"] for c in cases if c["policy"]})
    (out / "examples").mkdir(parents=True, exist_ok=True)
    for name, content in sorted(examples.items()):
        target = out / "examples" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    manifest = {
        "package": "pycasbin",
        "version": VERSION,
        "sdist": sdist.name,
        "sha256": digest,
        "examples_in_sdist": sorted(examples),
        "test_files": sorted(tests),
        "cases": len(cases),
        "assertions": sum(1 for c in cases for s in c["steps"] if "enforce" in s),
        "left_out": left_out,
        "referenced_example_files": referenced,
        "missing_example_files": [name for name in referenced if name not in examples],
    }
    _write_json(out / "assertions.json", cases)
    _write_json(out / "manifest.json", manifest)
    return manifest


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", type=Path, help=f"pycasbin-{VERSION}.tar.gz (else pip downloads it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download(VERSION, Path(tmp))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise SystemExit(f"{sdist.name}: sha256 {digest}, expected {SDIST_SHA256} (pinned)")
        manifest = harvest(sdist, args.out)
    print(
        f"pycasbin {VERSION}: {manifest['cases']} cases, {manifest['assertions']} assertions, "
        f"{len(manifest['examples_in_sdist'])} example files in the sdist, "
        f"{len(manifest['missing_example_files'])} referenced example files missing from it"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
