"""The pieces that keep a rebuild's memory bounded read what the whole-payload code read.

A manifest now arrives in pieces of any size and its checked lines wait in a
spool on disk; members are checked against an on-disk key set.  Each must
answer exactly as ``bytes.split`` over the whole manifest, a list and a
Python set did (those are the references here).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from pytp.catalog.key_set import KeySet
from pytp.catalog.manifest import MAX_MEMBER_LINE, read_manifest, split_lines
from pytp.catalog.record_spool import RecordSpool, SegmentWriter
from tests.crafted_tape import manifest_job, manifest_payload


def _whole(payload: bytes) -> list[tuple[int, bytes | None, int]]:
    """What the whole-payload reader saw: every line but blank ones (the header always), overlong ones dropped."""
    lines = payload.split(b"\n")
    seen = [(1, lines[0], len(lines[0]))]
    for number, raw in enumerate(lines[1:], start=2):
        if raw.strip():
            seen.append((number, None if len(raw) > MAX_MEMBER_LINE else raw, len(raw)))
    return seen


def _pieces(payload: bytes, largest: int, rng: random.Random) -> Iterator[bytes]:
    at = 0
    while at < len(payload):
        size = rng.randint(1, largest)
        yield payload[at : at + size]
        at += size


LONG = b"y" * (MAX_MEMBER_LINE + 1)
CASES = [
    b"",
    b"\n",
    b"header",
    b"header\n\n  \n\t\nline\n",
    b"\nline after an empty header\n",
    b"h\n" + LONG + b"\nafter\n",
    b"h\n" + b" " * (MAX_MEMBER_LINE + 5) + b"\nblank however long\n",
    b"h\n" + LONG,  # no newline at the end
    b"h\n" + b"x" * MAX_MEMBER_LINE + b"\nexactly the limit\n",
]


@pytest.mark.parametrize("payload", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("largest", [1, 7, 4096, 1 << 21])
def test_lines_from_pieces_are_those_of_the_whole_manifest(payload: bytes, largest: int) -> None:
    if largest < 4096 and len(payload) > 10_000:
        largest = 4096  # a megabyte one byte at a time proves nothing more
    assert list(split_lines(_pieces(payload, largest, random.Random(largest)))) == _whole(payload)


def test_random_manifests_split_in_random_pieces() -> None:
    rng = random.Random(9)
    for _ in range(500):
        payload = bytes(rng.choice(b"ab \n\t") for _ in range(rng.randint(0, 80)))
        assert list(split_lines(_pieces(payload, rng.randint(1, 9), rng))) == _whole(payload)


def test_a_manifest_read_in_pieces_spools_its_good_lines_and_counts_every_problem() -> None:
    good = {"path": "/a", "type": "dir", "size": 0, "mode": 0o755, "uid": 0, "gid": 0, "uname": "", "gname": ""}
    good.update(mtime_ns=0, ctime_ns=0, inode=0, device=0, xxh3=None, tape="T", tape_file=1, offset=0)
    good["header_size"] = 512
    lines = [good, "not json", {**good, "path": "relative"}, {**good, "path": "/b", "offset": 512}] + ["x"] * 60
    payload = manifest_payload(manifest_job(tape_files=[("T", 1, "/", 1)]), lines)
    with RecordSpool() as spool:
        manifest = read_manifest(_pieces(payload, 100, random.Random(1)), SegmentWriter(spool), keep_problems=5)
        assert manifest.job is not None and manifest.job["tape_files"][0]["tape"] == "T"
        assert [(n, line["path"]) for n, line in manifest.lines] == [(2, "/a"), (5, "/b")]
        assert list(manifest.lines) == list(manifest.lines)  # read again from disk, each time
        assert manifest.line_count == 2 and manifest.damaged and manifest.bad_lines == 62
        assert manifest.problem_count == 62 and [p.line for p in manifest.problems] == [3, 4, 6, 7, 8]


def test_segments_of_one_spool_read_back_in_order_and_interleaved() -> None:
    values = [{"n": i, "path": f"/p/{i}" * (i % 7), "parts": [{"tape": "T", "part": i}]} for i in range(30_000)]
    with RecordSpool() as spool:
        first = SegmentWriter(spool)
        for value in values[:20_000]:
            first.append(value)
        one = first.finish()
        second = SegmentWriter(spool)
        second.append("x" * (3 << 20))  # larger than a read
        for value in values[20_000:]:
            second.append(value)
        two = second.finish()
        both = zip(one, list(two)[1:])  # two readers at once
        assert [a for a, _ in both] == values[:10_000]
        assert list(one) == values[:20_000] and list(two) == ["x" * (3 << 20), *values[20_000:]]
        assert len(one) == 20_000 and len(two) == 10_001


def test_the_key_set_answers_as_a_python_set() -> None:
    rng = random.Random(4)
    reference: dict[tuple[int, int], set[bytes]] = {}  # names by place
    with KeySet() as keys:
        for _ in range(5_000):
            group, offset = rng.randint(1, 3), rng.choice([-1, rng.randint(0, 300) * 512])
            name = b"/p%d" % rng.randint(0, 20)
            names = reference.get((group, offset), set())
            expected = KeySet.PRESENT if name in names else KeySet.OTHER_NAME if names else KeySet.ABSENT
            assert keys.find(group, offset, name) == expected
            assert ((group, offset, name) in keys) == (name in names)
            if rng.random() < 0.7:
                keys.add(group, offset, name)
                reference.setdefault((group, offset), set()).add(name)
        keys.update([(9, 0, b"/x"), (9, 0, b"/x")])
        assert (9, 0, b"/x") in keys and keys.find(9, 0, b"/y") == KeySet.OTHER_NAME
