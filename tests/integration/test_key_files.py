"""The signing key's files under a rotation, through the CLI's binding of ``ops.keys.KeyFiles``
to the key adapter (``cli/sitefiles.KeyFileStore``): the pending key, ``keys/retired/``, and a
rotation a crash interrupted after it was recorded."""

from __future__ import annotations

import json

import pytest
from conftest import Orchd

from orchd.cli import context, sitefiles


def key_id(site: Orchd) -> str:
    return str(json.loads(site.ok("keys", "show", "--json").stdout)["key_id"])


def test_a_rotation_puts_the_new_key_in_place_and_retires_the_old(site: Orchd) -> None:
    keys_dir = site.state_dir / "keys"
    old = key_id(site)
    new = site.ok("keys", "rotate", "--reason", "yearly").stdout.strip()
    assert key_id(site) == new != old
    assert sorted(p.name for p in keys_dir.iterdir()) == ["retired", "site.key"]
    assert [p.name for p in (keys_dir / "retired").iterdir()] == [f"{old}.key"]
    config = context.Config(state_dir=site.state_dir, policy_dir=site.state_dir)
    assert sitefiles.key_files(config).current().key_id == new


def test_a_rotation_recorded_but_not_put_in_place_is_finished_first(
    site: Orchd, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = site.state_dir / "keys"
    first = key_id(site)

    def crash(self: sitefiles.KeyFileStore) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as patched:
        patched.setattr(sitefiles.KeyFileStore, "promote", crash)
        assert site("keys", "rotate", "--reason", "yearly").exit_code != 0
    assert (keys_dir / "site.key.new").exists()  # recorded in the ledger, not yet in place
    second = key_id(site)  # the ledger's own key: the pending one
    assert second != first
    third = site.ok("keys", "rotate", "--reason", "again").stdout.strip()
    retired = sorted(p.name for p in (keys_dir / "retired").iterdir())
    assert retired == sorted([f"{first}.key", f"{second}.key"])
    assert not (keys_dir / "site.key.new").exists()
    assert key_id(site) == third
