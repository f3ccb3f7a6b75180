"""model.conf as written: where each section and key is, and the ones defined twice.

The engine reads model.conf the way pycasbin does, where a second
`[matchers]` or a second `m =` silently replaces the first. A bundle must
not depend on that: a duplicate section or key is refused with its line.
The same walk records the line of every key, so problems found later in a
matcher or an effect can name the line they come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from policy_engine.bundle.loader import MODEL_FILE
from policy_engine.errors import Problem

__all__ = ["ModelLayout", "read_layout"]


@dataclass(frozen=True)
class ModelLayout:
    """The line of each `section/key` of a model.conf, and the problems of its shape."""

    lines: Mapping[str, int]
    problems: tuple[Problem, ...]

    def line_of(self, section: str, key: str) -> int | None:
        return self.lines.get(f"{section}/{key}")


def read_layout(text: str) -> ModelLayout:
    """Walk the lines as pycasbin's config reader does, noting first definitions and repeats."""
    lines: dict[str, int] = {}
    sections: dict[str, int] = {}
    problems: list[Problem] = []
    section = "default"
    pending: int | None = None  # the first line of a key continued with a trailing backslash
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            pending = None
            continue
        if line[0] == "[" and line[-1] == "]":
            pending = None
            section = line[1:-1]
            if section in sections:
                problems.append(
                    Problem(
                        MODEL_FILE,
                        f"section [{section}] is defined twice (first at line {sections[section]})",
                        number,
                    )
                )
            else:
                sections[section] = number
            continue
        start = pending if pending is not None else number
        if line.endswith("\\"):
            pending = start
            continue
        pending = None
        key = _key_of(text, start, number)
        if key is None:
            continue  # the engine reports a line without `=` itself
        where = f"{section}/{key}"
        if where in lines:
            problems.append(
                Problem(
                    MODEL_FILE,
                    f"{key} is defined twice in [{section}] (first at line {lines[where]})",
                    start,
                )
            )
        else:
            lines[where] = start
    return ModelLayout(MappingProxyType(lines), tuple(problems))


def _key_of(text: str, first: int, last: int) -> str | None:
    joined = " ".join(text.split("\n")[first - 1 : last])
    name, sep, _ = joined.partition("=")
    return name.strip() if sep else None
