"""Where a bundle folder comes from in git: the commit of HEAD and whether the folder is dirty."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GitProvenance", "git_provenance"]


@dataclass(frozen=True)
class GitProvenance:
    """`commit` is None when the folder is not inside a git work tree."""

    commit: str | None
    dirty: bool


def git_provenance(folder: str | Path) -> GitProvenance:
    """HEAD of the repository holding `folder`, and whether anything under it is uncommitted."""
    path = Path(folder).resolve()
    try:
        head = _git(path, "rev-parse", "HEAD")
        status = _git(path, "status", "--porcelain", "--untracked-files=all", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return GitProvenance(commit=None, dirty=True)
    return GitProvenance(commit=head.strip(), dirty=bool(status.strip()))


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
    ).stdout
