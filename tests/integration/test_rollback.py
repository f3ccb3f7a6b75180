"""Rollback walks back along the activation history, on SQLite and PostgreSQL, and through policyctl."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from policy_engine.cli import policyctl
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.errors import NothingToRollBackError, StaleActivationError
from policy_engine.store import NewVersion, PolicyRepository, ensure_schema, open_database
from policy_engine.store.repository import walk_back_path
from policy_engine.testing import ServerHandle, running_server

ROOT = Path(__file__).resolve().parents[2]


def content(n: int) -> NewVersion:
    return NewVersion(
        model_text="[request_definition]\nr = sub, obj, act\n",
        policy_text=f"p, u{n}, o, a\n",
        sha256=f"{n:064x}",
        rule_count=1,
        message=f"v{n}",
        author="ops",
    )


@pytest.fixture
def repository(database_url: str):  # type: ignore[no-untyped-def]
    engine = open_database(database_url)
    ensure_schema(engine, database_url)
    yield PolicyRepository(engine)
    engine.dispose()


def active(repository: PolicyRepository) -> int:
    record = repository.active_version("default")
    assert record is not None
    return record.number


def activate_in_turn(repository: PolicyRepository, *numbers: int) -> None:
    for n in range(1, max(numbers) + 1):
        repository.add_version("default", content(n))
    for n in numbers:
        repository.activate("default", n, actor="ops", reason=f"ship {n}")


class TestWalkBack:
    def test_rollback_twice_lands_two_versions_back(self, repository: PolicyRepository) -> None:
        """3 -> 2 -> 1: the second rollback does not re-activate the version the first one left."""
        activate_in_turn(repository, 1, 2, 3)
        assert repository.rollback("default", "ops", "bad 3").version == 2
        assert repository.rollback("default", "ops", "bad 2").version == 1
        assert active(repository) == 1
        with pytest.raises(NothingToRollBackError):
            repository.rollback("default", "ops", "nothing before 1")
        assert active(repository) == 1

    def test_rollback_to_names_the_target_and_the_walk_continues_below_it(self, repository: PolicyRepository) -> None:
        """rollback --to 2 from 4 skips 3; the next rollback goes to 1, never to 4 or 3."""
        activate_in_turn(repository, 1, 2, 3, 4)
        assert repository.rollback("default", "ops", "", to_number=2).version == 2
        assert repository.rollback_path("default") == [1, 2]
        assert repository.rollback("default", "ops", "").version == 1

    def test_activation_after_rollback_starts_a_new_branch(self, repository: PolicyRepository) -> None:
        """1, 2, 3, rollback (2), activate 4: rolling back from 4 goes to 2, the version it replaced."""
        activate_in_turn(repository, 1, 2, 3)
        repository.rollback("default", "ops", "")
        repository.add_version("default", content(4))
        repository.activate("default", 4, actor="ops", reason="fix")
        assert repository.rollback("default", "ops", "").version == 2
        assert repository.rollback("default", "ops", "").version == 1

    def test_stale_expectation_refuses_and_changes_nothing(self, repository: PolicyRepository) -> None:
        """A rollback expecting another active version is refused: a concurrent activation wins."""
        activate_in_turn(repository, 1, 2, 3)
        with pytest.raises(StaleActivationError):
            repository.rollback("default", "ops", "", expected_active=2)
        assert active(repository) == 3
        assert repository.rollback("default", "ops", "", expected_active=3).version == 2

    def test_concurrent_rollbacks_walk_one_step_each(self, repository: PolicyRepository) -> None:
        """Two rollbacks at once, each expecting what it saw, never both apply to the same version."""
        activate_in_turn(repository, 1, 2, 3)
        outcomes: list[object] = []
        barrier = threading.Barrier(2)

        def roll() -> None:
            barrier.wait()
            try:
                outcomes.append(repository.rollback("default", "ops", "", expected_active=3).version)
            except StaleActivationError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=roll) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count(2) == 1
        assert sum(isinstance(outcome, StaleActivationError) for outcome in outcomes) == 1
        assert active(repository) == 2


@pytest.mark.parametrize(
    ("history", "path"),
    [
        ([1, 2, 3], [1, 2, 3]),
        ([1, 2, 3, 2], [1, 2]),
        ([1, 2, 3, 2, 1], [1]),
        ([1, 2, 3, 1, 4], [1, 4]),
        ([1, 2, 2, 3], [1, 2, 3]),
        ([1, 3, 1, 2], [1, 2]),
    ],
)
def test_walk_back_path(history: list[int], path: list[int]) -> None:
    """The path cuts off every excursion that was walked back from."""
    assert walk_back_path(history) == path


def ctl(server: ServerHandle, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    credential = ["--token-file", str(server.admin_token_file)]
    code = policyctl.run([args[0], "--server", server.target, *credential, *args[1:]], out, err)
    return code, out.getvalue(), err.getvalue()


def test_policyctl_rollback_twice_to_and_show(tmp_path: Path) -> None:
    """policyctl: rollback twice from 3 lands on 1; rollback --to names the target; show prints the rules."""
    with running_server(ROOT / "policies") as server, AdminClient(server.target, token=server.admin_token) as admin:
        base = admin.get("default", 1)[1]
        for n in (2, 3):
            extra = f"p, viewer, *, tool:calculator_{n}, invoke, True, allow\n"
            files = BundleFiles(base.model, base.policy + extra, dict(base.tests), base.schema)
            admin.push("default", files, message=f"v{n}", author="ann", activate=True)
        code, out, err = ctl(server, "rollback", "--reason", "bad 3", "--author", "cid")
        assert code == 0 and "version 2 is active (was 3)" in out, err
        code, out, err = ctl(server, "rollback", "--reason", "bad 2", "--author", "cid")
        assert code == 0 and "version 1 is active (was 2)" in out, err
        code, _, err = ctl(server, "rollback", "--author", "cid")
        assert code == policyctl.EXIT_REFUSED and "FAILED_PRECONDITION" in err
        code, out, err = ctl(server, "rollback", "--to", "3", "--expect-active", "2", "--author", "cid")
        assert code == policyctl.EXIT_REFUSED and "FAILED_PRECONDITION" in err
        code, out, err = ctl(server, "rollback", "--to", "3", "--expect-active", "1", "--author", "cid")
        assert code == 0 and "version 3 is active (was 1)" in out, err
        code, out, err = ctl(server, "show", "2")
        assert code == 0, err
        assert "tool:calculator_2" in out and "tool:calculator_3" not in out
        assert "--- policy.csv ---" in out and "[matchers]" in out and "p, viewer, *, tool:web_search" in out
        code, out, _ = ctl(server, "show", "2", "--output", "json")
        assert "tool:calculator_2" in json.loads(out)["content"]["policy"]
