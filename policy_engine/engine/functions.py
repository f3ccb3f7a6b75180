"""The built-in matcher functions of the Casbin dialect, with pycasbin's exact semantics.

Each public function takes `*args` like pycasbin's wrappers do: the first two
arguments are used, extra ones are ignored, and missing ones raise
`IndexError`. Behaviour on odd input (a non-string argument, an invalid
pattern) is pycasbin's: the same inputs raise or answer the same way.

Regular expressions built from rule patterns are compiled once and kept in a
bounded cache (`_regex`), which changes nothing but speed: `re.match(text,
key)` and `re.compile(text).match(key)` agree.

`literal_prefix` is what the rule index uses: every key a pattern can match
starts with the pattern's literal prefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import wcmatch.glob as _wcglob

__all__ = [
    "BUILTIN_FUNCTIONS",
    "KEY_FORMS",
    "builtin_name",
    "NONDETERMINISTIC_FUNCTIONS",
    "PATTERN_FUNCTIONS",
    "collapse_slashes",
    "glob_literal_prefix",
    "glob_match",
    "key_match",
    "literal_prefix",
    "pattern_is_valid",
]

# Rewrites of a keyMatch2/3/4/5 pattern into a regular expression (Casbin's definitions).
_COLON_PARAM = re.compile(r"(.*?):[^\/]+(.*?)")
_BRACE_PARAM_LAZY = re.compile(r"(.*?){[^\/]+?}(.*?)")
_BRACE_PARAM_NAMED = re.compile(r"{([^/]+)}")
_BRACE_PARAM = re.compile(r"{[^/]+}")

_SLASH_RUN = re.compile(r"/{2,}")
_STAR_RUN = re.compile(r"\*{2,}")
_GLOB_FLAGS = _wcglob.GLOBSTAR | _wcglob.BRACE

_REGEX_CACHE: dict[str, re.Pattern[str]] = {}
_REGEX_CACHE_LIMIT = 4096


def _regex(text: str) -> re.Pattern[str]:
    pattern = _REGEX_CACHE.get(text)
    if pattern is None:
        pattern = re.compile(text)
        if len(_REGEX_CACHE) >= _REGEX_CACHE_LIMIT:
            _REGEX_CACHE.clear()
        _REGEX_CACHE[text] = pattern
    return pattern


def _regex_match(key: Any, text: Any) -> bool:
    if type(text) is not str:  # noqa: E721 - re.match's own errors for odd types
        return bool(re.match(text, key))
    return _regex(text).match(key) is not None


def key_match(key1: Any, key2: Any) -> Any:
    """`/foo/bar` matches `/foo/*`: everything after the first `*` is a wildcard."""
    star = key2.find("*")
    if star == -1:
        return key1 == key2
    if len(key1) > star:
        return key1[:star] == key2[:star]
    return key1 == key2[:star]


def _key_match2_regex(key2: Any) -> str:
    key2 = key2.replace("/*", "/.*")
    key2 = _COLON_PARAM.sub(r"\g<1>[^\/]+\g<2>", key2, 0)
    if key2 == "*":
        key2 = "(.*)"
    return "^" + key2 + "$"


def key_match2(key1: Any, key2: Any) -> bool:
    """`/resource1` matches `/:resource`; `*` after `/` is a wildcard; the pattern is a regex."""
    return _regex_match(key1, _key_match2_regex(key2))


def _key_match3_regex(key2: Any) -> str:
    key2 = key2.replace("/*", "/.*")
    key2 = _BRACE_PARAM_LAZY.sub(r"\g<1>[^\/]+\g<2>", key2, 0)
    return "^" + key2 + "$"


def key_match3(key1: Any, key2: Any) -> bool:
    """`/resource1` matches `/{resource}`."""
    return _regex_match(key1, _key_match3_regex(key2))


def _key_match4_parts(key2: Any) -> tuple[str, list[str]]:
    key2 = key2.replace("/*", "/.*")
    names: list[str] = []

    def capture(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "([^/]+)"

    key2 = _BRACE_PARAM_NAMED.sub(capture, key2)
    return "^" + key2 + "$", names


def key_match4(key1: Any, key2: Any) -> bool:
    """Like keyMatch3, and a repeated `{name}` must capture the same text each time."""
    text, names = _key_match4_parts(key2)
    found = _regex(text).match(key1)
    if found is None:
        return False
    groups = found.groups()
    if len(names) != len(groups):
        raise Exception("KeyMatch4: number of tokens is not equal to number of values")  # noqa: TRY002
    seen: dict[str, str] = {}
    for name, value in zip(names, groups, strict=True):
        if seen.setdefault(name, value) != value:
            return False
    return True


def _key_match5_regex(key2: Any) -> str:
    key2 = key2.replace("/*", "/.*")
    key2 = _BRACE_PARAM.sub(r"[^/]+", key2, 0)
    return "^" + key2 + "$"


def key_match5(key1: Any, key2: Any) -> bool:
    """Like keyMatch3 without capture checks, ignoring a `?query` in the key."""
    cut = key1.find("?")
    if cut != -1:
        key1 = key1[:cut]
    return _regex_match(key1, _key_match5_regex(key2))


def regex_match(key1: Any, key2: Any) -> bool:
    """`re.match(key2, key1)`: anchored at the start only."""
    return _regex_match(key1, key2)


def _globstar_segments(pattern: str) -> str:
    """pycasbin 2.x's rewrite before wcmatch: a lone `**` segment stays, `***...` in a
    segment becomes `*`."""
    return "/".join(
        segment if segment == "**" else _STAR_RUN.sub("*", segment) for segment in pattern.split("/")
    )


def _globstar_pattern(pattern: str) -> str:
    """The rewrite, and a trailing `/**` also matches its base (`{base,base/**}`)."""
    joined = _globstar_segments(pattern)
    if joined.endswith("/**"):
        joined = "{" + joined[:-3] + "," + joined + "}"
    return joined


def glob_match(string: Any, pattern: Any) -> bool:
    """pycasbin 2.x's globMatch: wcmatch globbing with `**` and `{a,b}`; a leading `*/` is `/`."""
    while pattern.startswith("*/"):
        pattern = pattern[1:]
    return _wcglob.globmatch(string, _globstar_pattern(pattern), flags=_GLOB_FLAGS)


def ip_match(ip1: Any, ip2: Any) -> bool:
    """`192.168.2.123` matches `192.168.2.0/24`; a bad request address raises."""
    address = ipaddress.ip_address(ip1)
    try:
        return address in ipaddress.ip_network(ip2, strict=False)
    except ValueError:
        return address == ip2


def _time_match(*args: Any) -> bool:
    if len(args) != 2:
        raise RuntimeError("time_match requires 2 arguments")
    start, end = args
    try:
        now = datetime.now()
        if start != "_" and not now > datetime.strptime(start, "%Y-%m-%d %H:%M:%S"):
            return False
        return not (end != "_" and not now < datetime.strptime(end, "%Y-%m-%d %H:%M:%S"))
    except Exception as exc:
        raise RuntimeError(exc) from exc


def _two(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        return fn(args[0], args[1])

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    return wrapper


BUILTIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "keyMatch": _two(key_match),
    "keyMatch2": _two(key_match2),
    "keyMatch3": _two(key_match3),
    "keyMatch4": _two(key_match4),
    "keyMatch5": _two(key_match5),
    "regexMatch": _two(regex_match),
    "ipMatch": _two(ip_match),
    "globMatch": _two(glob_match),
    "timeMatch": _time_match,
}
"""The functions pycasbin 2.x registers for every matcher (keyGet* are not among them)."""

NONDETERMINISTIC_FUNCTIONS = frozenset({"timeMatch"})
"""Functions whose answer depends on the clock: decisions using them are never cached."""

PATTERN_FUNCTIONS = frozenset(
    {"keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5", "regexMatch", "globMatch"}
)
"""`f(key, pattern)` functions the index can narrow by the pattern's literal prefix."""

_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS = frozenset("*+?{")


def _regex_literal_prefix(text: str) -> str:
    """The text every match of `^text` (or `re.match(text)`) starts with."""
    if "|" in text:
        return ""
    for i, char in enumerate(text):
        if char in _REGEX_SPECIAL:
            return text[: i - 1] if char in _QUANTIFIERS and i > 0 else text[:i]
    return text


def literal_prefix(function: str, pattern: str) -> str:
    """A prefix of every key that `function(key, pattern)` accepts (possibly "")."""
    if function == "globMatch":
        return glob_literal_prefix(pattern)
    if function == "regexMatch":
        return _regex_literal_prefix(pattern)
    if function == "keyMatch2":
        text = _key_match2_regex(pattern)[1:]
    elif function == "keyMatch3":
        text = _key_match3_regex(pattern)[1:]
    elif function == "keyMatch4":
        text = _key_match4_parts(pattern)[0][1:]
    else:  # keyMatch5 (applied to the key before its "?")
        text = _key_match5_regex(pattern)[1:]
    prefix = _regex_literal_prefix(text)
    # keyMatch2/5 patterns keep `:` and `{}` out of the literal part already; be careful anyway.
    for stop in (":", "{"):
        cut = prefix.find(stop)
        if cut != -1:
            prefix = prefix[:cut]
    return prefix


def glob_literal_prefix(pattern: str) -> str:
    """A prefix of `collapse_slashes(key)` for every key globMatch accepts (possibly "").

    wcmatch treats runs of `/` as one on both sides, so the prefix is taken with runs
    collapsed and the index compares it with the key collapsed the same way."""
    while pattern.startswith("*/"):
        pattern = pattern[1:]
    pattern = _globstar_segments(pattern)
    if pattern.endswith("/**"):  # matches the base too: only the base's prefix is certain
        pattern = pattern[:-3]
    for i, char in enumerate(pattern):
        if char in "?*[{\\":
            pattern = pattern[:i]
            break
    return collapse_slashes(pattern)


def collapse_slashes(key: str) -> str:
    return _SLASH_RUN.sub("/", key) if "//" in key else key


def _before_query(key: str) -> str:
    cut = key.find("?")
    return key if cut == -1 else key[:cut]


KEY_FORMS: dict[str, Callable[[str], str]] = {
    "keyMatch5": _before_query,  # keyMatch5 ignores a `?query`
    "globMatch": collapse_slashes,  # wcmatch reads runs of `/` as one
}
"""The key as a pattern function compares it with `literal_prefix` (identity when absent)."""


def pattern_is_valid(function: str, pattern: str) -> bool:
    """Whether `function(key, pattern)` answers without raising for every string key."""
    try:
        if function == "regexMatch":
            re.compile(pattern)
        elif function == "keyMatch2":
            re.compile(_key_match2_regex(pattern))
        elif function == "keyMatch3":
            re.compile(_key_match3_regex(pattern))
        elif function == "keyMatch4":
            text, names = _key_match4_parts(pattern)
            if re.compile(text).groups != len(names):
                return False
        elif function == "keyMatch5":
            re.compile(_key_match5_regex(pattern))
        elif function == "globMatch":
            glob_match("", pattern)  # wcmatch refuses some patterns (e.g. too many braces)
    except Exception:  # noqa: BLE001 - any refusal means "not valid for the index"
        return False
    return True


# pycasbin's own callables (casbin.util), recognised by module and name without importing it.
_PYCASBIN_MODULE = "casbin.util.builtin_operators"
_PYCASBIN_NAMES = {
    "key_match": "keyMatch", "key_match_func": "keyMatch",
    "key_match2": "keyMatch2", "key_match2_func": "keyMatch2",
    "key_match3": "keyMatch3", "key_match3_func": "keyMatch3",
    "key_match4": "keyMatch4", "key_match4_func": "keyMatch4",
    "key_match5": "keyMatch5", "key_match5_func": "keyMatch5",
    "regex_match": "regexMatch", "regex_match_func": "regexMatch",
    "ip_match": "ipMatch", "ip_match_func": "ipMatch",
    "glob_match": "globMatch", "glob_match_func": "globMatch",
    "time_match_func": "timeMatch",
}  # fmt: skip
_OURS: tuple[tuple[Any, str], ...] = (
    *((fn, name) for name, fn in BUILTIN_FUNCTIONS.items()),
    (key_match, "keyMatch"), (key_match2, "keyMatch2"), (key_match3, "keyMatch3"),
    (key_match4, "keyMatch4"), (key_match5, "keyMatch5"), (regex_match, "regexMatch"),
    (ip_match, "ipMatch"), (glob_match, "globMatch"), (_time_match, "timeMatch"),
)  # fmt: skip


def builtin_name(fn: Any) -> str | None:
    """The matcher name of a built-in function given as a callable (ours, or pycasbin's
    `casbin.util` one, whose answers are the same), or None for any other callable."""
    for ours, name in _OURS:
        if fn is ours:
            return name
    if getattr(fn, "__module__", None) == _PYCASBIN_MODULE:
        return _PYCASBIN_NAMES.get(getattr(fn, "__name__", ""))
    return None
