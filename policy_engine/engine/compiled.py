"""CompiledMatcher: one (request type, policy type, matcher) compiled against its rules.

pycasbin's decision is a scan: for each rule in order, evaluate the matcher;
a truthy result adds the rule's effect; the effect strategy may stop the
scan; errors raised on the way propagate. This module reproduces that scan
exactly, and makes it cheap by skipping only rules whose outcome is known to
be "no match, no error" without evaluating them.

How rules are skipped (see `_Analysis`): the matcher is split into its
top-level `and` conjuncts. The longest prefix of conjuncts that provably
cannot raise (given string values for the request parts they read) is the
*safe prefix*. Its conjuncts of these shapes become index dimensions:

* `R == p.x`                      exact value of p.x
* `g(R, p.x[, R2])`               p.x among R's roles in domain R2 (closure)
* `keyMatch(R, p.x)`              p.x equal to R, or a `*` pattern whose prefix R has
* `keyMatch2..5/regexMatch/globMatch(R, p.x)`  the pattern's literal prefix is a prefix of R
* conjuncts that read only rule values: evaluated per rule at load

(R: an expression of request values only). A rule outside the index fails
one of these dimensions, and everything before it in the safe prefix is
either another such conjunct or a request-only conjunct, so pycasbin's
evaluation of that rule ends with `False` and no error. Request-only
conjuncts are evaluated once per request; when one is falsy every rule
would stop there (handled without a scan), and when one raises or gives an
odd value the exact linear scan decides.

Candidates are scanned in rule order with a *residual* function: the
matcher without the conjuncts the index already guarantees true. Anything
the analysis does not understand keeps the exact linear scan over every
rule, which still evaluates each rule with the matcher compiled once.
"""

from __future__ import annotations

import ast
import re
import copy
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_engine.engine.effects import Effect
from policy_engine.engine.functions import (
    BUILTIN_FUNCTIONS,
    KEY_FORMS,
    NONDETERMINISTIC_FUNCTIONS,
    PATTERN_FUNCTIONS,
    literal_prefix,
    pattern_is_valid,
)
from policy_engine.engine.matcher import (
    TAIL,
    CompiledExpression,
    InterpreterPool,
    ParsedExpression,
    compile_expression,
    escape_assertion,
    eval_arguments,
    has_eval,
    parse_expression,
    rewrite_operators,
    substitute_evals,
)
from policy_engine.engine.roles import ConditionalRoleGraph, RoleGraph
from policy_engine.engine.rules import RuleSet
from policy_engine.engine.types import Decision, Entity, MatchedRule
from policy_engine.errors import EngineError, EvaluationError

__all__ = ["CompiledMatcher", "is_simple"]

_STRING_TYPES = frozenset({str, Entity})
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes, complex})
_CONTAINER_TYPES = frozenset({list, tuple, set, frozenset})
_SAFE_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_PLACEHOLDER = "_pe_eval_{}_"
_DECISION_MEMO = 65536  # decisions (allowed, rule) kept for reuse: they are immutable


def _readable(matcher_text: str) -> str:
    """The matcher as written in model.conf (`r.sub`, not the escaped `r_sub`)."""
    return _ESCAPED.sub(lambda m: m.group(1) + ".", matcher_text)


_ESCAPED = re.compile(r"\b([rp][0-9]*)_(?=[A-Za-z_])")


def is_simple(value: Any, depth: int = 0) -> bool:
    """Whether a request value holds only builtin types (the compiled evaluator is exact on them)."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return True
    if depth > 8:
        return False
    if kind is Entity:
        values = value.attributes.values()
        return all(type(v) in _SCALAR_TYPES for v in values) or all(
            is_simple(v, depth + 1) for v in values
        )
    if kind in _CONTAINER_TYPES:
        return all(is_simple(v, depth + 1) for v in value)
    if kind is dict:
        return all(is_simple(k, depth + 1) and is_simple(v, depth + 1) for k, v in value.items())
    return False


class _RuleFailure(Exception):
    """Evaluating rule `index` (None: before any rule) raised `error`."""

    def __init__(self, index: int | None, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


class _Fallback(Exception):
    """This request takes the exact linear scan."""


class _NoIndex(Exception):
    """This matcher cannot be indexed (it always takes the linear scan)."""


@dataclass
class _Variant:
    """One concrete matcher expression (one per distinct `eval()` rule text, else just one)."""

    parsed: ParsedExpression
    full: CompiledExpression | None = None
    residual: CompiledExpression | None = None
    residual_trivial: bool = False


@dataclass
class _Dimension:
    kind: str  # "eq", "g", "keymatch", "prefix"
    rule_index: int  # which rule field the dimension reads
    key: int  # which request key gives the value
    domain_key: int | None = None  # g: which request key gives the domain
    graph: RoleGraph | None = None
    function: str = ""
    lengths: tuple[int, ...] = ()  # pattern dims: the distinct literal-prefix lengths
    prefixes: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class _Plan:
    keys: list[CompiledExpression] = field(default_factory=list)
    key_names: list[int | None] = field(default_factory=list)  # request position of plain keys
    key_dumps: dict[str, int] = field(default_factory=dict)
    string_keys: set[int] = field(default_factory=set)
    request_conjuncts: list[int] = field(default_factory=list)
    exact: list[_Dimension] = field(default_factory=list)
    patterns: list[_Dimension] = field(default_factory=list)
    static_masks: list[list[bool]] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)
    tail_key: int | None = None
    root: Any = None
    key_getter: Callable[[tuple[Any, ...]], Sequence[Any]] | None = None  # all keys plain names
    steps: list[tuple[Any, ...]] = field(default_factory=list)


class _Refs(ast.NodeVisitor):
    def __init__(self, request: Mapping[str, int], rule: Mapping[str, int]) -> None:
        self.request_names = request
        self.rule_names = rule
        self.request = False
        self.rule = False
        self.placeholder = False
        self.calls: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:  # noqa: N802 - ast visitor API
        if node.id in self.rule_names:
            self.rule = True
        elif node.id in self.request_names:
            self.request = True
        elif node.id.startswith("_pe_eval_"):
            self.placeholder = True

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802 - ast visitor API
        if isinstance(node.func, ast.Name):
            self.calls.add(node.func.id)
        self.generic_visit(node)


def _conjuncts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return [part for value in node.values for part in _conjuncts(value)]
    return [node]


class _Substitute(ast.NodeTransformer):
    def __init__(self, parts: Mapping[str, ast.expr]) -> None:
        self.parts = parts

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802 - ast visitor API
        part = self.parts.get(node.id)
        return copy.deepcopy(part) if part is not None else node


class CompiledMatcher:
    """Decides requests for one (r, p, m) triple over one ordered rule list; immutable."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        request_tokens: Sequence[str],
        rule_tokens: Sequence[str],
        ptype: str,
        matcher_text: str,
        rules: RuleSet,
        functions: Mapping[str, Callable[..., Any]],
        graphs: Mapping[str, Any],
        effect: Effect,
        volatile: frozenset[str] = NONDETERMINISTIC_FUNCTIONS,
        mtype: str = "m",
        policy_file: str | None = None,
    ) -> None:
        """`volatile`: functions whose answers may change between calls (no decision cache);
        `mtype` and `policy_file` only name things in error messages."""
        self._mtype = mtype
        self._policy_file = policy_file
        self._matcher_source = _readable(matcher_text)
        self.ptype = ptype
        self.effect = effect
        self.request_tokens = tuple(request_tokens)
        self.rule_tokens = tuple(rule_tokens)
        self._rules = rules
        self._values = rules.values
        self._functions = functions
        self._graphs = graphs
        self._volatile = volatile
        # role graphs the index may use, and those that can raise (link conditions)
        self._walked = {k for k, g in graphs.items() if isinstance(g, ConditionalRoleGraph)}
        self._interpreters = InterpreterPool(functions)
        self._request_names = {t: i for i, t in enumerate(request_tokens)}
        self._rule_names = {t: i for i, t in enumerate(rule_tokens)}
        self._eft = self._rule_names.get(f"{ptype}_eft")
        self._always_raises: Exception | None = None
        self._variant_of: list[int] | None = None
        self._variants: list[_Variant] = []
        self._plan: _Plan | None = None
        self.cacheable = True
        self._no_match = Decision(allowed=effect.final(False, False))
        self._decisions: dict[tuple[bool, int], Decision] = {}
        # pycasbin checks a rule's size when its scan reaches it: rules from the first misfit
        # on are never evaluated, and a scan that gets there fails.
        self._misfit = next(
            (i for i, v in enumerate(self._values) if len(v) != len(self.rule_tokens)), None
        )
        if self._misfit is not None:
            self._values = self._values[: self._misfit]
        self._build(matcher_text)

    # ---------------------------------------------------------------- construction

    def _compile(self, node: ast.expr | None) -> CompiledExpression | None:
        if node is None:
            return None
        return compile_expression(node, self._request_names, self._rule_names, self._functions)

    def _note_functions(self, node: ast.AST | None) -> None:
        if node is None:
            return
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name):
                if sub.func.id in self._volatile:
                    self.cacheable = False

    def _build(self, text: str) -> None:
        if not has_eval(text):
            parsed = parse_expression(rewrite_operators(text))
            if parsed.error is not None:
                self._always_raises = parsed.error
                return
            self._note_functions(parsed.node)
            self._variants = [_Variant(parsed, self._compile(parsed.node))]
            template = parsed.node
        else:
            template = self._build_eval_variants(text)
            if self._always_raises is not None or template is None:
                return
        if not self._rules or template is None or self._misfit is not None:
            return
        try:
            self._plan = self._analyse(template)
        except _NoIndex:
            self._plan = None

    def _build_eval_variants(self, text: str) -> ast.expr | None:
        names = eval_arguments(text)
        if not self._rules:
            self._always_raises = RuntimeError(
                "please make sure rule exists in policy when using eval() in matcher"
            )
            return None
        missing = [n for n in names if n not in self._rule_names]
        if missing:
            self._always_raises = KeyError(missing[0])
            return None
        positions = [self._rule_names[n] for n in names]
        by_texts: dict[tuple[str, ...], int] = {}
        variant_of: list[int] = []
        for values in self._values:
            texts = tuple(escape_assertion(values[at]) for at in positions)
            index = by_texts.get(texts)
            if index is None:
                index = len(self._variants)
                by_texts[texts] = index
                parsed = parse_expression(rewrite_operators(substitute_evals(text, texts)))
                self._note_functions(parsed.node)
                self._variants.append(_Variant(parsed, self._compile(parsed.node)))
            variant_of.append(index)
        self._variant_of = variant_of

        # The template: each eval(...) as a placeholder name; indexable only when every
        # variant is the template with its eval texts substituted (and parses).
        placeholders = [_PLACEHOLDER.format(i) for i in range(len(names))]
        if any(p in text for p in placeholders):
            return None
        template = parse_expression(
            rewrite_operators(substitute_evals(text, placeholders))
        ).node
        if template is None:
            return None
        self._eval_parts: dict[int, dict[str, ast.expr]] = {}
        for texts, index in by_texts.items():
            variant = self._variants[index]
            if variant.parsed.node is None:
                return None
            parts: dict[str, ast.expr] = {}
            for placeholder, rule_text in zip(placeholders, texts, strict=True):
                part = parse_expression("(" + rewrite_operators(rule_text) + ")").node
                if part is None:
                    return None
                parts[placeholder] = part
            expected = _Substitute(parts).visit(copy.deepcopy(template))
            if ast.dump(expected) != ast.dump(variant.parsed.node):
                return None
            self._eval_parts[index] = parts
        return template

    def _key(self, node: ast.expr, *, string: bool, plan: _Plan) -> int:
        dump = ast.dump(node)
        index = plan.key_dumps.get(dump)
        if index is None:
            fn = self._compile(node)
            if fn is None:
                raise _NoIndex
            index = len(plan.keys)
            plan.keys.append(fn)
            plan.key_dumps[dump] = index
            plan.key_names.append(
                self._request_names[node.id]
                if isinstance(node, ast.Name) and node.id in self._request_names
                else None
            )
        if string:
            plan.string_keys.add(index)
        return index

    def _refs(self, node: ast.AST) -> _Refs:
        refs = _Refs(self._request_names, self._rule_names)
        refs.visit(node)
        return refs

    def _request_only(self, node: ast.expr) -> bool:
        refs = self._refs(node)
        return not refs.rule and not refs.placeholder

    def _builtin(self, name: str) -> bool:
        """Whether `name` is still the built-in function (add_function may replace it)."""
        return name in BUILTIN_FUNCTIONS and self._functions.get(name) is BUILTIN_FUNCTIONS[name]

    def _rule_field(self, node: ast.expr) -> int | None:
        if isinstance(node, ast.Name) and node.id in self._rule_names:
            return self._rule_names[node.id]
        return None

    def _patterns_valid(self, function: str, at: int) -> bool:
        return all(pattern_is_valid(function, values[at]) for values in self._values)

    def _analyse(self, template: ast.expr) -> _Plan:  # noqa: C901, PLR0912
        plan = _Plan()
        conjuncts = _conjuncts(template)
        last = len(conjuncts) - 1
        for position, node in enumerate(conjuncts):
            refs = self._refs(node)
            if refs.placeholder:
                break
            if not refs.rule:  # request-only: evaluated once per request
                key = self._key(node, string=False, plan=plan)
                plan.request_conjuncts.append(key)
                plan.dropped.add(position)
                if position == last:
                    plan.tail_key = key
                continue
            if not refs.request and not (refs.calls & self._volatile):
                mask = self._static_mask(node)
                if mask is not None:
                    plan.static_masks.append(mask)
                    plan.dropped.add(position)
                    continue
            dimension = self._dimension(node, plan)
            if dimension is not None:
                (plan.exact if dimension.kind in ("eq", "g") else plan.patterns).append(dimension)
                if dimension.kind != "prefix":
                    plan.dropped.add(position)
                continue
            pending: list[ast.expr] = []
            if self._safe(node, pending):
                for key_node in pending:
                    self._key(key_node, string=True, plan=plan)
                continue
            break
        if not (plan.exact or plan.patterns or plan.static_masks or plan.request_conjuncts):
            raise _NoIndex
        self._build_residuals(conjuncts, plan)
        plan.root = self._build_index(plan)
        self._prepare_steps(plan)
        return plan

    def _prepare_steps(self, plan: _Plan) -> None:
        if plan.key_names and all(i is not None for i in plan.key_names):
            positions = [i for i in plan.key_names if i is not None]
            if len(positions) == 1:
                only = positions[0]
                plan.key_getter = lambda rv: (rv[only],)
            else:
                plan.key_getter = operator.itemgetter(*positions)
        for dim in plan.exact:
            if dim.kind == "eq":
                plan.steps.append((0, dim.key))
            else:
                graph = dim.graph
                assert graph is not None
                domain_key = dim.domain_key if graph.domain_aware else None
                if graph.exact_closures:
                    reaching = graph.names_reaching
                else:  # pattern names: exact over the values the rules hold in this field
                    reaching = graph.reaching(v[dim.rule_index] for v in self._values)
                plan.steps.append((1, dim.key, domain_key, reaching))
        for dim in plan.patterns:
            plan.steps.append(
                (2, dim.key, dim.kind == "keymatch", KEY_FORMS.get(dim.function), dim.lengths,
                 dim.prefixes)
            )  # fmt: skip

    def _static_mask(self, node: ast.expr) -> list[bool] | None:
        fn = self._compile(node)
        if fn is None:
            return None
        mask: list[bool] = []
        try:
            for values in self._values:
                result = fn((), values, None)
                if type(result) is not bool:
                    return None
                mask.append(result)
        except Exception:  # noqa: BLE001 - a conjunct that can raise is not static
            return None
        return mask

    def _dimension(self, node: ast.expr, plan: _Plan) -> _Dimension | None:
        if (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.Eq)
        ):
            left, right = node.left, node.comparators[0]
            for rule_side, request_side in ((left, right), (right, left)):
                at = self._rule_field(rule_side)
                if at is not None and self._request_only(request_side):
                    key = self._key(request_side, string=True, plan=plan)
                    return _Dimension("eq", at, key)
            return None
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords
        ):
            return None
        name, args = node.func.id, node.args
        if any(isinstance(a, ast.Starred) for a in args) or len(args) < 2:
            return None
        at = self._rule_field(args[1])
        if at is None or not self._request_only(args[0]):
            return None
        if name in self._graphs and name not in self._walked and len(args) <= 3:
            domain_key = None
            if len(args) == 3:
                if not self._request_only(args[2]):
                    return None
                domain_key = self._key(args[2], string=True, plan=plan)
            key = self._key(args[0], string=True, plan=plan)
            return _Dimension("g", at, key, domain_key, self._graphs[name])
        if len(args) != 2:
            return None
        if not self._builtin(name):
            return None
        if name == "keyMatch":
            return _Dimension("keymatch", at, self._key(args[0], string=True, plan=plan))
        if name in PATTERN_FUNCTIONS and self._patterns_valid(name, at):
            key = self._key(args[0], string=True, plan=plan)
            return _Dimension("prefix", at, key, function=name)
        return None

    def _strish(self, node: ast.expr, pending: list[ast.expr]) -> bool:
        if isinstance(node, ast.Constant):
            return type(node.value) is str
        if self._rule_field(node) is not None:
            return True
        if self._request_only(node):
            pending.append(node)
            return True
        return False

    def _safe(self, node: ast.expr, pending: list[ast.expr]) -> bool:  # noqa: C901, PLR0911
        """Whether `node` gives a bool and cannot raise on any rule (string request keys assumed)."""
        if isinstance(node, ast.BoolOp):
            return all(self._safe(v, pending) for v in node.values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self._safe(node.operand, pending)
        if isinstance(node, ast.Constant):
            return type(node.value) is bool
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                if not isinstance(op, _SAFE_COMPARE):
                    return False
                right = operands[i + 1]
                if (
                    isinstance(op, (ast.In, ast.NotIn))
                    and isinstance(right, (ast.Tuple, ast.List, ast.Set))
                    and all(
                        isinstance(e, ast.Constant) and type(e.value) is str for e in right.elts
                    )
                ):
                    if not self._strish(operands[i], pending):
                        return False
                    continue
                if not (self._strish(operands[i], pending) and self._strish(right, pending)):
                    return False
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name, args = node.func.id, node.args
            if any(isinstance(a, ast.Starred) for a in args):
                return False
            if name in self._graphs and name not in self._walked and 2 <= len(args) <= 3:
                return all(self._strish(a, pending) for a in args)
            if not self._builtin(name):
                return False
            if name == "keyMatch" and len(args) == 2:
                return all(self._strish(a, pending) for a in args)
            if name in PATTERN_FUNCTIONS and len(args) == 2:
                pattern = args[1]
                if isinstance(pattern, ast.Constant) and type(pattern.value) is str:
                    valid = pattern_is_valid(name, pattern.value)
                else:
                    at = self._rule_field(pattern)
                    valid = at is not None and self._patterns_valid(name, at)
                return valid and self._strish(args[0], pending)
        return False

    def _build_residuals(self, conjuncts: list[ast.expr], plan: _Plan) -> None:
        last = len(conjuncts) - 1

        def residual(parts: Mapping[str, ast.expr] | None) -> tuple[ast.expr | None, bool]:
            kept = [
                node if parts is None else _Substitute(parts).visit(copy.deepcopy(node))
                for i, node in enumerate(conjuncts)
                if i not in plan.dropped
            ]
            if last in plan.dropped:
                kept.append(TAIL)
            if kept == [TAIL]:
                return None, True
            if len(kept) == 1:
                return kept[0], False
            return ast.BoolOp(op=ast.And(), values=kept), False

        for index, variant in enumerate(self._variants):
            parts = None if self._variant_of is None else self._eval_parts[index]
            node, trivial = residual(parts)
            variant.residual_trivial = trivial
            if node is not None:
                variant.residual = self._compile(node)

    def _build_index(self, plan: _Plan) -> dict[Any, list[int]]:
        """One dict: a key with one element per dimension -> the rules (in order) under it.

        An exact dimension contributes the rule's value; keyMatch contributes the pattern
        when it has no `*`, else `("*", prefix)`; a prefix dimension contributes
        `("*", literal prefix)`. A request looks up every combination its values allow.
        """
        dims = plan.exact + plan.patterns
        prefixes: dict[str, tuple[str, str]] = {}
        lengths: list[set[int]] = [set() for _ in plan.patterns]
        masks = plan.static_masks
        table: dict[Any, list[int]] = {}

        def element(position: int, value: str) -> Any:
            dim = plan.patterns[position]
            if dim.kind == "keymatch":
                star = value.find("*")
                if star == -1:
                    return value
                prefix = value[:star]
            else:
                prefix = literal_prefix(dim.function, value)
            lengths[position].add(len(prefix))
            marked = prefixes.get(prefix)
            if marked is None:
                marked = prefixes[prefix] = ("*", prefix)
            return marked

        exact_fields = [d.rule_index for d in plan.exact]
        exact_part = operator.itemgetter(*exact_fields) if exact_fields else None
        pattern_fields = list(enumerate(d.rule_index for d in plan.patterns))
        single = len(dims) == 1
        for i, values in enumerate(self._values):
            if masks and not all(mask[i] for mask in masks):
                continue
            if single:
                key: Any = (
                    exact_part(values) if exact_part else element(0, values[pattern_fields[0][1]])
                )
            else:
                head = exact_part(values) if exact_part else ()
                if len(exact_fields) == 1:
                    head = (head,)
                key = head + tuple(element(n, values[f]) for n, f in pattern_fields)
            bucket = table.get(key)
            if bucket is None:
                table[key] = [i]
            else:
                bucket.append(i)
        for dim, found in zip(plan.patterns, lengths, strict=True):
            dim.lengths = tuple(sorted(found))
            dim.prefixes = prefixes
        return table

    # ---------------------------------------------------------------- deciding

    def decide(self, rv: tuple[Any, ...]) -> Decision:
        """Decide one request (values already counted against the request definition)."""
        try:
            return self._decide(rv)
        except _RuleFailure as failure:
            raise EvaluationError(self._describe(failure.index, failure.error)) from failure.error
        except Exception as exc:  # noqa: BLE001 - pycasbin raises: never an allow
            raise EvaluationError(self._describe(None, exc)) from exc

    def _describe(self, index: int | None, error: Exception) -> str:
        """What failed, on which rule (file:line when known, else its type and values), in
        which matcher."""
        reason = str(error) if isinstance(error, EngineError) else f"{type(error).__name__}: {error}"
        reason = reason.replace(" in expression ''", "")
        where = ""
        if index is not None:
            rule = self._rules[index]
            text = ", ".join((rule.ptype, *rule.values))
            place = f"{self._policy_file}:{rule.line}" if self._policy_file else f"line {rule.line}"
            where = f" on rule `{text}` ({place})"
        return f"{reason}{where}, evaluating {self._mtype} = {self._matcher_source}"

    def _decide(self, rv: tuple[Any, ...]) -> Decision:
        if self._always_raises is not None:
            raise self._always_raises
        if not self._rules:
            return self._decide_without_rules(rv)
        simple = True
        for value in rv:
            kind = type(value)
            if kind is str:
                continue
            if kind is Entity:
                for attribute in value.attributes.values():
                    if type(attribute) not in _SCALAR_TYPES and not is_simple(attribute, 1):
                        simple = False
                        break
            elif not is_simple(value):
                simple = False
            if not simple:
                break
        plan = self._plan
        if plan is not None and simple:
            try:
                return self._decide_indexed(rv, plan)
            except _Fallback:
                pass
        return self._decide_linear(rv, simple)

    def _decide_without_rules(self, rv: tuple[Any, ...]) -> Decision:
        variant = self._variants[0]
        blank = ("",) * len(self.rule_tokens)
        if variant.full is not None and all(is_simple(v) for v in rv):
            result = variant.full(rv, blank, None)
        else:
            names = dict(zip(self.request_tokens, rv, strict=True))
            names.update(zip(self.rule_tokens, blank, strict=True))
            result = self._interpreters.get().run(variant.parsed.node, names)
        allowed = self.effect.final(bool(result), False)
        return Decision(allowed=allowed)

    def _decide_indexed(self, rv: tuple[Any, ...], plan: _Plan) -> Decision:  # noqa: C901, PLR0912
        getter = plan.key_getter
        if getter is not None:
            kv = getter(rv)
        else:
            try:
                kv = [fn(rv, None, None) for fn in plan.keys]
            except Exception as exc:
                raise _Fallback from exc
        for index in plan.string_keys:
            if type(kv[index]) not in _STRING_TYPES:
                raise _Fallback
        for index in plan.request_conjuncts:
            value = kv[index]
            if value:
                continue
            if value is False or (isinstance(value, float) and value == 0):
                return self._no_match
            raise _Fallback
        tail = True if plan.tail_key is None else kv[plan.tail_key]

        # Every index key this request can meet: one element per dimension.
        choices: list[Sequence[Any]] = []
        for step in plan.steps:
            kind = step[0]
            if kind == 0:
                choices.append((kv[step[1]],))
            elif kind == 1:
                domain_key = step[2]
                choices.append(step[3](kv[step[1]], "" if domain_key is None else str(kv[domain_key])))
            else:
                key = kv[step[1]]
                if step[3] is not None:  # the key as the pattern function compares it
                    key = step[3](key)
                options: list[Any] = [key] if step[2] else []
                size = len(key)
                prefixes = step[5]
                for length in step[4]:
                    if length > size:
                        break
                    marked = prefixes.get(key[:length])
                    if marked is not None:
                        options.append(marked)
                choices.append(options)
        table = plan.root
        if not choices:
            found = [table[()]] if () in table else []
        elif len(choices) == 1:
            found = [b for b in map(table.get, choices[0]) if b is not None]
        else:
            found = [b for b in map(table.get, itertools.product(*choices)) if b is not None]
        if not found:
            return self._no_match
        candidates = found[0] if len(found) == 1 else sorted(itertools.chain.from_iterable(found))
        return self._scan(rv, candidates, tail, residual=True)

    def _decide_linear(self, rv: tuple[Any, ...], simple: bool) -> Decision:
        everything = range(len(self._values))
        if simple and all(v.full is not None for v in self._variants):
            return self._scan(rv, everything, None, residual=False)
        return self._scan_interpreted(rv, everything)

    def _scan(  # noqa: C901, PLR0912
        self, rv: tuple[Any, ...], candidates: Sequence[int], tail: Any, *, residual: bool
    ) -> Decision:
        values = self._values
        eft = self._eft
        variants = self._variants
        variant_of = self._variant_of
        stop_allow = self.effect.stop_on_allow
        stop_deny = self.effect.stop_on_deny
        first_allow = first_deny = last = None
        fn = None
        interpreted = False
        if variant_of is None:
            variant = variants[0]
            if residual:
                if variant.residual_trivial:
                    fn = None
                elif variant.residual is None:
                    interpreted = True
                else:
                    fn = variant.residual
            else:
                fn = variant.full
        if interpreted:
            return self._scan_interpreted(rv, candidates)
        fixed = variant_of is None
        i = None
        try:
            for i in candidates:
                pv = values[i]
                if fixed:
                    result = tail if fn is None else fn(rv, pv, tail)
                else:
                    variant = variants[variant_of[i]]  # type: ignore[index]
                    if residual:
                        if variant.residual_trivial:
                            result = tail
                        elif variant.residual is not None:
                            result = variant.residual(rv, pv, tail)
                        else:
                            result = self._interpret_one(rv, i)
                    elif variant.full is not None:
                        result = variant.full(rv, pv, None)
                    else:
                        result = self._interpret_one(rv, i)
                if result is True:
                    pass
                elif result is False:
                    continue
                elif isinstance(result, float):
                    if result == 0:
                        continue
                elif not isinstance(result, bool):
                    raise EvaluationError("matcher result should be bool, int or float")
                last = i
                effect = "allow" if eft is None else pv[eft]
                if effect == "allow":
                    if first_allow is None:
                        first_allow = i
                        if stop_allow:
                            break
                elif effect == "deny":
                    if first_deny is None:
                        first_deny = i
                        if stop_deny:
                            break
            else:
                if self._misfit is not None:
                    self._raise_at_misfit()
        except Exception as exc:
            raise _RuleFailure(i, exc) from exc
        return self._conclude(first_allow, first_deny, last)

    def _interpret_one(self, rv: tuple[Any, ...], i: int) -> Any:
        variant = self._variants[self._variant_of[i] if self._variant_of is not None else 0]
        variant.parsed.raise_error()
        names = dict(zip(self.request_tokens, rv, strict=True))
        names.update(zip(self.rule_tokens, self._values[i], strict=True))
        return self._interpreters.get().run(variant.parsed.node, names)

    def _scan_interpreted(self, rv: tuple[Any, ...], candidates: Sequence[int]) -> Decision:
        """The scan with simpleeval itself, for values or constructs the compiler leaves alone."""
        values = self._values
        eft = self._eft
        base = dict(zip(self.request_tokens, rv, strict=True))
        per_rule = self._variant_of is not None
        interpreter = self._interpreters.get()
        first_allow = first_deny = last = None
        i = None
        try:
            for i in candidates:
                pv = values[i]
                variant = self._variants[self._variant_of[i] if per_rule else 0]  # type: ignore[index]
                variant.parsed.raise_error()
                if per_rule:
                    interpreter.begin()
                names = dict(base)
                names.update(zip(self.rule_tokens, pv, strict=True))
                result = interpreter.run(variant.parsed.node, names)
                if isinstance(result, bool):
                    if not result:
                        continue
                elif isinstance(result, float):
                    if result == 0:
                        continue
                else:
                    raise EvaluationError("matcher result should be bool, int or float")
                last = i
                effect = "allow" if eft is None else names.get(f"{self.ptype}_eft")
                if effect == "allow":
                    if first_allow is None:
                        first_allow = i
                        if self.effect.stop_on_allow:
                            break
                elif effect == "deny":
                    if first_deny is None:
                        first_deny = i
                        if self.effect.stop_on_deny:
                            break
            else:
                if self._misfit is not None:
                    self._raise_at_misfit()
        except Exception as exc:
            raise _RuleFailure(i, exc) from exc
        return self._conclude(first_allow, first_deny, last)

    def _raise_at_misfit(self) -> None:
        """A scan that did not stop reaches the first rule of the wrong size: pycasbin raises."""
        if self._misfit is not None:  # checked by the caller too: a call per scan is not free
            rule = self._rules[self._misfit]
            raise RuntimeError(
                f"invalid policy size: {rule.ptype} rule at line {rule.line} has "
                f"{len(rule.values)} fields, its definition has {len(self.rule_tokens)}"
            )

    def _conclude(self, first_allow: int | None, first_deny: int | None, shown: int | None) -> Decision:
        """The decision, with pycasbin's explanation: the last rule that matched before the
        effect stopped the scan (whatever its effect), or none."""
        allowed = self.effect.final(first_allow is not None, first_deny is not None)
        if shown is None:
            return self._no_match if allowed == self._no_match.allowed else Decision(allowed=allowed)
        decision = self._decisions.get((allowed, shown))
        if decision is None:
            rules = self._rules
            matched = MatchedRule(rules.ptype, rules.values[shown], rules.lines[shown])
            decision = Decision(allowed=allowed, matched=(matched,))
            if len(self._decisions) < _DECISION_MEMO:
                self._decisions[(allowed, shown)] = decision
        return decision
