"""Read a policy set folder into a Bundle, and compile a Bundle into an Engine.

A folder holds `model.conf`, `policy.csv` and optionally `schema.yaml`,
`roles.yaml` (pattern roles, link conditions) and `tests/*_test.yaml`.
Every problem is reported with the file (and line when known) it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from policy_engine.actions import check_bindable
from policy_engine.bundle.ids import fold_rules
from policy_engine.bundle.roles import ROLES_FILE, apply_roles, parse_roles
from policy_engine.bundle.schema import SCHEMA_FILE, AttributeSchema, infer_schema, parse_schema
from policy_engine.engine import Engine
from policy_engine.errors import BundleError, ModelError, PolicyLoadError, Problem

__all__ = [
    "MODEL_FILE",
    "POLICY_FILE",
    "Bundle",
    "bundle_schema",
    "compile_bundle",
    "load_bundle",
    "load_bundles",
]

MODEL_FILE = "model.conf"
POLICY_FILE = "policy.csv"
TESTS_DIR = "tests"
SET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Bundle:
    """The full content of one policy set: model text, rules text and test files by name."""

    name: str
    model_text: str
    policy_text: str
    tests: Mapping[str, str] = field(default_factory=dict)
    schema_text: str = ""
    roles_text: str = ""  # roles.yaml: pattern roles and link conditions (bundle/roles.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", MappingProxyType(dict(sorted(self.tests.items()))))


def load_bundle(path: str | Path, name: str | None = None) -> Bundle:
    """Read one policy set folder; the set is named after the folder unless `name` is given."""
    folder = Path(path)
    set_name = name or folder.resolve().name
    problems: list[Problem] = []
    if not SET_NAME.match(set_name):
        problems.append(
            Problem(str(folder), f"policy set name {set_name!r} must match {SET_NAME.pattern}")
        )
    texts: dict[str, str] = {}
    for file in (MODEL_FILE, POLICY_FILE):
        try:
            texts[file] = _read_text(folder / file)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(folder / file), f"cannot read: {exc}"))
    schema_path = folder / SCHEMA_FILE
    if schema_path.is_file():
        try:
            texts[SCHEMA_FILE] = _read_text(schema_path)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(schema_path), f"cannot read: {exc}"))
    for optional in (ROLES_FILE,):
        if (folder / optional).is_file():
            try:
                texts[optional] = _read_text(folder / optional)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(str(folder / optional), f"cannot read: {exc}"))
    tests: dict[str, str] = {}
    tests_dir = folder / TESTS_DIR
    if tests_dir.is_dir():
        for test_file in sorted(tests_dir.glob("*.yaml")):
            try:
                tests[f"{TESTS_DIR}/{test_file.name}"] = _read_text(test_file)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(str(test_file), f"cannot read: {exc}"))
    if problems:
        raise BundleError(problems)
    return Bundle(
        set_name, texts[MODEL_FILE], texts[POLICY_FILE], tests, texts.get(SCHEMA_FILE, ""),
        texts.get(ROLES_FILE, ""),
    )


def load_bundles(root: str | Path) -> list[Bundle]:
    """Every policy set folder (one holding a model.conf) directly under `root`, by name."""
    folders = sorted(p.parent for p in Path(root).glob(f"*/{MODEL_FILE}"))
    return [load_bundle(folder) for folder in folders]


def compile_bundle(bundle: Bundle) -> Engine:
    """Compile a bundle into an Engine, or raise BundleError naming the file and line."""
    try:
        # Ids compare as the bundle declares: folded rules (see policy_engine.bundle.ids).
        policy_text = fold_rules(bundle.model_text, bundle.policy_text, bundle.schema_text)
        engine = Engine.from_text(bundle.model_text, policy_text, policy_file=POLICY_FILE)
    except PolicyLoadError as exc:
        raise BundleError([Problem(POLICY_FILE, _strip_line(exc), exc.line)]) from exc
    except ModelError as exc:
        raise BundleError([Problem(MODEL_FILE, str(exc))]) from exc
    try:
        check_bindable(engine)
    except ModelError as exc:
        raise BundleError([Problem(MODEL_FILE, str(exc))]) from exc
    return apply_roles(engine, parse_roles(bundle.roles_text, engine))


def bundle_schema(bundle: Bundle, engine: Engine) -> AttributeSchema:
    """The bundle's schema.yaml, or the types its rules imply when it has none."""
    if bundle.schema_text.strip():
        return parse_schema(bundle.schema_text)
    texts = [*engine.model.matchers.values()]
    texts += [v for rule in engine.rules for v in rule.values if "r." in v or "r_" in v]
    return infer_schema(texts)


def _read_text(path: Path) -> str:
    # Canonical newlines, so a checkout on any OS hashes to the same version.
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


def _strip_line(exc: PolicyLoadError) -> str:
    prefix = f"line {exc.line}: "
    text = str(exc)
    return text[len(prefix) :] if exc.line is not None and text.startswith(prefix) else text
