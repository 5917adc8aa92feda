"""The local side of `davserver push`/`pull` (davserver.cli.blocks) on real files:
cutting as the server does, what a 1 MiB edit changes, reuse of a local copy on pull,
and the atomic replacement of a pulled file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from davserver.cli.blocks import (
    AtomicFile,
    Block,
    batches,
    chunker_of,
    cut,
    index,
    local_blocks,
    plan_pull,
    read_at,
    sha256_of,
)
from davserver.cli.output import CommandError
from providers.chunker import FastCDCChunker
from tests.support.delta_files import MIB, edit_middle, sha256_file, write_data

SERVER = FastCDCChunker(256 * 1024, MIB, 4 * MIB)  # a server's chunking (1 MiB mean)
PARAMS = {
    "chunker": "fastcdc2020",
    "min_size": 262144,
    "avg_size": 1048576,
    "max_size": 4194304,
    "hash": "sha256",
    "params": "fastcdc2020:min=262144,avg=1048576,max=4194304",
    "max_blocks_per_check": 1000,
}


def test_the_published_parameters_give_the_servers_chunker() -> None:
    assert chunker_of(PARAMS).params() == SERVER.params()


@pytest.mark.parametrize(
    "change",
    [
        {"params": "fastcdc2020:min=1,avg=2,max=3"},
        {"params": "fastcdc2016:min=262144,avg=1048576,max=4194304"},
        {"hash": "blake3"},
        {"min_size": "lots"},
        {"max_size": None},
    ],
)
def test_other_parameters_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(CommandError, match="cannot do"):
        chunker_of({**PARAMS, **change})


def test_cut_gives_the_servers_blocks_covering_the_file(tmp_path: Path) -> None:
    path = write_data(tmp_path / "f", 20 * MIB + 12345)
    blocks = list(cut(path, SERVER))
    data = path.read_bytes()
    assert [b.size for b in blocks] == [len(chunk) for chunk in SERVER.split([data])]
    ends = [b.offset + b.size for b in blocks]
    assert [b.offset for b in blocks] == [0, *ends[:-1]]
    assert sum(b.size for b in blocks) == len(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert all(sha256_of(read_at(fd, b.offset, b.size)) == b.sha256 for b in blocks)
    finally:
        os.close(fd)


def test_an_empty_file_has_no_blocks(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert list(cut(tmp_path / "empty", SERVER)) == []


def test_a_1_mib_edit_in_the_middle_changes_a_few_blocks(tmp_path: Path) -> None:
    path = write_data(tmp_path / "f", 64 * MIB)
    before = {b.sha256 for b in cut(path, SERVER)}
    edit_middle(path)
    changed = [b for b in cut(path, SERVER) if b.sha256 not in before]
    assert 1 <= len(changed) <= 4
    assert sum(b.size for b in changed) < 8 * MIB


def test_pull_reuses_the_local_copy_and_fetches_only_the_edit(tmp_path: Path) -> None:
    local = write_data(tmp_path / "local", 32 * MIB)
    remote = write_data(tmp_path / "remote", 32 * MIB)
    edit_middle(remote)
    plan = plan_pull(list(cut(remote, SERVER)), index(local_blocks(local, SERVER)))
    fetched = sum(copies[0].size for copies in plan.fetch.values())
    assert 0 < fetched < 8 * MIB
    assert sum(b.size for b, _ in plan.reuse) + fetched == 32 * MIB


def test_a_repeated_block_is_fetched_once(tmp_path: Path) -> None:
    twice = Block("a" * 64, 0, 10), Block("a" * 64, 10, 10)
    plan = plan_pull([*twice, Block("b" * 64, 20, 5)], {})
    assert plan.fetch == {"a" * 64: list(twice), "b" * 64: [Block("b" * 64, 20, 5)]}
    assert plan.reuse == []


def test_a_local_block_of_another_size_is_not_reused() -> None:
    plan = plan_pull([Block("a" * 64, 0, 10)], {"a" * 64: Block("a" * 64, 0, 11)})
    assert plan.reuse == [] and list(plan.fetch) == ["a" * 64]


def test_no_local_file_reuses_nothing(tmp_path: Path) -> None:
    assert index(local_blocks(tmp_path / "absent", SERVER)) == {}


def test_batches_keep_order_and_bound() -> None:
    assert list(batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], 3)) == []
    assert [len(b) for b in batches(range(100), 40, first=2)] == [2, 8, 32, 40, 18]


def test_a_file_shorter_than_its_blocks_is_reported(tmp_path: Path) -> None:
    path = write_data(tmp_path / "f", 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(CommandError, match="changed"):
            read_at(fd, 500, 1000)
    finally:
        os.close(fd)


def test_atomic_file_replaces_the_target_only_on_commit(tmp_path: Path) -> None:
    target = write_data(tmp_path / "t", 3000, seed="old")
    old = sha256_file(target)
    with AtomicFile(target, 6) as out:
        out.write_at(3, b"def")
        out.write_at(0, b"abc")
        assert sha256_file(target) == old  # not yet
        out.commit(1_700_000_000.5)
    assert target.read_bytes() == b"abcdef"
    assert target.stat().st_mtime == 1_700_000_000.5
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_atomic_file_left_without_commit_leaves_the_target_and_no_temp(tmp_path: Path) -> None:
    target = write_data(tmp_path / "t", 3000, seed="old")
    old = sha256_file(target)
    with pytest.raises(RuntimeError), AtomicFile(target, 10) as out:
        out.write_at(0, b"new")
        raise RuntimeError("cut off")
    assert sha256_file(target) == old
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_atomic_file_that_cannot_replace_its_target_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()  # a folder where the file should go
    with pytest.raises(OSError), AtomicFile(tmp_path / "t", 3) as out:
        out.write_at(0, b"new")
        out.commit(None)
    assert [p.name for p in tmp_path.iterdir()] == ["t"]
