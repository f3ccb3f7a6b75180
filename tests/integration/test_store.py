"""The store contract, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy

from policy_engine.errors import NotFoundError, SchemaOutdatedError
from policy_engine.store import (
    ActivationRequest,
    NewVersion,
    NothingToRollBackError,
    PolicyRepository,
    StaleActivationError,
    ensure_schema,
    open_database,
    schema_state,
    upgrade,
)
from policy_engine.store.db import downgrade


def content(n: int) -> NewVersion:
    return NewVersion(
        model_text=f"model {n}",
        policy_text=f"p, r{n}",
        sha256=f"{n:064x}",
        rule_count=n,
        message=f"change {n}",
        author="tester",
        tests={"tests/a_test.yaml": "tests: []"},
        git_commit="abc123",
        git_dirty=False,
    )


@pytest.fixture
def repository(database_url: str):  # type: ignore[no-untyped-def]
    engine = open_database(database_url)
    ensure_schema(engine, database_url)
    yield PolicyRepository(engine)
    engine.dispose()


class TestVersions:
    def test_numbers_grow_per_set(self, repository: PolicyRepository) -> None:
        """Versions of a set are numbered 1, 2, ... independently of other sets."""
        first, created, _ = repository.add_version("default", content(1))
        second, _, _ = repository.add_version("default", content(2))
        other, _, _ = repository.add_version("other", content(1))
        assert created
        assert (first.number, second.number, other.number) == (1, 2, 1)

    def test_identical_content_creates_nothing(self, repository: PolicyRepository) -> None:
        """Pushing the same content twice returns the existing version."""
        first, _, _ = repository.add_version("default", content(1))
        again, created, _ = repository.add_version("default", content(1))
        assert not created
        assert again.number == first.number

    def test_version_round_trips(self, repository: PolicyRepository) -> None:
        """Everything stored comes back, tests and provenance included."""
        repository.add_version("default", content(7))
        record = repository.get_version("default", 1)
        assert record.policy_text == "p, r7"
        assert dict(record.tests) == {"tests/a_test.yaml": "tests: []"}
        assert (record.git_commit, record.git_dirty, record.author) == ("abc123", False, "tester")
        assert record.created_at.tzinfo is not None

    def test_roles_yaml_round_trips(self, repository: PolicyRepository) -> None:
        """A version's roles.yaml is stored and comes back as pushed; without one it is empty."""
        repository.add_version("default", replace(content(1), roles_text="g2:\n  names: keyMatch2\n"))
        repository.add_version("default", content(2))
        assert repository.get_version("default", 1).roles_text == "g2:\n  names: keyMatch2\n"
        assert repository.get_version("default", 2).roles_text == ""

    def test_unknown_version_is_not_found(self, repository: PolicyRepository) -> None:
        """Asking for a version that does not exist raises NotFoundError."""
        with pytest.raises(NotFoundError):
            repository.get_version("default", 3)

    def test_schema_refuses_duplicate_numbers(self, repository: PolicyRepository) -> None:
        """The database itself, not only the code, keeps (set, number) unique."""
        repository.add_version("default", content(1))
        engine = repository._engine
        with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO policy_versions (policy_set_id, number, sha256, model_text, policy_text,"
                " tests_json, rule_count, message, author, created_at)"
                " SELECT policy_set_id, number, 'x', '', '', '{}', 0, '', '', created_at"
                " FROM policy_versions"
            )


class TestActivations:
    def test_active_version_follows_latest_activation(self, repository: PolicyRepository) -> None:
        """The active version is the one named by the latest activation; previous is recorded."""
        repository.add_version("default", content(1))
        repository.add_version("default", content(2))
        assert repository.active_version("default") is None
        repository.activate("default", 1, actor="ops", reason="first")
        record = repository.activate("default", 2, actor="ops", reason="second")
        assert record.previous_version == 1
        assert repository.active_version("default").number == 2  # type: ignore[union-attr]
        repository.activate("default", 1, actor="ops", reason="rollback")
        assert repository.active_versions()["default"].number == 1

    def test_stale_expectation_is_refused(self, repository: PolicyRepository) -> None:
        """Activating with the wrong expected active version changes nothing."""
        repository.add_version("default", content(1))
        repository.add_version("default", content(2))
        repository.activate("default", 1, actor="ops", reason="first")
        marker = repository.latest_activation_id()
        with pytest.raises(StaleActivationError):
            repository.activate("default", 2, actor="ops", reason="race", expected_active=2)
        assert repository.active_version("default").number == 1  # type: ignore[union-attr]
        assert repository.latest_activation_id() == marker

    def test_unknown_set_or_version_is_not_found(self, repository: PolicyRepository) -> None:
        """Activating what does not exist raises NotFoundError."""
        repository.add_version("default", content(1))
        with pytest.raises(NotFoundError):
            repository.activate("nope", 1, actor="ops", reason="")
        with pytest.raises(NotFoundError):
            repository.activate("default", 9, actor="ops", reason="")


class TestSchema:
    def test_empty_database_is_migrated(self, database_url: str) -> None:
        """ensure_schema creates the schema on an empty database."""
        engine = open_database(database_url)
        state = ensure_schema(engine, database_url)
        assert state.up_to_date
        engine.dispose()

    def test_outdated_schema_is_refused_with_the_command(self, database_url: str) -> None:
        """A database behind the code is refused, naming `policy-engine db upgrade`."""
        engine = open_database(database_url)
        upgrade(engine)
        downgrade(engine, "base")
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
        with pytest.raises(SchemaOutdatedError, match="policy-engine db upgrade"):
            ensure_schema(engine, database_url)
        engine.dispose()

    def test_migrations_upgrade_and_downgrade_cleanly(self, database_url: str) -> None:
        """Every migration applies and reverts, leaving no tables behind."""
        engine = open_database(database_url)
        upgrade(engine)
        assert schema_state(engine).up_to_date
        downgrade(engine, "base")
        tables = set(sqlalchemy.inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        upgrade(engine)
        assert schema_state(engine).up_to_date
        engine.dispose()


class TestImmutability:
    def test_repository_offers_no_mutation_of_history(self) -> None:
        """The repository has no method that updates or deletes versions or activations."""
        public = {name for name in dir(PolicyRepository) if not name.startswith("_")}
        assert not {n for n in public if n.startswith(("update", "delete", "remove", "edit"))}

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE policy_versions SET policy_text = 'p, evil'",
            "UPDATE policy_versions SET roles_text = 'g: {names: regexMatch}'",
            "DELETE FROM policy_versions",
            "UPDATE activations SET reason = 'rewritten'",
            "DELETE FROM activations",
        ],
    )
    def test_database_refuses_rewriting_history(self, repository: PolicyRepository, statement: str) -> None:
        """Even raw SQL cannot edit or delete a stored version or activation."""
        repository.add_version("default", content(1))
        repository.activate("default", 1, actor="ops", reason="go")
        with pytest.raises(sqlalchemy.exc.DatabaseError), repository._engine.begin() as conn:
            conn.exec_driver_sql(statement)
        assert repository.get_version("default", 1).policy_text == "p, r1"
        assert repository.list_activations("default")[0].reason == "go"


class TestHistory:
    def test_push_with_activate_is_one_transaction(self, repository: PolicyRepository) -> None:
        """Pushing with activation stores the version and activates it together."""
        record, created, activation = repository.add_version(
            "default", content(1), ActivationRequest("ops", "ship it")
        )
        assert created and activation is not None
        assert activation.version == record.number
        assert repository.active_version("default").number == 1  # type: ignore[union-attr]

    def test_failed_activation_keeps_push_out(self, repository: PolicyRepository) -> None:
        """If the activation half is refused, the pushed version is not stored either."""
        repository.add_version("default", content(1), ActivationRequest("ops", "first"))
        with pytest.raises(StaleActivationError):
            repository.add_version(
                "default", content(2), ActivationRequest("ops", "race", expected_active=7)
            )
        assert [v.number for v in repository.list_versions("default")] == [1]

    def test_rollback_goes_to_previous_active(self, repository: PolicyRepository) -> None:
        """Rollback without a target re-activates the version active before the current one."""
        for n in (1, 2, 3):
            repository.add_version("default", content(n))
        repository.activate("default", 1, actor="ops", reason="a")
        repository.activate("default", 3, actor="ops", reason="b")
        record = repository.rollback("default", actor="ops", reason="bad release")
        assert (record.version, record.previous_version) == (1, 3)
        assert repository.rollback("default", actor="ops", reason="", to_number=2).version == 2

    def test_rollback_with_no_history_is_refused(self, repository: PolicyRepository) -> None:
        """Rolling back a set that had only one active version is refused."""
        repository.add_version("default", content(1), ActivationRequest("ops", "first"))
        with pytest.raises(NothingToRollBackError):
            repository.rollback("default", actor="ops", reason="")

    def test_activations_list_newest_first_and_since(self, repository: PolicyRepository) -> None:
        """Activations list newest first; since_id returns the later ones oldest first."""
        repository.add_version("default", content(1))
        repository.add_version("default", content(2))
        first = repository.activate("default", 1, actor="ops", reason="a")
        repository.activate("default", 2, actor="ops", reason="b")
        assert [a.version for a in repository.list_activations("default")] == [2, 1]
        assert [a.reason for a in repository.list_activations(since_id=first.id)] == ["b"]


def test_downgrade_below_roles_refuses_while_a_version_declares_roles(database_url: str) -> None:
    """Downgrading past 0007 refuses, keeping the column, while a stored version has roles.yaml."""
    engine = open_database(database_url)
    ensure_schema(engine, database_url)
    PolicyRepository(engine).add_version("default", replace(content(1), roles_text="g2:\n  names: keyMatch2\n"))
    with pytest.raises(RuntimeError, match="declare roles.yaml"):
        downgrade(engine, "0006")
    assert PolicyRepository(engine).get_version("default", 1).roles_text == "g2:\n  names: keyMatch2\n"
    engine.dispose()


def test_every_migration_applies_and_reverts_one_at_a_time(database_url: str) -> None:
    """Each revision upgrades from the previous one and downgrades back, on both databases."""
    from alembic.script import ScriptDirectory

    from policy_engine.store.db import alembic_config

    revisions = [r.revision for r in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))]
    assert revisions[0] == "0001" and len(revisions) >= 4
    engine = open_database(database_url)
    for revision in revisions:
        upgrade(engine, revision)
        assert schema_state(engine).current == revision
    for previous in reversed(["base", *revisions[:-1]]):
        downgrade(engine, previous)
        assert schema_state(engine).current == (None if previous == "base" else previous)
    engine.dispose()
