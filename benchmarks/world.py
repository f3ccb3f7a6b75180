"""A generated world of LLM actions, seeded and reproducible: the policy set and its traffic.

    world = World.generate(rules=10_000, seed=7)
    world.write_bundle(folder / "world")            # model.conf, policy.csv, schema.yaml, tests/
    stream = world.stream(seed=1)                   # requests, most never seen before (stream.py)
    ask = stream.check()                            # one Check, with its intended outcome
    world.expected(ask)                             # (allowed, "allow" | why it is denied)

The shape is policies/default's (RBAC with domains, keyMatch, eval conditions on
attributes, deny overrides allow), at the size of a platform: 200 tenants,
4,000 users, per tenant the roles viewer < analyst < engineer < admin, agents
enabled per tenant, a catalog of tools (each with a `risk`), data scopes (each
with a `classification` and the lowest role that may read it), models and memory.
`rules` sets the number of policy lines; the tenants' catalogs grow with it.

The rules the world writes, and what `expected` computes from the world's own
tables (the unit test checks the two agree, with pycasbin as the judge):

- a tool of risk r is granted to the role of level r; risk >= 2 needs MFA
  (`r.obj.risk < 2 || r.sub.mfa == True`), risk 3 also the home tenant;
- a data scope is read by its role when `r.sub.clearance >= r.obj.classification`,
  written by engineers with MFA on the same condition;
- denies: `tool:payments_*` and `data:secrets/*` everywhere, and a few tools
  disabled per tenant;
- an agent acts only in tenants that enabled it, within its own grants
  (`r.obj.risk`, `r.obj.classification` conditions).

Every request carries the subject's attributes (home_tenant, mfa, clearance)
and the resource's (risk or classification). Denials come in every kind:
no_role, deny_rule, no_mfa, low_clearance, actor (the agent may not), and
wrong_tenant (the user holds no role in the request's tenant).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

if TYPE_CHECKING:
    from stream import Stream

__all__ = ["CHECK_MIX", "DENIALS", "Ask", "Batch", "Resource", "User", "World"]

ROLES = ("viewer", "analyst", "engineer", "admin")
TENANTS = 200
USERS = 4_000
AGENTS = {"agent:chat": "agent_chat", "agent:rag": "agent_rag", "agent:code": "agent_code", "agent:ops": "agent_ops"}
DENIALS = ("no_role", "deny_rule", "no_mfa", "low_clearance", "actor", "wrong_tenant")
# The share of each intended outcome among Checks.
CHECK_MIX = {"allow": 0.50, "no_role": 0.12, "deny_rule": 0.08, "no_mfa": 0.07,
             "low_clearance": 0.08, "actor": 0.08, "wrong_tenant": 0.07}
GLOBAL_TOOLS = (
    "web_search", "sql_query", "code_interpreter", "shell_exec", "email_send", "calendar_read", "calendar_write",
    "doc_summarize", "doc_translate", "image_generate", "ticket_create", "ticket_update", "crm_lookup",
    "crm_update", "repo_read", "repo_write", "build_trigger", "deploy_service", "invoice_export",
    "slack_post", "drive_search", "drive_share", "payments_transfer", "payments_refund",
)
VERBS = ("lookup", "create", "update", "delete", "export", "import", "sync", "approve", "notify", "archive",
         "summarize", "schedule")
NOUNS = ("invoice", "contact", "order", "report", "ticket", "lead", "contract", "shipment", "asset", "survey",
         "payroll", "campaign", "incident", "vendor", "budget", "roster")
DEPARTMENTS = ("finance", "hr", "legal", "sales", "support", "engineering", "marketing", "public", "ops", "research")
COLLECTIONS = ("reports", "notes", "contracts", "tickets", "wiki", "policies", "minutes", "forecasts", "records",
               "plans", "audits", "logs", "slides", "emails", "specs", "reviews", "metrics", "drafts", "faq", "archive")
# model id -> (lowest role level that may use it, risk)
MODELS = {"small": (0, 0), "large": (1, 1), "code": (2, 2)}
TOOL_CONDITION = "r.obj.risk < 2 || r.sub.mfa == True"
ADMIN_TOOL_CONDITION = "r.sub.mfa == True && r.sub.home_tenant == r.dom"
READ_CONDITION = "r.sub.clearance >= r.obj.classification"
WRITE_CONDITION = "r.sub.clearance >= r.obj.classification && r.sub.mfa == True"
# agent role -> [(kind, id prefix, action, condition on the resource's attributes or None)]
AGENT_GRANTS: dict[str, list[tuple[str, str, str, tuple[str, int] | None]]] = {
    "agent_chat": [("model", "", "generate", None), ("tool", "", "invoke", ("risk", 0)),
                   ("memory", "session/", "write", None)],
    "agent_rag": [("data", "", "read", ("classification", 2)), ("model", "", "generate", None),
                  ("tool", "", "invoke", ("risk", 0))],
    "agent_code": [("tool", "", "invoke", ("risk", 2)), ("model", "", "generate", None),
                   ("data", "", "read", ("classification", 1)), ("memory", "", "write", None)],
    "agent_ops": [("tool", "", "invoke", None), ("model", "", "generate", None)],
}

MODEL_CONF = """\
# The LLM-actions world of benchmarks/world.py: policies/default's model.
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && keyMatch(r.dom, p.dom) && keyMatch(r.obj, p.obj) && r.act == p.act && eval(p.cond)
"""

SCHEMA = {
    "subject": {"mfa": {"type": "bool"}, "clearance": {"type": "int"}, "home_tenant": {"type": "string"}},
    "actor": {"mfa": {"type": "bool"}, "clearance": {"type": "int"}, "home_tenant": {"type": "string"}},
    "resource": {"risk": {"type": "int", "required": True, "kinds": ["tool", "model"]},
                 "classification": {"type": "int", "required": True, "kinds": ["data", "memory"]}},
}


class Resource(NamedTuple):
    kind: str
    id: str
    attributes: tuple[tuple[str, Any], ...]

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def attribute(self, name: str) -> Any:
        return dict(self.attributes)[name]


class User(NamedTuple):
    id: str
    home: str
    level: int
    clearance: int
    guest: tuple[str, int] | None  # a second tenant and the role level held there


class Ask(NamedTuple):
    """One decision: a Check, or one item of a batch or filter."""

    tenant: str
    subject: str
    attributes: tuple[tuple[str, Any], ...]  # the subject's: home_tenant, mfa, clearance
    actor: str | None
    action: str
    resource: Resource

    @property
    def mfa(self) -> bool:
        return bool(dict(self.attributes)["mfa"])


class Batch(NamedTuple):
    """A BatchCheck (items of several actions) or a FilterAllowed (one action, many candidates)."""

    tenant: str
    subject: str
    attributes: tuple[tuple[str, Any], ...]
    actor: str | None
    items: tuple[tuple[str, Resource], ...]  # (action, resource)

    def asks(self) -> list[Ask]:
        return [Ask(self.tenant, self.subject, self.attributes, self.actor, action, resource)
                for action, resource in self.items]


@dataclass
class Catalog:
    """One tenant's own tools (id -> risk), data scopes (id -> (classification, read level)), disabled tools."""

    tools: dict[str, int] = field(default_factory=dict)
    scopes: dict[str, tuple[int, int]] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    agents: dict[str, str] = field(default_factory=dict)  # agent id -> agent role


class World:
    """Tenants, users, agents and catalogs; the rules they imply; what each request should get."""

    def __init__(self, seed: int, users: list[User], global_tools: dict[str, int],
                 catalogs: dict[str, Catalog], role_lines: list[str]) -> None:
        self.seed = seed
        self.users = users
        self.global_tools = global_tools
        self.catalogs = catalogs
        self.tenants = sorted(catalogs)
        self._policy_lines = self._lines(role_lines)

    # ------------------------------------------------------------ building

    @classmethod
    def generate(cls, rules: int = 10_000, seed: int = 7, tenants: int = TENANTS, users: int = USERS) -> World:
        """A world of about `rules` policy lines; the same arguments give the same world."""
        rng = random.Random(seed)
        names = [f"t{i:03d}" for i in range(tenants)]
        people = []
        for i in range(users):
            level = rng.choices(range(4), weights=(40, 30, 20, 10))[0]
            clearance = min(3, max(0, level + rng.choice((-1, 0, 0, 1))))
            guest = None
            if rng.random() < 0.15:
                guest = (names[(i + 1 + rng.randrange(tenants - 1)) % tenants], rng.choice((0, 0, 1)))
            people.append(User(f"u{i:05d}", names[i % tenants], level, clearance, guest))
        global_tools = {tool: rng.choices(range(4), weights=(40, 30, 20, 10))[0] for tool in GLOBAL_TOOLS}
        global_tools["payments_transfer"] = global_tools["payments_refund"] = 1
        role_lines = [f"g, {ROLES[i + 1]}, {ROLES[i]}, {t}" for t in names for i in range(3)]
        role_lines += [f"g, {u.id}, {ROLES[u.level]}, {u.home}" for u in people]
        role_lines += [f"g, {u.id}, {ROLES[u.guest[1]]}, {u.guest[0]}" for u in people if u.guest]
        catalogs = {t: Catalog(agents=dict(rng.sample(sorted(AGENTS.items()), 3))) for t in names}
        role_lines += [f"g, {agent}, {role}, {t}" for t in names for agent, role in sorted(catalogs[t].agents.items())]
        fixed = len(role_lines) + len(cls._global_lines(global_tools))
        per_tenant = max(6.0, (rules - fixed) / tenants)
        scopes = max(3, round(per_tenant * 0.3))  # two lines each (read, write)
        tools = max(2, round((per_tenant - 2 * scopes) / 1.08))  # one line each, 8% also disabled
        # A tenant's own tool never shares an id with a global one: two grants of one tool would
        # disagree on its risk.
        tool_names = [f"{noun}_{verb}" for noun in NOUNS for verb in VERBS if f"{noun}_{verb}" not in global_tools]
        scope_names = [f"{dept}/{name}" for dept in DEPARTMENTS if dept != "public" for name in COLLECTIONS]
        for t in names:
            catalog = catalogs[t]
            for tool in rng.sample(tool_names, min(tools, len(tool_names))):
                catalog.tools[tool] = rng.choices(range(4), weights=(40, 30, 20, 10))[0]
            chosen = ["public/handbook", f"secrets/{rng.choice(COLLECTIONS)}"]
            chosen += rng.sample(scope_names, min(scopes, len(scope_names)) - 2)
            for scope in chosen:
                public = scope.startswith(("public/", "secrets/"))
                level = 0 if public else rng.choices(range(4), weights=(30, 40, 20, 10))[0]
                classification = 0 if public else min(3, max(0, level + rng.choice((-1, 0, 1, 1))))
                catalog.scopes[scope] = (classification, level)
            catalog.disabled = {tool for tool in sorted(catalog.tools) if rng.random() < 0.08}
        return cls(seed, people, global_tools, catalogs, role_lines)

    @staticmethod
    def _global_lines(global_tools: dict[str, int]) -> list[str]:
        lines = []
        for tool, risk in global_tools.items():
            condition = ADMIN_TOOL_CONDITION if risk == 3 else TOOL_CONDITION
            lines.append(f"p, {ROLES[risk]}, *, tool:{tool}, invoke, {condition}, allow")
        lines += [f"p, {ROLES[level]}, *, model:{model}, generate, True, allow" for model, (level, _) in MODELS.items()]
        lines += ["p, viewer, *, memory:session/*, write, True, allow",
                  "p, analyst, *, memory:profile/*, write, r.sub.mfa == True, allow",
                  "p, viewer, *, tool:payments_*, invoke, True, deny",
                  "p, viewer, *, data:secrets/*, read, True, deny"]
        for role, grants in AGENT_GRANTS.items():
            for kind, prefix, action, limit in grants:
                condition = "True" if limit is None else f"r.obj.{limit[0]} <= {limit[1]}"
                lines.append(f"p, {role}, *, {kind}:{prefix}*, {action}, {condition}, allow")
        return lines

    def _lines(self, role_lines: list[str]) -> list[str]:
        lines = list(role_lines) + self._global_lines(self.global_tools)
        for t in self.tenants:
            catalog = self.catalogs[t]
            for tool, risk in catalog.tools.items():
                condition = ADMIN_TOOL_CONDITION if risk == 3 else TOOL_CONDITION
                lines.append(f"p, {ROLES[risk]}, {t}, tool:{tool}, invoke, {condition}, allow")
            lines += [f"p, viewer, {t}, tool:{tool}, invoke, True, deny" for tool in sorted(catalog.disabled)]
            for scope, (_, level) in catalog.scopes.items():
                lines.append(f"p, {ROLES[level]}, {t}, data:{scope}, read, {READ_CONDITION}, allow")
                lines.append(f"p, {ROLES[max(level, 2)]}, {t}, data:{scope}, write, {WRITE_CONDITION}, allow")
        return lines

    @property
    def policy_text(self) -> str:
        return "\n".join(self._policy_lines) + "\n"

    @property
    def rule_count(self) -> int:
        return len(self._policy_lines)

    def write_bundle(self, folder: Path, test_cases: int = 40) -> None:
        """model.conf, policy.csv, schema.yaml and tests/world_test.yaml (cases the world expects)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.conf").write_text(MODEL_CONF)
        (folder / "policy.csv").write_text(self.policy_text)
        (folder / "schema.yaml").write_text(yaml.safe_dump(SCHEMA, sort_keys=False))
        (folder / "tests").mkdir(exist_ok=True)
        stream = self.stream(seed=self.seed + 1_000, repeat_rate=0.0)
        subjects, resources, actors, cases = {}, {}, {}, []
        for index in range(test_cases):
            ask = stream.check(list(CHECK_MIX)[index % len(CHECK_MIX)])
            subjects[f"s{index}"] = {"id": ask.subject, "attr": dict(ask.attributes)}
            resources[f"r{index}"] = {"kind": ask.resource.kind, "id": ask.resource.id,
                                      "attr": dict(ask.resource.attributes)}
            case = {"tenant": ask.tenant, "subject": f"s{index}", "action": ask.action, "resource": f"r{index}",
                    "expect": "allow" if self.expected(ask)[0] else "deny"}
            if ask.actor:
                actors[ask.actor] = {"id": ask.actor}
                case["actor"] = ask.actor
            cases.append(case)
        document = {"name": "world", "subjects": subjects, "actors": actors, "resources": resources, "tests": cases}
        (folder / "tests" / "world_test.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    # ------------------------------------------------------------ expected decisions

    def level(self, user: User, tenant: str) -> int | None:
        if tenant == user.home:
            return user.level
        if user.guest and user.guest[0] == tenant:
            return user.guest[1]
        return None

    def expected(self, ask: Ask) -> tuple[bool, str]:
        """(allowed, "allow" or the kind of denial), from the world's tables, not from the rules."""
        user = self.user(ask.subject)
        level = self.level(user, ask.tenant)
        if level is None:
            return False, "wrong_tenant"
        why = self._subject_denial(user, level, ask)
        if why:
            return False, why
        if ask.actor is not None and not self._actor_allowed(ask.tenant, ask.actor, ask.action, ask.resource):
            return False, "actor"
        return True, "allow"

    def user(self, user_id: str) -> User:
        return self.users[int(user_id[1:])]

    def _subject_denial(self, user: User, level: int, ask: Ask) -> str:
        catalog = self.catalogs[ask.tenant]
        kind, rid, action, mfa = ask.resource.kind, ask.resource.id, ask.action, ask.mfa
        if kind == "tool" and action == "invoke":
            if rid.startswith("payments_") or rid in catalog.disabled:
                return "deny_rule"
            risk = self.global_tools.get(rid, catalog.tools.get(rid))
            if risk is None or level < risk:
                return "no_role"
            if risk >= 2 and not mfa:
                return "no_mfa"
            return "wrong_tenant" if risk == 3 and ask.tenant != user.home else ""
        if kind == "data" and action in ("read", "write"):
            if action == "read" and rid.startswith("secrets/"):
                return "deny_rule"
            if rid not in catalog.scopes:
                return "no_role"
            classification, needed = catalog.scopes[rid]
            if level < (needed if action == "read" else max(needed, 2)):
                return "no_role"
            if user.clearance < classification:
                return "low_clearance"
            return "no_mfa" if action == "write" and not mfa else ""
        if kind == "model" and action == "generate" and rid in MODELS:
            return "" if level >= MODELS[rid][0] else "no_role"
        if kind == "memory" and action == "write" and rid.startswith("session/"):
            return ""
        if kind == "memory" and action == "write" and rid.startswith("profile/") and level >= 1:
            return "" if mfa else "no_mfa"
        return "no_role"

    def _actor_allowed(self, tenant: str, agent: str, action: str, resource: Resource) -> bool:
        role = self.catalogs[tenant].agents.get(agent)
        if role is None:
            return False
        for kind, prefix, granted, limit in AGENT_GRANTS[role]:
            if kind == resource.kind and resource.id.startswith(prefix) and granted == action:
                if limit is None or resource.attribute(limit[0]) <= limit[1]:
                    return True
        return False

    # ------------------------------------------------------------ resources

    def tool(self, tenant: str, tool: str) -> Resource:
        risk = self.global_tools.get(tool, self.catalogs[tenant].tools.get(tool, 0))
        return Resource("tool", tool, (("risk", risk),))

    def scope(self, tenant: str, scope: str) -> Resource:
        return Resource("data", scope, (("classification", self.catalogs[tenant].scopes[scope][0]),))

    def stream(self, seed: int, repeat_rate: float = 0.1) -> Stream:
        """Requests drawn from this world (see stream.py)."""
        from stream import Stream  # noqa: PLC0415 - stream.py builds on this module

        return Stream(self, seed, repeat_rate)
