"""The job programs on this host: which job types name a program that is missing or cannot run,
for ``policy check`` and ``doctor`` (adapters layer); a remote job type's runs on its workers,
so its program is not looked for here."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchd.adapters.policy_files import BUNDLE_EXPORT
from orchd.adapters.runner import base_environment
from orchd.core import policy as model


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramProblem:
    """A job type whose program cannot run here: its runs would fail to start."""

    job_type: str
    program: str
    problem: str  # "does not exist", "is not an executable file", "is not on PATH"

    def __str__(self) -> str:
        return f"job type {self.job_type}: program {self.program} {self.problem}"


def program_problems(policy: model.Policy, environ: Mapping[str, str]) -> list[ProgramProblem]:
    """The job types whose program is missing or not executable on this host: argv[0], and for
    ``/usr/bin/env ... PROGRAM`` the program env runs, looked up on the PATH the runner gives the
    job (the job's ``env`` over ``environ``). The built-in ``bundle-export`` is orchd itself; a
    remote type's program is each worker's to check, on its host, against its allowlist."""
    found = []
    for _name, job_type in sorted(policy.job_types.items()):
        if job_type.argv == BUNDLE_EXPORT.argv or job_type.remote:
            continue
        search = {**base_environment(environ), **job_type.env}["PATH"]
        for program in (job_type.argv[0], _run_by_env(job_type.argv)):
            if program is None or model.placeholders(program):
                continue  # a program named by a param is known only at run time
            path = program if "/" in program else shutil.which(program, path=search)
            problem = "is not on PATH" if path is None else _unrunnable(Path(path))
            if problem:
                found.append(
                    ProgramProblem(job_type=job_type.name, program=program, problem=problem)
                )
                break
    return found


_ENV_VALUED = frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"})


def _run_by_env(argv: Sequence[str]) -> str | None:
    """For ``env [OPTION...] [NAME=VALUE...] PROGRAM ...``: PROGRAM; else None."""
    if Path(argv[0]).name != "env":
        return None
    rest = iter(argv[1:])
    for arg in rest:
        if arg in _ENV_VALUED:
            next(rest, None)
        elif not arg.startswith("-") and "=" not in arg:
            return arg
    return None


def _unrunnable(path: Path) -> str:
    if not path.exists():
        return "does not exist"
    if not path.is_file() or not os.access(path, os.X_OK):
        return "is not an executable file"
    return ""
