"""The one set of checks a bundle passes before it is stored: validate, test and push all run it.

In order, collecting every problem with its file and line:

1. model.conf as written: no section or key defined twice (`model_text`);
2. compile: the model and every rule load into an Engine;
3. every matcher, with the request and policy types it reads, parses and
   names only what exists (`matchers`);
4. the lint: patterns, eval() conditions, effects, roles, fields (`lint`);
5. schema.yaml, strictly (`schema`);
6. only when nothing above was found (a test must not run a refused
   pattern): the bundle's tests, malformed files and unknown fixtures, then
   failures.

`inspect_bundle` returns everything found (so `policyctl test` can print the
test results); `check_bundle` raises BundleError unless nothing was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policy_engine.bundle.lint import lint_bundle
from policy_engine.bundle.loader import MODEL_FILE, Bundle, bundle_schema, compile_bundle
from policy_engine.bundle.matchers import check_matchers
from policy_engine.bundle.model_text import ModelLayout, read_layout
from policy_engine.bundle.schema import AttributeSchema
from policy_engine.bundle.tests import TestReport, run_bundle_tests
from policy_engine.engine import Engine
from policy_engine.errors import BundleError, Problem

__all__ = ["BundleCheck", "check_bundle", "inspect_bundle"]

_READER_LINE = re.compile(r"^line (\d+): ")
_ROLE = re.compile(r"role definition (g\d*)\b")


@dataclass(frozen=True)
class BundleCheck:
    """What the checks found: the compiled engine, its schema, the test report, the problems.

    `problems` excludes test failures, which are in `report` (`refusals` has both).
    """

    engine: Engine | None
    schema: AttributeSchema | None
    report: TestReport | None
    problems: tuple[Problem, ...]

    @property
    def refusals(self) -> tuple[Problem, ...]:
        failures = tuple(self.report.problems()) if self.report is not None else ()
        return self.problems + failures


def inspect_bundle(bundle: Bundle) -> BundleCheck:
    """Run every check; never raises for a bad bundle."""
    layout = read_layout(bundle.model_text)
    problems = list(layout.problems)
    try:
        engine = compile_bundle(bundle)
    except BundleError as exc:
        problems.extend(_located(p, layout) for p in exc.problems)
        return BundleCheck(None, None, None, tuple(problems))
    problems.extend(lint_bundle(bundle, engine, check_matchers(engine.model, engine.rules, layout)))
    schema = None
    try:
        schema = bundle_schema(bundle, engine)
    except BundleError as exc:
        problems.extend(exc.problems)
    report = None
    if not problems:  # a test never runs a matcher or pattern the checks above refused
        try:
            report = run_bundle_tests(bundle, engine)
        except BundleError as exc:
            problems.extend(exc.problems)
    return BundleCheck(engine, schema, report, tuple(problems))


def check_bundle(bundle: Bundle) -> Engine:
    """The compiled engine of a bundle that passes every check; else BundleError with them all."""
    checked = inspect_bundle(bundle)
    if checked.refusals or checked.engine is None:
        raise BundleError(checked.refusals)
    return checked.engine


def _located(problem: Problem, layout: ModelLayout) -> Problem:
    """A model.conf problem from the engine, given the line it is about when that can be told."""
    if problem.file != MODEL_FILE or problem.line is not None:
        return problem
    message = problem.message
    line = None
    if found := _READER_LINE.match(message):
        line, message = int(found.group(1)), message[found.end() :]
    elif "policy effect" in message:
        line = layout.line_of("policy_effect", "e")
    elif found := _ROLE.search(message):
        line = layout.line_of("role_definition", found.group(1))
    elif "request" in message or "token" in message:
        line = layout.line_of("request_definition", "r")
    return Problem(problem.file, message, line)
