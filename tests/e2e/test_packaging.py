"""The built wheel, installed elsewhere, is a working service: it carries its migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import sqlalchemy

ROOT = Path(__file__).resolve().parents[2]


def test_a_wheel_migrates_a_database_without_the_repository(tmp_path: Path) -> None:
    """`pip install policy-engine` (not -e) must create and upgrade its schema: the Alembic
    scripts travel inside the package. The wheel is unpacked outside the repository and run
    from there, with the repository out of sys.path."""
    built = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
         "-w", str(built), str(ROOT)],
        check=True, timeout=600,
    )
    wheel = next(built.glob("policy_engine-*.whl"))
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    scripts = {p.relative_to(ROOT / "migrations") for p in (ROOT / "migrations").rglob("*.py")}
    assert scripts and all((installed / "policy_engine" / "_migrations" / p).is_file() for p in scripts)

    database = tmp_path / "elsewhere" / "pe.db"
    database.parent.mkdir()
    program = (
        "import sys, policy_engine; print(policy_engine.__file__);"
        "from policy_engine.cli.serve import main; sys.exit(main())"
    )
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-c", program, "db", "upgrade", "--db", f"sqlite:///{database}"],
        cwd=database.parent, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(installed))
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"policy_versions", "decision_log", "alembic_version"} <= tables
