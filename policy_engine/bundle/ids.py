"""How a policy set compares ids: case-folded (the default) or exactly as given; and ipMatch
networks written so that canonical addresses match them.

A bundle declares it in schema.yaml, `ids: {compare: casefold}` or
`ids: {compare: exact}`. With casefold, `getWeather`, `GetWeather` and
`getweather` name one tool: the ids of a request (tenant, subject, actor,
action, resource id) are folded with `str.casefold` before deciding
(`fold_action`), and the rule values the matcher compares with them are
folded once, when the bundle is compiled (`fold_rules`), so that a
`Web_Search` cannot slip past a deny on `web_search`. Answers keep the
caller's spelling (FilterAllowed returns the candidates as sent).

Which rule fields are ids: every field of a role rule (`g`, `g2`, ...), and
a policy field that the matcher compares with a request id
(`r.sub == p.sub`, `g(r.sub, p.sub, r.dom)`, `keyMatch(r.obj, p.obj)`,
`regexMatch(r.obj, p.obj)`, ...). A regexMatch pattern is folded outside its
escapes (`\\D` stays `\\D`). Other fields (conditions, effects, values
compared with attributes) are kept as written, and so are attributes.

Whatever the comparison, a rule value that ipMatch reads as a network is written
as canonical addresses need it: requests carry IP addresses in canonical form
(`::ffff:10.0.0.5` is `10.0.0.5`), so an IPv4-mapped or -compatible network in
a rule becomes its IPv4 network (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).

Where folding cannot be exact, the bundle is refused with file and line
(write the value in lowercase, or declare `ids: {compare: exact}`): a string
literal compared with a request id that is not folded already
(`r.sub == "Alice"`, in the matcher or in a condition), and a policy field
compared both with an id and with something else whose value has letters
that folding changes.
"""

from __future__ import annotations

import ast
import itertools
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from policy_engine.actions import Action, Party, ResourceRef
from policy_engine.bundle.schema import CASEFOLD, canonical_network, id_comparison
from policy_engine.engine.model import Model, parse_model
from policy_engine.engine.rules import split_rule_line
from policy_engine.errors import BundleError, ModelError, Problem

__all__ = ["fold_action", "fold_id", "fold_party", "fold_resource", "fold_rules", "folds_ids"]

_MODEL_FILE, _POLICY_FILE = "model.conf", "policy.csv"
# Functions whose arguments are compared as ids when one of them is a request id.
_MATCH_FUNCTIONS = frozenset({
    "keyMatch", "keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5",
    "keyGet", "keyGet2", "keyGet3", "regexMatch", "globMatch",
})
_REQUEST_ID = re.compile(r"^r\d*_(sub|dom|obj|act)$")
_POLICY_FIELD = re.compile(r"^(p\d*)_\w+$")
_REQUEST_DOT = re.compile(r"\br(\d*)\.")


def folds_ids(schema_text: str) -> bool:
    """Whether the policy set with this schema.yaml compares ids case-insensitively."""
    return id_comparison(schema_text) == CASEFOLD


def fold_id(value: str) -> str:
    """`value.casefold()`, remembered: requests repeat the same few ids (bounded; forgetting
    one only means folding it again)."""
    folded = _FOLDED.get(value)
    if folded is None:
        if len(_FOLDED) >= _FOLDED_LIMIT:
            _FOLDED.clear()
        folded = _FOLDED[value] = value.casefold()
    return folded


_FOLDED: dict[str, str] = {}
_FOLDED_LIMIT = 65_536


def fold_party(party: Party) -> Party:
    """`party` with its id folded (the same object when it is folded already)."""
    folded = fold_id(party.id)
    return party if folded == party.id else Party(folded, party.attributes)


def fold_resource(resource: ResourceRef) -> ResourceRef:
    folded = fold_id(resource.id)
    return resource if folded == resource.id else ResourceRef(resource.kind, folded, resource.attributes)


def fold_action(action: Action) -> Action:
    """`action` with its ids folded (the same object when they are folded already)."""
    tenant, name = fold_id(action.tenant), fold_id(action.action)
    subject = fold_party(action.subject)
    actor = fold_party(action.actor) if action.actor is not None else None
    resource = fold_resource(action.resource)
    if (
        tenant == action.tenant and name == action.action and subject is action.subject
        and actor is action.actor and resource is action.resource
    ):
        return action
    return Action(tenant, subject, name, resource, actor, action.context)


def fold_rules(model_text: str, policy_text: str, schema_text: str = "") -> str:
    """The policy text with its id fields folded (unless the set compares ids exactly) and its
    ipMatch networks canonical, line for line; BundleError names what cannot be made exact."""
    try:
        model = parse_model(model_text)
    except ModelError:
        return policy_text  # compiling reports it
    folding = folds_ids(schema_text)
    plan, problems = _plan(model, folding)
    if not folding and not plan.networks and not problems:
        return policy_text
    lines = policy_text.split("\n")
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        stable = not folding or ("'" not in line and '"' not in line and line.casefold() == line)
        if stable and (not plan.networks or ":" not in line):
            continue  # nothing to fold, no literal to check, no IPv6 network to rewrite
        try:
            fields = split_rule_line(line)
        except ValueError:
            continue  # compiling reports it
        folded = plan.fold(fields, number, problems)
        if folded is not None:
            lines[number - 1] = ", ".join(folded)
    if problems:
        raise BundleError(problems)
    return "\n".join(lines)


@dataclass
class _Plan:
    """What to fold in each rule type: field indexes (after the type), per rule type."""

    folding: bool = True
    roles: dict[str, int] = field(default_factory=dict)
    networks: dict[str, set[int]] = field(default_factory=dict)  # ipMatch's second argument
    ids: dict[str, set[int]] = field(default_factory=dict)
    patterns: dict[str, set[int]] = field(default_factory=dict)
    shared: dict[str, set[int]] = field(default_factory=dict)  # ids also compared otherwise
    conditions: dict[str, set[int]] = field(default_factory=dict)
    tokens: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    checked: dict[str, list[str]] = field(default_factory=dict)  # condition -> its unfolded literals

    def fold(self, fields: list[str], line: int, problems: list[Problem]) -> list[str] | None:
        """The folded fields of one rule line, or None when nothing changes."""
        ptype, values = fields[0], fields[1:]
        changed = False
        for index in self.networks.get(ptype, ()):
            if index < len(values) and canonical_network(values[index]) != values[index]:
                values[index] = canonical_network(values[index])
                changed = True
        if not self.folding:
            return [ptype, *values] if changed else None
        if ptype in self.roles:
            indexes: Iterable[int] = range(min(self.roles[ptype], len(values)))
        else:
            indexes = self.ids.get(ptype, ())
        for index in indexes:
            if index >= len(values):
                continue
            value = values[index]
            if index in self.shared.get(ptype, ()) and value.casefold() != value:
                name = self.tokens[ptype][index].replace("_", ".", 1)
                problems.append(Problem(
                    _POLICY_FILE,
                    f"{name} {value!r} is compared with a request id and with other values: "
                    "write it folded (lowercase), or declare ids: {compare: exact} in schema.yaml",
                    line,
                ))
                continue
            folded = _fold_pattern(value) if index in self.patterns.get(ptype, ()) else value.casefold()
            if folded != value:
                values[index] = folded
                changed = True
        for index in self.conditions.get(ptype, ()):
            if index < len(values):
                for literal in self._unfolded_literals(values[index]):
                    problems.append(Problem(_POLICY_FILE, _literal_message(literal), line))
        return [ptype, *values] if changed else None

    def _unfolded_literals(self, condition: str) -> list[str]:
        if "'" not in condition and '"' not in condition:
            return []
        found = self.checked.get(condition)
        if found is None:
            python = _python(_REQUEST_DOT.sub(r"r\1_", condition))
            found = self.checked[condition] = _unfolded_literals(python, frozenset(self.roles))
        return found


def _plan(model: Model, folding: bool) -> tuple[_Plan, list[Problem]]:
    plan = _Plan(folding, roles={key: role.field_count for key, role in model.roles.items()}, tokens=model.policies)
    problems: list[Problem] = []
    index_of = {token: (ptype, i) for ptype, tokens in model.policies.items() for i, token in enumerate(tokens)}
    role_functions = frozenset(model.roles)
    for text in model.matchers.values():
        tree = _parse(_python(text))
        if tree is None:
            continue  # compiling reports it
        every: dict[tuple[str, int], int] = {}
        as_id: dict[tuple[str, int], int] = {}
        for node in ast.walk(tree):
            _networks(node, index_of, plan, problems)
            if not folding:
                continue
            if isinstance(node, ast.Name) and node.id in index_of:
                every[index_of[node.id]] = every.get(index_of[node.id], 0) + 1
            for group, pattern_at in _compared_groups(node, role_functions):
                if not any(_is_request_id(operand) for operand in group):
                    continue
                for position, operand in enumerate(group):
                    if isinstance(operand, ast.Name) and operand.id in index_of:
                        place = index_of[operand.id]
                        as_id[place] = as_id.get(place, 0) + 1
                        if position == pattern_at:
                            plan.patterns.setdefault(place[0], set()).add(place[1])
                    elif (
                        isinstance(operand, ast.Constant) and isinstance(operand.value, str)
                        and _folded(operand.value, position == pattern_at) != operand.value
                    ):
                        problems.append(Problem(_MODEL_FILE, _literal_message(operand.value)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "eval":
                for argument in node.args:
                    if isinstance(argument, ast.Name) and argument.id in index_of:
                        ptype, index = index_of[argument.id]
                        plan.conditions.setdefault(ptype, set()).add(index)
        for place, count in as_id.items():
            plan.ids.setdefault(place[0], set()).add(place[1])
            if every.get(place, 0) > count:
                plan.shared.setdefault(place[0], set()).add(place[1])
    return plan, problems


def _networks(
    node: ast.AST, index_of: Mapping[str, tuple[str, int]], plan: _Plan, problems: list[Problem]
) -> None:
    """Note the rule fields that ipMatch reads as networks; refuse a literal one that a
    canonical address cannot match (`::ffff:10.0.0.0/104`: write `10.0.0.0/8`)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ipMatch"):
        return
    if len(node.args) != 2:
        return
    network = node.args[1]
    if isinstance(network, ast.Name) and network.id in index_of:
        ptype, index = index_of[network.id]
        plan.networks.setdefault(ptype, set()).add(index)
    elif isinstance(network, ast.Constant) and isinstance(network.value, str):
        canonical = canonical_network(network.value)
        if canonical != network.value:
            problems.append(Problem(
                _MODEL_FILE,
                f"ipMatch network {network.value!r} covers IPv4 addresses, which are decided in their "
                f"IPv4 form: write {canonical!r}",
            ))


def _compared_groups(node: ast.AST, role_functions: frozenset[str]) -> Iterable[tuple[list[ast.expr], int]]:
    """Operands compared with one another by `node`, with the position of a regex pattern (-1)."""
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for (left, right), op in zip(itertools.pairwise(operands), node.ops, strict=False):
            if isinstance(op, (ast.Eq, ast.NotEq)):
                yield [left, right], -1
            elif isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
                yield [left, *right.elts], -1
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name in role_functions or name in _MATCH_FUNCTIONS:
            yield list(node.args), (1 if name == "regexMatch" else -1)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_request_id(node.func.value):
        yield [node.func.value, *node.args], -1  # r.obj.startswith("tool:Pay")


def _is_request_id(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and _REQUEST_ID.match(node.id) is not None


def _unfolded_literals(python: str, role_functions: frozenset[str]) -> list[str]:
    """String literals compared with a request id that folding would change."""
    tree = _parse(python)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        for group, pattern_at in _compared_groups(node, role_functions):
            if any(_is_request_id(operand) for operand in group):
                found += [
                    operand.value for position, operand in enumerate(group)
                    if isinstance(operand, ast.Constant) and isinstance(operand.value, str)
                    and _folded(operand.value, position == pattern_at) != operand.value
                ]
    return found


def _folded(value: str, pattern: bool) -> str:
    return _fold_pattern(value) if pattern else value.casefold()


def _literal_message(literal: str) -> str:
    return (
        f"{literal!r} is compared with a request id, which is case-folded: write "
        f"{literal.casefold()!r}, or declare ids: {{compare: exact}} in schema.yaml"
    )


def _parse(python: str) -> ast.Expression | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "\D" in a plain literal: the engine reads it the same way
        try:
            return ast.parse(python, mode="eval")
        except (SyntaxError, ValueError):
            return None


def _python(text: str) -> str:
    """A Casbin expression as Python source (pycasbin's own rewrites of &&, || and !)."""
    python = text.replace("&&", " and ").replace("||", " or ")
    return re.sub(r"!(?!=)", " not ", python)


def _fold_pattern(pattern: str) -> str:
    """A regular expression folded outside its escapes: `\\D`, `\\S`, `\\p{Lu}` keep their case."""
    out: list[str] = []
    index, length = 0, len(pattern)
    while index < length:
        char = pattern[index]
        if char == "\\" and index + 1 < length:
            end = index + 2
            if pattern[index + 1] in "pPN" and end < length and pattern[end] == "{":
                close = pattern.find("}", end)
                end = close + 1 if close != -1 else length
            out.append(pattern[index:end])
            index = end
            continue
        out.append(char.casefold())
        index += 1
    return "".join(out)
