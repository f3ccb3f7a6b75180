"""Is this text safe as an identity? Refuse what would make a look-alike of another identity.

A token's `sub`, an `act` hop or a certificate's SAN becomes the id rules
and rate limits see. `bob\u200b` (a zero-width space), `b\u043eb` (a Cyrillic o)
or `ｂｏｂ` (fullwidth) all look like `bob` in a log or a console, and each
would be a fresh identity: no roles, no quarantine, no rate limit of its
own. Refused here:

- control, format (zero-width, bidi), private-use, surrogate and unassigned
  characters, every kind of whitespace, and the wildcards `*` and `?`;
- text that Unicode NFKC normalisation changes (fullwidth and compatibility
  forms, ligatures, composed vs decomposed accents);
- letters of more than one of the scripts that share look-alike letters
  (Latin, Greek, Cyrillic, Armenian, Cherokee) in one identity.
"""

from __future__ import annotations

import unicodedata

__all__ = ["identity_problem"]

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zs", "Zl", "Zp"})
_CONFUSABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "CHEROKEE")
_MAX_LENGTH = 1024


def identity_problem(text: str) -> str | None:
    """What makes `text` unsafe as an identity (a short phrase), or None when it is safe."""
    if not text:
        return "is empty"
    if len(text) > _MAX_LENGTH:
        return f"is longer than {_MAX_LENGTH} characters"
    if text.isascii():
        # ASCII has no look-alike scripts and no normalisation forms: only controls and spaces.
        if any(ch <= " " or ch == "\x7f" for ch in text):
            return "contains a control or whitespace character"
        if "*" in text or "?" in text:
            return "contains a wildcard character (* or ?)"
        return None
    scripts: set[str] = set()
    for ch in text:
        category = unicodedata.category(ch)
        if category in _REFUSED_CATEGORIES:
            return f"contains an invisible, control or whitespace character (U+{ord(ch):04X})"
        if category.startswith("L"):
            name = unicodedata.name(ch, "")
            for script in _CONFUSABLE_SCRIPTS:
                if name.startswith(script):
                    scripts.add(script)
    if unicodedata.normalize("NFKC", text) != text:
        return "is not in Unicode normal form NFKC (compatibility or look-alike characters)"
    if "*" in text or "?" in text:
        return "contains a wildcard character (* or ?)"
    if len(scripts) > 1:
        return f"mixes look-alike scripts ({', '.join(sorted(scripts)).lower()})"
    return None
