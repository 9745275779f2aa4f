"""tools/read_bundle.py, a reader written from bundles/FORMAT.md alone, reads bundles/vectors/.

It accepts the good vectors (formats 1 and 2) and refuses each bad vector by the rule of
FORMAT.md that the vector breaks, with the exit code FORMAT.md states for that rule, which must
be the one expected.json gives (else the spec, orchd and the vectors disagree).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
READER = ROOT / "tools" / "read_bundle.py"
VECTORS = ROOT / "bundles" / "vectors"
EXPECTED = json.loads((VECTORS / "expected.json").read_text())

# vector -> (the rule of FORMAT.md it breaks, first in the order of section 5's steps; the exit
# code FORMAT.md states for that rule, or None where it states none)
RULES: dict[str, tuple[str, int | None]] = {
    # section 3: base64 MUST be canonical (unused padding bits zero), exit 54
    "bad-base64-padding-bits.orchkit": ("3: base64", 54),
    # section 1: a member that is not the next one the order requires (here: an extra one), 55
    "bad-duplicate-member.orchkit": ("1: member order", 55),
    # section 4: stop as soon as the output exceeds raw_size, exit 56
    "bad-expands-beyond-raw-size.orchkit": ("4: raw_size exceeded", 56),
    # the flipped bit is in bundle_id, which section 2 (step 1) recomputes before step 2 compares
    # the manifest with the signed payload: a manifest not the one its exporter wrote, exit 54
    "bad-manifest-bit-flipped.orchkit": ("2: bundle_id", 54),
    # section 4: the member's sha256 is compared with the manifest's, exit 56
    "bad-member-byte-flipped.orchkit": ("4: sha256", 56),
    # section 1: any type flag but 0 (here 2, a symbolic link), exit 55
    "bad-symlink-member.orchkit": ("1: type flag", 55),
    # section 1: anything after the two zero blocks (here a third zero block), exit 55
    "bad-trailing-data.orchkit": ("1: after the end", 55),
    # section 1: a file that ends early (here inside manifest.sig), exit 55
    "bad-truncated.orchkit": ("1: ends early", 55),
    # section 1: no manifest.sig after manifest.json is an unsigned bundle, exit 54
    "bad-unsigned.orchkit": ("1: member order", 54),
    # section 5, step 3: signed by no key trusted for the exporter, exit 72
    "bad-untrusted-signer.orchkit": ("3.1: untrusted signer", 72),
    # section 5, step 4: addressed to another site, exit 73
    "bad-wrong-recipient.orchkit": ("5 step 4: recipient", 73),
    # format 2, section 3.3: the head statement's hash, seq or origin is not the range's, 54
    "v2-bad-head-hash-not-last.orchkit": ("3.3: head", 54),
    "v2-bad-stale-head.orchkit": ("3.3: head", 54),
    "v2-bad-head-of-another-origin.orchkit": ("3.3: head", 54),
    # 3.3: the last event's hlc is not the head's (checked while streaming), 54
    "v2-bad-head-hlc.orchkit": ("3.3: hlc", 54),
    # 3.3: a signature by the origin's trusted key that does not verify, 54
    "v2-bad-head-signature.orchkit": ("3.3: head signature", 54),
    # 3.3: signed by no key trusted for the origin (a relay's forgery), 72
    "v2-bad-head-signed-by-another-key.orchkit": ("3.3: head signature", 72),
    # 2.1: a format 2 range names its head member, 55
    "v2-bad-range-without-head.orchkit": ("2: range", 55),
    # section 1: the member the order requires (the head statement) is missing, 55
    "v2-bad-stripped-statements.orchkit": ("1: member order", 55),
    # 3.4 and 4.2: the base rows' sha256 is not the checkpoint's rows_digest, 56
    "v2-bad-checkpoint-rows-digest.orchkit": ("3.4: rows_digest", 56),
    # 3.4: the checkpoint's seq and hash are not the range's from_seq - 1 and prev_hash, 54
    "v2-bad-checkpoint-not-prev.orchkit": ("3.4: checkpoint", 54),
    # 3.4: the checkpoint's origin is not the range's, 54
    "v2-bad-checkpoint-of-another-origin.orchkit": ("3.4: checkpoint", 54),
    # 3.4 (as 3.3 step 2): signed by no key trusted for the origin, 72
    "v2-bad-checkpoint-signed-by-another-key.orchkit": ("3.4: checkpoint signature", 72),
    # 3.2, an origin's chain of rotations: a line whose old key is trusted is not signed by it, 54
    "v2-bad-rotation-not-signed-by-old-key.orchkit": ("3.2: rotation signature", 54),
    # 3.2: a line's site is not the range's origin; a line's old key is not the new key of the
    # line before (not one chain), 54
    "v2-bad-rotation-of-another-origin.orchkit": ("3.2: rotations", 54),
    "v2-bad-rotations-not-one-chain.orchkit": ("3.2: rotations", 54),
}
# good vector -> the range of hq it carries: (from_seq, to_seq)
GOOD = {
    "good.orchkit": (1, 7),
    "v2-good.orchkit": (1, 7),
    # hq pruned up to 4: its range starts from its checkpoint at 4 (3.4)
    "v2-good-checkpoint.orchkit": (5, 7),
    # hq rotated its key (event 8): the new key, reached from hq's trusted one, signs (3.2)
    "v2-good-rotated.orchkit": (1, 8),
    # hq's first job ran on the remote worker scanner-1: run.started names it (section 7)
    "v2-good-remote-run.orchkit": (1, 10),
}


@cache
def read(name: str) -> tuple[int, dict[str, Any]]:
    """Run the reader as a site "enclave" trusting hq's test key, at a fixed time."""
    argv = [sys.executable, str(READER), str(VECTORS / name)]
    argv += ["--trust", f"hq={VECTORS / 'keys' / 'hq.pem'}", "--recipient", "enclave"]
    argv += ["--now", "2026-06-01T00:00:00.000Z"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1, done.stdout
    return done.returncode, json.loads(done.stdout)


def test_the_reader_imports_no_orchd() -> None:
    tree = ast.parse(READER.read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}  # fmt: skip
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    roots = {name.split(".")[0] for name in modules}
    assert "orchd" not in roots
    assert roots - set(sys.stdlib_module_names) <= {"zstandard", "cryptography", "nacl"}


def test_every_vector_is_mapped_to_a_rule() -> None:
    files = {path.name for path in VECTORS.glob("*.orchkit")}
    assert files == set(EXPECTED) == {*RULES, *GOOD}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_the_good_vectors_are_accepted(name: str) -> None:
    code, result = read(name)
    assert code == 0, result
    assert result["ok"] is True
    assert result["exporter"] == "hq"
    assert result["events"] == EXPECTED[name]["events"]
    from_seq, to_seq = GOOD[name]
    assert result["ranges"] == [{"origin": "hq", "from_seq": from_seq, "to_seq": to_seq}]


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_bad_vector_is_refused_by_its_rule(name: str) -> None:
    code, result = read(name)
    assert code == 1, result
    assert result["ok"] is False
    assert (result["step"], result["exit"]) == RULES[name], result["reason"]


@pytest.mark.parametrize("name", sorted(RULES))
def test_the_exit_code_of_the_rule_is_the_one_expected_json_gives(name: str) -> None:
    assert RULES[name][1] == EXPECTED[name]["exit"]
