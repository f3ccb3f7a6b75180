"""Which rule patterns a bundle may ship: anchored, linear-time, without regex surprises.

A regexMatch pattern is accepted when all of these hold:

1. Python's `re` parses it and RE2 (google-re2) compiles it: RE2 runs in time
   linear in the input, and what it cannot run (backreferences, lookaround,
   possessive or atomic groups, `\\Z`, ...) is refused with RE2's own reason;
2. every alternative of it is anchored at both ends (`^...$`) and it sets no
   `(?m)` flag, so `^tool:search$` cannot allow `tool:search_and_delete`;
3. it cannot backtrack catastrophically under a backtracking engine (Python's
   `re`, which pycasbin uses). Within a repetition (`*`, `+`, `{m,n}` with
   n > 1): no nested repetition, no part that can match the empty string, no
   alternatives that can start with the same character, no optional part
   whose characters could also start the next round. Outside of
   repetitions: at most two unbounded repetitions in a row that can match
   the same characters (quadratic at worst on a 256-character id).

Character classes are approximated from above (every non-ASCII character is
one class), so the checks refuse some harmless patterns, never the reverse.

A keyMatch2-5 pattern is a regular expression too: it may not hold an
unescaped `.` (a wildcard there; write `\\.` for a dot), must be one the
function can compile, and gets the backtracking check of point 3.
"""

from __future__ import annotations

import ipaddress
import re
import re._parser as sre_parse  # the stdlib's own regex parser: the structure `re` will run
from collections.abc import Iterable

import re2

from policy_engine.engine.functions import pattern_is_valid

__all__ = ["pattern_problem"]

_ALL = frozenset(range(128)) | {"U"}  # ASCII code points, and "U" for every non-ASCII character
_DIGITS = frozenset(range(ord("0"), ord("9") + 1))
_WORD = _DIGITS | frozenset(range(ord("a"), ord("z") + 1)) | frozenset(range(ord("A"), ord("Z") + 1)) | {ord("_")}
_SPACE = frozenset(map(ord, " \t\n\r\f\v"))
_CATEGORIES = {
    "CATEGORY_DIGIT": _DIGITS | {"U"},
    "CATEGORY_NOT_DIGIT": _ALL - _DIGITS,
    "CATEGORY_WORD": _WORD | {"U"},
    "CATEGORY_NOT_WORD": (_ALL - _WORD) | {"U"},
    "CATEGORY_SPACE": _SPACE | {"U"},
    "CATEGORY_NOT_SPACE": _ALL - _SPACE,
}
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_LONG = 16  # a repetition allowing more rounds than this counts as unbounded
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False

Chars = frozenset  # of ASCII code points and "U"


def pattern_problem(function: str, pattern: str) -> str | None:
    """Why `pattern` may not be the pattern argument of `function`; None when it may."""
    if function == "regexMatch":
        return _regex_problem(pattern)
    if function in ("keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5"):
        return _key_pattern_problem(function, pattern)
    if function == "ipMatch":
        return _ip_problem(pattern)
    return None


def _regex_problem(pattern: str) -> str | None:
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"invalid regular expression: {exc}"
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"RE2 cannot run it in linear time: {reason}"
    if parsed.state.flags & re.MULTILINE:
        return "the (?m) flag makes ^ and $ match at every line; must be anchored at both ends (^...$)"
    if not _anchored(list(parsed)):
        return "must be anchored at both ends (^...$)"
    return _backtracking_problem(parsed)


def _key_pattern_problem(function: str, pattern: str) -> str | None:
    if _has_unescaped_dot(pattern):
        return (
            f"a literal '.' is a regex wildcard in {function}; name the resource without it "
            "or write '\\.'"
        )
    if not pattern_is_valid(function, pattern):
        return f"not a valid {function} pattern"
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None  # valid for the function once its parameters are rewritten
    return _backtracking_problem(parsed)


def _ip_problem(pattern: str) -> str | None:
    try:
        ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return "not an IP address or CIDR network; ipMatch would fail on every request"
    return None


def _flatten(items: list) -> list:  # type: ignore[type-arg]
    """A sequence with its plain groups opened: `(.*)(.*)` is two repetitions in a row."""
    flat = []
    for op, argument in items:
        if str(op) == "SUBPATTERN":
            flat.extend(_flatten(list(argument[-1])))
        else:
            flat.append((op, argument))
    return flat


def _has_unescaped_dot(pattern: str) -> bool:
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            return True
    return False


def _anchored(items: list) -> bool:  # type: ignore[type-arg]
    return _anchored_at(items, 0, ("AT_BEGINNING", "AT_BEGINNING_STRING")) and _anchored_at(
        items, -1, ("AT_END",)
    )


def _anchored_at(items: list, end: int, anchors: tuple[str, ...]) -> bool:  # type: ignore[type-arg]
    """Whether every match of `items` is pinned at one end (`end` 0: start, -1: end)."""
    if not items:
        return False
    op, argument = items[end]
    name = str(op)
    if name == "AT":
        return str(argument) in anchors
    if name == "SUBPATTERN":
        return _anchored_at(list(argument[-1]), end, anchors)
    if name == "BRANCH":
        return all(_anchored_at(list(a), end, anchors) for a in argument[1])
    return False


# ---- the backtracking check --------------------------------------------------------------------


def _backtracking_problem(parsed: sre_parse.SubPattern) -> str | None:
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    dot_all = bool(parsed.state.flags & re.DOTALL)
    return _Shape(ignore_case, dot_all).problem(list(parsed), inside_loop=False)


class _Shape:
    """Character sets, emptiness and the repetition rules over `re`'s parse of a pattern."""

    def __init__(self, ignore_case: bool, dot_all: bool) -> None:
        self.ignore_case = ignore_case
        self.dot_all = dot_all

    # -- what a part can match

    def chars(self, items: Iterable) -> Chars:  # type: ignore[type-arg]
        """Every character a match of `items` can contain."""
        found: set = set()  # type: ignore[type-arg]
        for op, argument in items:
            found |= self.item_chars(str(op), argument)
        return frozenset(found)

    def item_chars(self, op: str, argument: object) -> Chars:  # noqa: PLR0911
        if op == "LITERAL":
            return self.letter(argument)  # type: ignore[arg-type]
        if op == "NOT_LITERAL":
            return _ALL - self.letter(argument) | {"U"}  # type: ignore[arg-type]
        if op == "ANY":
            return _ALL if self.dot_all else _ALL - {10}
        if op == "IN":
            return self.char_class(argument)  # type: ignore[arg-type]
        if op in _REPEATS:
            return self.chars(argument[2])  # type: ignore[index]
        if op == "SUBPATTERN":
            return self.chars(argument[-1])  # type: ignore[index]
        if op == "BRANCH":
            return frozenset().union(*(self.chars(a) for a in argument[1]))  # type: ignore[index]
        if op in ("AT", "ASSERT", "ASSERT_NOT"):
            return frozenset()
        return _ALL  # anything else: assume it can match anything

    def letter(self, code: int) -> Chars:
        if code >= 128:
            return frozenset({"U"})
        if self.ignore_case and chr(code).isalpha():
            return frozenset({ord(chr(code).lower()), ord(chr(code).upper())})
        return frozenset({code})

    def char_class(self, members: list) -> Chars:  # type: ignore[type-arg]
        found: set = set()  # type: ignore[type-arg]
        negate = False
        for op, argument in members:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                found |= self.letter(argument)
            elif name == "RANGE":
                low, high = argument
                for code in range(low, min(high, 127) + 1):
                    found |= self.letter(code)
                if high >= 128:
                    found.add("U")
            elif name == "CATEGORY":
                found |= _CATEGORIES.get(str(argument), _ALL)
            else:
                found |= _ALL
        return (_ALL - found) | {"U"} if negate else frozenset(found)

    def nullable(self, items: Iterable) -> bool:  # type: ignore[type-arg]
        return all(self.item_nullable(str(op), argument) for op, argument in items)

    def item_nullable(self, op: str, argument: object) -> bool:
        if op in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF"):
            return True
        if op in _REPEATS:
            return argument[0] == 0 or self.nullable(argument[2])  # type: ignore[index]
        if op == "SUBPATTERN":
            return self.nullable(argument[-1])  # type: ignore[index]
        if op == "BRANCH":
            return any(self.nullable(a) for a in argument[1])  # type: ignore[index]
        return False

    def first(self, items: list) -> Chars:  # type: ignore[type-arg]
        """The characters a non-empty match of `items` can start with."""
        found: set = set()  # type: ignore[type-arg]
        for op, argument in items:
            name = str(op)
            if name in _REPEATS:
                found |= self.first(list(argument[2]))
            elif name == "SUBPATTERN":
                found |= self.first(list(argument[-1]))
            elif name == "BRANCH":
                for alternative in argument[1]:
                    found |= self.first(list(alternative))
            else:
                found |= self.item_chars(name, argument)
            if not self.item_nullable(name, argument):
                break
        return frozenset(found)

    # -- the rules

    def problem(self, items: list, inside_loop: bool) -> str | None:  # type: ignore[type-arg]
        for op, argument in items:
            name = str(op)
            if name in _REPEATS:
                found = self.repeat_problem(argument, inside_loop)
            elif name == "SUBPATTERN":
                found = self.problem(list(argument[-1]), inside_loop)
            elif name == "BRANCH":
                found = self.branch_problem(argument[1], inside_loop)
            elif name in ("ASSERT", "ASSERT_NOT"):
                found = self.problem(list(argument[1]), inside_loop)
            else:
                found = None
            if found:
                return found
        if not inside_loop:
            return self.run_problem(items)
        return None

    def repeat_problem(self, argument: tuple, inside_loop: bool) -> str | None:  # type: ignore[type-arg]
        low, high, body = argument
        body = list(body)
        loops = high is sre_parse.MAXREPEAT or high > 1
        if not loops:
            return self.problem(body, inside_loop)
        if inside_loop:
            return "nested quantifiers backtrack catastrophically"
        found = self.problem(body, inside_loop=True)
        if found:
            return found
        if self.nullable(body):
            return "a repeated part that can match the empty string backtracks catastrophically"
        if self.optional_overlap(body, self.first(body)):
            return (
                "inside a repetition, an optional part can match what starts the next round: "
                "it backtracks catastrophically"
            )
        return None

    def optional_overlap(self, body: list, start: Chars) -> bool:  # type: ignore[type-arg]
        """Whether a part of `body` of variable length can take a character that starts `body`."""
        for op, argument in body:
            name = str(op)
            if name in _REPEATS and argument[0] != argument[1]:
                if self.chars(argument[2]) & start:
                    return True
            elif name == "SUBPATTERN" and self.optional_overlap(list(argument[-1]), start):
                return True
        return False

    def branch_problem(self, alternatives: list, inside_loop: bool) -> str | None:  # type: ignore[type-arg]
        if inside_loop:
            seen: Chars = frozenset()
            for alternative in alternatives:
                alternative = list(alternative)
                if self.nullable(alternative):
                    return (
                        "inside a repetition, alternatives that can match the same text "
                        "(or nothing) backtrack catastrophically"
                    )
                start = self.first(alternative)
                if start & seen:
                    return (
                        "inside a repetition, alternatives that can start with the same character "
                        "backtrack catastrophically"
                    )
                seen |= start
        for alternative in alternatives:
            found = self.problem(list(alternative), inside_loop)
            if found:
                return found
        return None

    def run_problem(self, items: list) -> str | None:  # type: ignore[type-arg]
        """Three unbounded repetitions in a row over common characters: n^3 backtracking."""
        run = 0
        shared: Chars = frozenset()
        for op, argument in _flatten(items):
            name = str(op)
            unbounded = name in _REPEATS and (
                argument[1] is sre_parse.MAXREPEAT or argument[1] > _LONG
            )
            if unbounded:
                chars = self.chars(argument[2])
                if run and chars & shared:
                    run += 1
                    shared |= chars
                else:
                    run, shared = 1, chars
                if run >= 3:
                    return (
                        "three unbounded repetitions in a row that can match the same characters "
                        "backtrack polynomially (n^3)"
                    )
            elif not self.item_nullable(name, argument) and not (
                self.item_chars(name, argument) & shared
            ):
                run, shared = 0, frozenset()
        return None
