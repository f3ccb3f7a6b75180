"""Effect strategies: how matched rules combine into allow or deny, and when to stop early.

pycasbin knows exactly five effect texts (after `p.` escaping). Each maps to
a strategy with pycasbin's `intermediate_effect` (the scan over rules stops
at the first rule whose effect is in `stops_on`) and `final_effect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["ALLOW", "DENY", "INDETERMINATE", "Effect", "EffectKind", "effect_for"]


class EffectKind(IntEnum):
    """The effect of one matched rule."""

    ALLOW = 0
    INDETERMINATE = 1
    DENY = 2


ALLOW = EffectKind.ALLOW
INDETERMINATE = EffectKind.INDETERMINATE
DENY = EffectKind.DENY


@dataclass(frozen=True)
class Effect:
    """One policy effect: its name, where the scan stops, and the final rule."""

    name: str
    stop_on_allow: bool
    stop_on_deny: bool
    subject_priority: bool = False

    def final(self, seen_allow: bool, seen_deny: bool) -> bool:
        """pycasbin's `final_effect`, as a bool, given which effects the scan saw."""
        if self.name == "deny-override":
            return not seen_deny
        if self.name == "allow-and-deny":
            return seen_allow and not seen_deny
        # allow-override and priority: allowed exactly when some rule allowed
        return seen_allow

    @property
    def reports_first_allow(self) -> bool:
        """Effects whose allow decisions pycasbin leaves unexplained (the scan never stops on allow)."""
        return self.name in ("deny-override", "allow-and-deny")


_EFFECTS = {
    "some(where (p_eft == allow))": Effect("allow-override", True, False),
    "!some(where (p_eft == deny))": Effect("deny-override", False, True),
    "some(where (p_eft == allow)) && !some(where (p_eft == deny))": Effect(
        "allow-and-deny", False, True
    ),
    "priority(p_eft) || deny": Effect("priority", True, True),
    "subjectPriority(p_eft) || deny": Effect("priority", True, True, subject_priority=True),
}


def effect_for(text: str) -> Effect | None:
    """The strategy for an (escaped) effect text, or None when pycasbin does not support it."""
    return _EFFECTS.get(text)
