"""Shared fixtures: real databases (SQLite file, a fresh PostgreSQL database per run)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICIES = ROOT / "policies"
POSTGRES_ADMIN_URL = os.environ.get(
    "POLICY_ENGINE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True, scope="session")
def _local_admin_credential(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers started without a token file of their own keep their local admin credential
    in the session's temporary folder, not in the home directory of whoever runs the tests."""
    folder = tmp_path_factory.mktemp("local-admin")
    os.environ.setdefault("POLICY_ENGINE_ADMIN_TOKEN_FILE", str(folder / "admin-token"))


@pytest.fixture
def policies_dir(tmp_path: Path) -> Path:
    """A private copy of the repository's policies/ folder."""
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, target)
    return target


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'policy-engine.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards, so runs never see each other's data."""
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs against SQLite and against PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")
