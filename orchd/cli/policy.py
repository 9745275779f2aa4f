"""``orchd policy``: check the policy files (entry layer)."""

from __future__ import annotations

import click

from orchd.adapters import policy_files

from . import cli
from .context import Config
from .output import emit_json


@cli.group()
def policy() -> None:
    """Work with the policy files (job types, schedules, quotas)."""


@policy.command()
@click.option("--json", "as_json", is_flag=True, help="Print what the policy defines as JSON.")
@click.pass_obj
def check(config: Config, as_json: bool) -> None:
    """Load and check every *.yaml file of the policy dir; name the first mistake."""
    loaded = policy_files.load(config.policy_dir)
    names = {
        "sources": sorted(loaded.sources),
        "job_types": sorted(loaded.job_types),
        "schedules": sorted(loaded.schedules),
        "quotas": sorted(f"{kind}:{name}" for kind, name in loaded.quotas),
    }
    if as_json:
        emit_json(
            {"policy_dir": str(config.policy_dir), "concurrency": loaded.concurrency, **names}
        )
        return
    for section, listed in names.items():
        click.echo(f"{section}: {len(listed)}  {' '.join(listed)}".rstrip())
    click.echo(f"concurrency: {loaded.concurrency}")
    click.echo(f"policy ok: {config.policy_dir}", err=True)
