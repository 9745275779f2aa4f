"""``orchd policy``: check the policy files (entry layer)."""

from __future__ import annotations

import click

from . import cli
from .context import Config, program_problems
from .output import emit_json

NO_AUTHZ = "no authz.yaml: only the daemon's own user may use its socket"
PROGRAM_FIX = (
    "install the program, or correct the job type's argv; until then its runs fail to start"
)


@cli.group()
def policy() -> None:
    """Work with the policy files (job types, schedules, quotas)."""


@policy.command()
@click.option("--json", "as_json", is_flag=True, help="Print what the policy defines as JSON.")
@click.pass_obj
def check(config: Config, as_json: bool) -> None:
    """Load and check every *.yaml file of the policy dir, authz.yaml too; name the first
    mistake. Warn (exit 0) about job programs that are missing or not executable here."""
    loaded = config.policy()
    authz = config.authz()
    warnings = program_problems(loaded)
    names = {
        "sources": sorted(loaded.sources),
        "job_types": sorted(loaded.job_types),
        "schedules": sorted(loaded.schedules),
        "quotas": sorted(f"{kind}:{name}" for kind, name in loaded.quotas),
    }
    for warning in [] if as_json else warnings:  # with --json: in the JSON
        click.echo(f"warning: {warning}", err=True)
    if warnings and not as_json:
        click.echo(f"hint: {PROGRAM_FIX}", err=True)
    grants = len(authz.grants) if authz.from_file else None
    if as_json:
        emit_json(
            {
                "policy_dir": str(config.policy_dir),
                "concurrency": loaded.concurrency,
                **names,
                "authz_grants": grants,
                "warnings": warnings,
            }
        )
        return
    for section, listed in names.items():
        click.echo(f"{section}: {len(listed)}  {' '.join(listed)}".rstrip())
    click.echo(f"concurrency: {loaded.concurrency}")
    click.echo(f"authz: {f'{grants} grants' if grants is not None else NO_AUTHZ}")
    click.echo(f"policy ok: {config.policy_dir}", err=True)
