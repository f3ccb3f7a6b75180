"""model.conf text -> a typed, immutable `Model`.

The reading follows pycasbin exactly (its INI-like config reader and
`Model.add_def`): sections `request_definition`, `policy_definition`,
`role_definition`, `policy_effect` and `matchers`; keys `r`, `r2`, `r3`, ...
are read until the first missing one; `#` and `;` start comment lines; a
trailing `\\` continues a line. Tokens become `r_sub`, `p_obj`, ...; the
effect and matcher texts get Casbin's `p.`/`r.` escaping and lose anything
after a `#`.

What pycasbin would only trip over later (no matcher, no effect, an effect
it does not know, a role definition with fewer than two `_`) is a
`ModelError` here, at load.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from policy_engine.engine.effects import Effect, effect_for
from policy_engine.engine.matcher import escape_assertion, remove_comments
from policy_engine.errors import ModelError

__all__ = ["Model", "RoleDefinition", "RoleKind", "parse_model"]

_SECTIONS = {
    "r": "request_definition",
    "p": "policy_definition",
    "g": "role_definition",
    "e": "policy_effect",
    "m": "matchers",
}
_PARAMS = re.compile(r"\((.*?)\)")


class RoleKind(Enum):
    """Which pycasbin role manager a role definition gets, by its shape."""

    PLAIN = "plain"  # `_, _`: RoleManager, domain arguments ignored
    DOMAIN = "domain"  # `_, _, _`: DomainManager, one role graph per domain
    CONDITIONAL = "conditional"  # `_, _, (_, _)`: ConditionalRoleManager
    CONDITIONAL_DOMAIN = "conditional_domain"  # `_, _, _, (_, _)`: ConditionalDomainManager


@dataclass(frozen=True)
class RoleDefinition:
    """One `g*` definition: its text, how many fields a rule must have, which manager it gets."""

    key: str
    value: str
    token_count: int
    params_count: int
    field_count: int  # the number of `_` in the definition: rule fields used for a link

    @property
    def kind(self) -> RoleKind:
        if self.token_count <= 2:
            return RoleKind.CONDITIONAL if self.params_count else RoleKind.PLAIN
        return RoleKind.CONDITIONAL_DOMAIN if self.params_count else RoleKind.DOMAIN


@dataclass(frozen=True)
class Model:
    """A parsed model: token lists per request/policy type, role definitions, effect, matchers."""

    requests: Mapping[str, tuple[str, ...]]
    policies: Mapping[str, tuple[str, ...]]
    roles: Mapping[str, RoleDefinition]
    effects: Mapping[str, str]
    matchers: Mapping[str, str]
    effect: Effect

    @property
    def effect_text(self) -> str:
        return self.effects["e"]


def _read_config(text: str) -> dict[str, dict[str, str]]:
    """pycasbin's config reader: {section: {option: value}} with its exact line handling."""
    data: dict[str, dict[str, str]] = {}
    section = ""
    buffer: list[str] = []
    number = 0

    def flush() -> None:
        joined = "".join(buffer)
        if not joined:
            return
        parts = joined.split("=", 1)
        if len(parts) != 2:
            raise ModelError(f"line {number}: expected `name = value`, got {parts[0]!r}")
        data.setdefault(section or "default", {})[parts[0].strip()] = parts[1].strip()
        buffer.clear()

    can_write = False
    stream = io.StringIO(text)
    while True:
        if can_write:
            flush()
            can_write = False
        number += 1
        raw = stream.readline()
        if not raw:
            if buffer:
                flush()
            break
        line = raw.strip()
        if not line or line[0] in "#;":
            can_write = True
        elif line[0] == "[" and line[-1] == "]":
            if buffer:
                flush()
                can_write = False
            section = line[1:-1]
        elif line[-1] == "\\":
            buffer.append(line[:-1].strip() + " ")
        else:
            buffer.append(line)
            can_write = True
    return data


def _key(sec: str, i: int) -> str:
    return sec if i == 1 else f"{sec}{i}"


def _values(config: dict[str, dict[str, str]], sec: str) -> dict[str, str]:
    found: dict[str, str] = {}
    options = config.get(_SECTIONS[sec], {})
    i = 1
    while value := options.get(_key(sec, i), ""):
        found[_key(sec, i)] = value
        i += 1
    return found


def parse_model(text: str) -> Model:
    """Parse model.conf text; `ModelError` when pycasbin would refuse it or could never enforce."""
    try:
        config = _read_config(text)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad model
        raise ModelError(f"cannot read model: {exc}") from exc

    def token_map(sec: str) -> dict[str, tuple[str, ...]]:
        return {
            key: tuple(f"{key}_{token.strip()}" for token in value.split(","))
            for key, value in _values(config, sec).items()
        }

    requests = token_map("r")
    policies = token_map("p")
    roles: dict[str, RoleDefinition] = {}
    for key, value in _values(config, "g").items():
        found = _PARAMS.search(value)
        params = [p.strip() for p in found.group(1).split(",")] if found else []
        tokens = value.split(",")
        definition = RoleDefinition(
            key=key,
            value=value,
            token_count=len(tokens) - len(params),
            params_count=len(params),
            field_count=value.count("_"),
        )
        if definition.field_count < 2:
            raise ModelError(f'role definition {key} needs at least two "_" fields: {value!r}')
        roles[key] = definition
    effects = {k: remove_comments(escape_assertion(v)) for k, v in _values(config, "e").items()}
    matchers = {k: remove_comments(escape_assertion(v)) for k, v in _values(config, "m").items()}

    for sec, found_map in (("r", requests), ("p", policies), ("e", effects), ("m", matchers)):
        if sec not in found_map:
            raise ModelError(f"model has no [{_SECTIONS[sec]}] {sec} = ... definition")
    effect = effect_for(effects["e"])
    if effect is None:
        raise ModelError(f"unsupported policy effect: {effects['e']!r}")
    return Model(
        requests=MappingProxyType(requests),
        policies=MappingProxyType(policies),
        roles=MappingProxyType(roles),
        effects=MappingProxyType(effects),
        matchers=MappingProxyType(matchers),
        effect=effect,
    )
