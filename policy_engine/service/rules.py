"""What the service can read from a policy's rules as written, for explain and ListAllowed.

The engine decides; this module never does. It answers structural questions
about the rules of one compiled policy (which roles a party may hold, which
rules could match the keys that start with a prefix), always erring on the
side that keeps ListAllowed safe: "might match" when unsure.

Patterns are read as Casbin writes them: `*` (keyMatch, globMatch),
`/:param` (keyMatch2), `{param}` (keyMatch3), glob classes and regular
expressions (regexMatch, anchored at the start only). `literal_prefix` is a
prefix that every key a value can match starts with, under any of those
functions and under plain equality.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policy_engine.engine import Engine, MatchedRule

__all__ = [
    "PolicyRule",
    "RuleIndex",
    "is_literal",
    "key_match",
    "literal_prefix",
    "prefix_of_pattern",
    "reads_object_beyond_attributes",
    "rule_index",
]

# Characters that make a rule value a pattern under some Casbin matching function.
_SPECIAL = frozenset("*?[]{}()|^$+\\")
# Under regexMatch "." matches any character; it still matches itself, so a
# literal with "." stays usable as a literal prefix of itself.
_REGEX_ANY = "."
# r.obj read other than as one of its attributes: r.obj itself, r.obj.id, a str method.
_OBJECT_READ = re.compile(r"\br\.obj\b(?:\.([A-Za-z_][A-Za-z0-9_]*))?")
_STR_NAMES = frozenset(dir(str)) | {"id", "attributes"}
# A matcher as the model keeps it writes r.obj as r_obj (Casbin's escaping).
_ESCAPED_OBJ = re.compile(r"\b([rp])_obj\b")
# The uses of the resource key in a matcher that ListAllowed's pattern proof covers.
_PROVABLE_KEY_USE = re.compile(
    r"\b(?:keyMatch[23]?|globMatch|regexMatch)\(\s*r\.obj\s*,\s*p\.obj\s*\)"
    r"|\br\.obj\s*==\s*p\.obj\b|\bp\.obj\s*==\s*r\.obj\b"
)
_RULE_OBJECT = re.compile(r"\bp\.obj\b")
_ALLOW_TEXT = frozenset({"", "true", "1"})


def is_literal(value: str) -> bool:
    """True when no Casbin matching function reads `value` as anything but itself (or a prefix)."""
    return not (_SPECIAL & set(value)) and "/:" not in value


def prefix_of_pattern(value: str) -> str | None:
    """The prefix of a "<prefix>*" pattern whose prefix is literal, else None."""
    if value.endswith("*") and is_literal(value[:-1]):
        return value[:-1]
    return None


def literal_prefix(value: str) -> str:
    """A prefix of every key `value` can match, whatever the matching function.

    Cut at the first special character (and at "." for regexMatch), then one
    character earlier, since a regex quantifier makes the character before it
    optional; an alternation anywhere makes the prefix empty.
    """
    if "|" in value:
        return ""
    cut = len(value)
    for index, char in enumerate(value):
        if char in _SPECIAL or char == _REGEX_ANY or value.startswith("/:", index):
            cut = index
            break
    if cut == len(value):
        return value
    return value[: max(cut - 1, 0)]


def comparable(a: str, b: str) -> bool:
    """True when one string is a prefix of the other (the key ranges may overlap)."""
    return a.startswith(b) or b.startswith(a)


def key_match(key: str, pattern: str) -> bool:
    """Casbin keyMatch: everything up to the first "*" must equal the key's start."""
    star = pattern.find("*")
    if star == -1:
        return key == pattern
    return key[:star] == pattern[:star] if len(key) > star else key == pattern[:star]


def reads_object_beyond_attributes(text: str) -> bool:
    """True when `text` reads r.obj as a string (r.obj, r.obj.id, a str method), not an attribute."""
    return _object_read(text) is not None


def _object_read(text: str) -> re.Match[str] | None:
    for match in _OBJECT_READ.finditer(text):
        name = match.group(1)
        if name is None or name in _STR_NAMES:
            return match
    return None


def unprovable_key_use(matcher: str) -> str | None:
    """The first use of r.obj or p.obj in `matcher` (as the model keeps it) other than comparing
    the two (equality, keyMatch, keyMatch2/3, globMatch, regexMatch) or reading an attribute
    of r.obj, as written around it; None when there is none."""
    rest = _PROVABLE_KEY_USE.sub("", _ESCAPED_OBJ.sub(r"\1.obj", matcher))
    found = _object_read(rest) or _RULE_OBJECT.search(rest)
    if found is None:
        return None
    return rest[max(found.start() - 20, 0) : found.end() + 20].strip()


@dataclass(frozen=True)
class PolicyRule:
    """A p-type rule with its values by token name (sub, dom, obj, act, cond, eft, ...)."""

    rule: MatchedRule
    fields: Mapping[str, str]

    def get(self, token: str) -> str | None:
        return self.fields.get(token)

    @property
    def is_deny(self) -> bool:
        return (self.fields.get("eft") or "").strip().lower() == "deny"

    @property
    def condition(self) -> str | None:
        """The rule's condition text when it has one that is not trivially true."""
        cond = self.fields.get("cond")
        if cond is None or cond.strip().lower() in _ALLOW_TEXT:
            return None
        return cond

    @property
    def where(self) -> str:
        return f"line {self.rule.line}" if self.rule.line else "the policy"


class RuleIndex:
    """The rules of one compiled policy, read structurally (never to decide)."""

    def __init__(self, engine: Engine) -> None:
        tokens = engine.policy_tokens
        self.rules: tuple[PolicyRule, ...] = tuple(
            PolicyRule(rule, dict(zip(tokens[rule.ptype], rule.values, strict=False)))
            for rule in engine.rules
            if rule.ptype in tokens
        )
        self.ptypes_without_obj = tuple(sorted(p for p, names in tokens.items() if "obj" not in names))
        self.matcher_key_use = unprovable_key_use(engine.model.matchers.get("m", ""))
        # member -> [(role, domain or None)], from every role rule type (g, g2, ...).
        edges: dict[str, list[tuple[str, str | None]]] = {}
        for rule in engine.rules:
            if rule.ptype.startswith("g") and len(rule.values) >= 2:
                domain = rule.values[2] if len(rule.values) > 2 else None
                edges.setdefault(rule.values[0], []).append((rule.values[1], domain))
        self._edges = edges

    def roles(self, member: str, tenant: str | None) -> frozenset[str]:
        """Roles reachable from `member`; in `tenant` only, or in any tenant when None.

        With `tenant=None` this is a superset of what the engine could grant,
        which is the safe direction for "might this rule apply".
        """
        seen: set[str] = set()
        frontier = [member]
        while frontier:
            current = frontier.pop()
            for role, domain in self._edges.get(current, ()):
                if role in seen:
                    continue
                if tenant is not None and domain is not None and not key_match(tenant, domain):
                    continue
                seen.add(role)
                frontier.append(role)
        return frozenset(seen)

    def might_grant(self, rule: PolicyRule, subjects: Iterable[str], tenant: str, action: str) -> bool:
        """True unless the rule surely cannot allow anything for these subjects, tenant and action."""
        if rule.is_deny:
            return False
        return (
            _might_equal(rule.get("sub"), subjects)
            and _might_equal(rule.get("dom"), (tenant,))
            and _might_equal(rule.get("act"), (action,))
        )


def _might_equal(value: str | None, candidates: Iterable[str]) -> bool:
    if value is None or not is_literal(value) or _REGEX_ANY in value:
        return True
    return value in set(candidates)


@functools.lru_cache(maxsize=8)
def rule_index(engine: Engine) -> RuleIndex:
    """The (cached) index of an engine's rules; engines are immutable, so this is too."""
    return RuleIndex(engine)
