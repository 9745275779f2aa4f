"""``orchd workers`` (entry layer): the site's remote workers as the policy names them and as the
daemon last heard from them, and the NATS server's ``authorization`` block that makes each
worker's name its identity (docs/ARCHITECTURE.md, "Remote workers")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orchd.errors import BadInput, NotInitialized
from orchd.ops import jobs as job_ops

from . import cli
from .actions import Request, action, perform
from .context import Config
from .output import emit_json, table


@cli.command()
@click.option(
    "--authorization",
    "passwords",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="PASSWORDS_DIR",
    help="Instead, print the NATS server's authorization block for this site (JSON, which "
    "nats-server's configuration reads): the daemon's user (nats_user) and each worker of the "
    "policy, with the subjects each may use; each one's nkey seed from PASSWORDS_DIR/NAME.nk "
    "(its public key goes in) or password from PASSWORDS_DIR/NAME.password, each readable by "
    "its owner alone.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def workers(config: Config, passwords: Path | None, as_json: bool) -> None:
    """The remote workers: the job types each may claim, and as the daemon last heard from
    them (version, concurrency, last heartbeat, runs held now)."""
    if passwords is not None:
        _authorization(config, passwords)
        return
    found = perform(config, "workers.list", {})
    if as_json:
        emit_json(found)
        return
    if not found["workers"]:
        click.echo("no remote workers: the policy names none (workers:)")
        return
    rows = [
        (
            w["worker"],
            ",".join(w["job_types"]) or "-",
            w["version"],
            w["concurrency"],
            w["last_heard_at"],
            w["running"],
        )
        for w in found["workers"]
    ]
    table(("WORKER", "TYPES", "VERSION", "CONCURRENCY", "LAST HEARD", "RUNNING"), rows)
    if not found["heard"]:
        click.echo(f"\n{found['why']}", err=True)


@action("workers.list", job_ops.READ_SCOPE, writes=False)
def _list(call: Request) -> dict[str, Any]:
    policy = call.policy()
    heard = {w["worker"]: w for w in call.workers or []}
    names = sorted(set(policy.workers) | set(heard))
    listed = []
    for name in names:
        said = heard.get(name, {})
        listed.append(
            {
                "worker": name,
                "job_types": sorted(policy.workers.get(name, ())),  # none: not in the policy
                "version": said.get("version"),
                "concurrency": said.get("concurrency"),
                "last_heard_at": said.get("last_heard_at"),
                "running": said.get("running", 0),
            }
        )
    why = ""
    if call.workers is None:
        why = (
            "the daemon is not running or has no nats_url: what workers said is known to the "
            "daemon alone"
            if not call.settings.nats_url or call.degraded is None
            else ""
        )
    return {"workers": listed, "heard": call.workers is not None, "why": why}


def _authorization(config: Config, folder: Path) -> None:
    """The server's configuration holds the passwords: keep it readable by the server alone."""
    if not folder.is_dir():
        raise BadInput(detail=f"no folder of passwords at {folder}")
    from orchd.adapters import keys, policy_files
    from orchd.adapters.nats.permissions import authorization as block
    from orchd.adapters.nats.permissions import nkey_public

    named = config.expected_site()
    if named is None:
        raise NotInitialized(path=config.state_dir)
    settings, policy = config.settings(), policy_files.load(config.policy_dir)

    def secret(user: str) -> dict[str, str]:
        """NAME.nk (an nkey seed: its public key goes in), else NAME.password."""
        seed = folder / f"{user}.nk"
        if seed.exists():
            return {"nkey": nkey_public(keys.read_secret(seed, f"NATS nkey seed of {user}"))}
        return {
            "password": keys.read_secret(folder / f"{user}.password", f"NATS password of {user}")
        }

    if settings.nats_user in policy.workers:
        raise BadInput(
            detail=f"worker {settings.nats_user} has the daemon's NATS user name (nats_user): "
            "a server refuses two users of one name; rename the worker or set nats_user"
        )
    daemon = secret(settings.nats_user)
    made = block(
        named.site_id,
        daemon if "nkey" in daemon else {"user": settings.nats_user, **daemon},
        {
            name: {**secret(name), "job_types": sorted(types)}
            for name, types in sorted(policy.workers.items())
        },
    )
    click.echo(json.dumps({"authorization": made}, indent=1))
