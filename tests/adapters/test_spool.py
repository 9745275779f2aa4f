"""The spool directory: producers' protocol, claims, strict requests, rejection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchd.adapters import spool
from orchd.errors import BadInput


@pytest.fixture
def root(tmp_path: Path) -> Path:
    spool.ensure(tmp_path / "spool")
    return tmp_path / "spool"


def test_drop_then_claim_reads_the_request_and_done_removes_it(root: Path) -> None:
    spool.drop(root, "a.json", {"job_type": "echo", "params": {"n": "1"}})
    assert spool.pending(root) == ["a.json"]

    claimed = spool.claim(root, "a.json")

    assert claimed is not None and claimed.problem is None
    assert claimed.request == {"job_type": "echo", "params": {"n": "1"}}
    assert (root / "cur" / "a.json").exists() and not (root / "new" / "a.json").exists()
    spool.done(root, "a.json")
    assert spool.pending(root) == []


def test_a_claim_left_by_a_crash_is_taken_first_and_never_overwritten(root: Path) -> None:
    (root / "cur" / "x").write_text('{"job_type": "first"}')
    (root / "new" / "x").write_text('{"job_type": "second"}')
    (root / "new" / "a").write_text('{"job_type": "other"}')

    assert spool.pending(root) == ["x", "a"]
    first = spool.claim(root, "x")
    assert first is not None and first.request == {"job_type": "first"}
    spool.done(root, "x")
    again = spool.claim(root, "x")
    assert again is not None and again.request == {"job_type": "second"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1]", "a JSON object"),
        (b'{"job_type": 1}', "job_type must be a string"),
        (b'{"params": {}}', "job_type is required"),
        (b'{"job_type": "a", "job_type": "b"}', "appears twice"),
        (b'{"job_type": "a", "priority": 1.5}', "not a JSON value"),
        (b'{"job_type": "a", "params": {"n": 1}}', "params must map names to strings"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"job_type": "a", "priority": ' + b"1" * 5000 + b"}", "not JSON (Exceeds the limit"),
        (b"[" * 50_000, "not JSON (maximum recursion depth"),
    ],
)
def test_bad_requests_are_named(root: Path, body: bytes, problem: str) -> None:
    (root / "new" / "bad").write_bytes(body)
    claimed = spool.claim(root, "bad")
    assert claimed is not None and claimed.problem is not None
    assert problem in claimed.problem


def test_reject_keeps_the_file_and_the_reason_side_by_side_without_clobbering(root: Path) -> None:
    for _ in range(2):
        (root / "new" / "bad").write_bytes(b"nope")
        claimed = spool.claim(root, "bad")
        assert claimed is not None and claimed.problem
        spool.reject(root, "bad", claimed.problem)
    assert sorted(p.name for p in (root / "rejected").iterdir()) == [
        "bad",
        "bad.1",
        "bad.1.reason",
        "bad.reason",
    ]


def test_drop_refuses_bad_names_and_names_in_use(root: Path) -> None:
    with pytest.raises(BadInput, match="spool file name"):
        spool.drop(root, "../escape", {"job_type": "a"})
    spool.drop(root, "once", {"job_type": "a"})
    with pytest.raises(BadInput, match="already waiting"):
        spool.drop(root, "once", {"job_type": "a"})


def test_a_claim_cut_between_its_link_and_its_unlink_is_finished_once(root: Path) -> None:
    (root / "new" / "x").write_text('{"job_type": "echo"}')
    os.link(root / "new" / "x", root / "cur" / "x")  # the crash came before the unlink

    claimed = spool.claim(root, "x")

    assert claimed is not None and claimed.problem is None
    assert not (root / "new" / "x").exists()
    assert spool.pending(root) == ["x"]  # only in cur/ now, waiting for its record


def test_a_hard_link_made_by_a_producer_is_still_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.write_text('{"job_type": "echo"}')
    os.link(outside, root / "new" / "linked")

    claimed = spool.claim(root, "linked")

    assert claimed is not None and claimed.problem is not None and "hard link" in claimed.problem
