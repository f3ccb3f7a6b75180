"""Policy text -> rules, checked against the model and put in pycasbin's evaluation order.

The text format is pycasbin's (file adapter + `load_policy_line`): one rule
per `\\n`-separated line, stripped; blank lines and lines starting with `#`
are skipped; commas outside `()`/`[]` separate fields, which are stripped;
the first field is the rule type (`p`, `p2`, `g`, ...).

Where pycasbin would silently drop or only later trip over a line, this
module refuses it with `PolicyLoadError` and its line number: an unknown
rule type, a `g*` rule with fewer fields than its definition, unbalanced
brackets. A `p*` rule whose field count differs from its definition loads, as
in pycasbin (priority models often have short lines); a decision whose scan
reaches it fails with pycasbin's "invalid policy size" (see compiled.py), and
`LoadedRules.misfits` lists such rules for linting.

Order: pycasbin sorts rules after loading, by subject hierarchy when the
effect is `subjectPriority(p_eft) || deny`, then by `p_priority` when a
policy type has that field. `order_rules` does the same, stably.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from policy_engine.engine.model import Model, RoleKind
from policy_engine.errors import PolicyLoadError

__all__ = ["LoadedRules", "Rule", "load_rules", "split_rule_line"]


class Rule(NamedTuple):
    """One rule line: its type, its field values, and its 1-based line in the policy text."""

    ptype: str
    values: tuple[str, ...]
    line: int


@dataclass
class RuleSet:
    """The rules of one type, in evaluation order: field values and line numbers side by side."""

    ptype: str
    values: list[tuple[str, ...]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> Rule:
        return Rule(self.ptype, self.values[index], self.lines[index])

    def __iter__(self) -> Iterator[Rule]:
        return map(Rule, itertools.repeat(self.ptype), self.values, self.lines)

    def reorder(self, key: Callable[[tuple[str, ...]], Any]) -> None:
        """Stable sort by `key` of the field values (pycasbin's `sorted`)."""
        order = sorted(range(len(self.values)), key=lambda i: key(self.values[i]))
        self.values = [self.values[i] for i in order]
        self.lines = [self.lines[i] for i in order]


@dataclass(frozen=True)
class LoadedRules:
    """Every rule, grouped by type, in pycasbin's evaluation order."""

    policies: Mapping[str, RuleSet]
    groupings: Mapping[str, RuleSet]
    sizes: Mapping[str, int] = field(default_factory=dict)  # fields of each p* definition

    @property
    def misfits(self) -> tuple[Rule, ...]:
        """`p*` rules whose field count differs from their definition (loaded, as pycasbin does)."""
        return tuple(
            rule
            for ptype, rules in self.policies.items()
            for rule in rules
            if len(rule.values) != self.sizes.get(ptype, len(rule.values))
        )

    @property
    def count(self) -> int:
        return sum(map(len, self.policies.values())) + sum(map(len, self.groupings.values()))


def split_rule_line(line: str) -> list[str]:
    """Split one stripped, non-comment line into stripped fields (pycasbin's rules)."""
    if "(" not in line and "[" not in line and ")" not in line and "]" not in line:
        return list(map(str.strip, line.split(",")))
    depth = 0
    fields: list[str] = []
    for char in line:
        if char in "[(":
            if not fields:
                raise ValueError("a rule cannot start with a bracket")
            depth += 1
            fields[-1] += char
        elif char in "])":
            if depth == 0:
                raise ValueError(f"unbalanced {char!r}")
            depth -= 1
            fields[-1] += char
        elif char == "," and depth == 0:
            fields.append("")
        elif fields:
            fields[-1] += char
        else:
            fields.append(char)
    return [field.strip() for field in fields]


def _parse(text: str, model: Model) -> tuple[dict[str, RuleSet], dict[str, RuleSet]]:
    policies = {key: RuleSet(key, [], []) for key in model.policies}
    groupings = {key: RuleSet(key, [], []) for key in model.roles}
    interned: dict[str, str] = {}
    intern = interned.setdefault
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        try:
            fields = split_rule_line(line)
        except ValueError as exc:
            raise PolicyLoadError(str(exc), line=number) from exc
        key = fields[0]
        del fields[0]
        values = tuple(map(intern, fields, fields))
        rules = policies.get(key)
        if rules is not None:
            rules.values.append(values)
            rules.lines.append(number)
        elif key in groupings:
            definition = model.roles[key]
            if len(values) < definition.field_count:
                raise PolicyLoadError(
                    f"{key} rule has {len(values)} fields, its definition needs "
                    f"{definition.field_count}",
                    line=number,
                )
            if definition.kind is RoleKind.DOMAIN and definition.field_count > 3:
                raise PolicyLoadError(f"{key}: a domain role takes one domain field", line=number)
            groupings[key].values.append(values)
            groupings[key].lines.append(number)
        else:
            raise PolicyLoadError(f"unknown rule type {key!r}", line=number)
    return policies, groupings


def _subject_levels(groupings: Iterable[Rule]) -> dict[str, int]:
    """Level of each `domain::subject` in the `g` hierarchy: 0 for subjects nobody inherits."""
    edges: list[tuple[str, str]] = []
    pending: set[str] = set()
    for rule in groupings:
        if len(rule.values) < 2:
            raise PolicyLoadError("g rule needs two fields", line=rule.line)
        domain = rule.values[2] if len(rule.values) != 2 else ""
        child, parent = f"{domain}::{rule.values[0]}", f"{domain}::{rule.values[1]}"
        edges.append((child, parent))
        pending.update((child, parent))
    levels: list[set[str]] = []
    while edges:
        parents = {parent for _, parent in edges if parent != ""}
        level = pending - parents
        if not level:
            raise PolicyLoadError(f"cycle in the subject hierarchy among {sorted(pending)}")
        levels.append(level)
        edges = [(c, p) for c, p in edges if c not in level]
        pending -= level
    if pending:
        levels.append(pending)
    return {name: i for i, level in enumerate(levels) for name in level}


def _sorted_by_subject(model: Model, policies: dict[str, RuleSet], groupings: RuleSet) -> None:
    levels = _subject_levels(groupings)
    domain_index = -1  # as in pycasbin, not reset between policy types
    for ptype, tokens in model.policies.items():
        for index, token in enumerate(tokens):
            if token == f"{ptype}_dom":
                domain_index = index
                break

        def level(values: tuple[str, ...], at: int = domain_index) -> int:
            domain = values[at] if at != -1 else ""
            return levels.get(f"{domain}::{values[0]}", 0)

        try:
            policies[ptype].reorder(level)
        except IndexError as exc:
            raise PolicyLoadError(f"{ptype}: a rule has no domain field at {domain_index}") from exc


def _priority_key(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def load_rules(text: str, model: Model) -> LoadedRules:
    """Parse, check and order the rules of `text` for `model`."""
    policies, groupings = _parse(text, model)
    if model.effect.subject_priority:
        if "g" not in groupings:
            raise PolicyLoadError("subjectPriority needs a role definition g")
        _sorted_by_subject(model, policies, groupings["g"])
    for ptype, tokens in model.policies.items():
        if f"{ptype}_priority" not in tokens:
            continue
        at = tokens.index(f"{ptype}_priority")
        try:
            policies[ptype].reorder(lambda values, at=at: _priority_key(values[at]))
        except (TypeError, ValueError, IndexError) as exc:
            raise PolicyLoadError(f"{ptype}: cannot order rules by priority: {exc}") from exc
    sizes = {key: len(tokens) for key, tokens in model.policies.items()}
    return LoadedRules(policies=policies, groupings=groupings, sizes=sizes)
