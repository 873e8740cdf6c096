"""Atomic writes, SHA-256 hashes with a safe memo, checksum lists; concurrent readers never see half a file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from _concurrency import run_concurrently

from mmr_gym import files
from mmr_gym.files import atomic_write, exchange_paths, file_sha256, format_checksums, parse_checksums


# ---------------------------------------------------------------------------------------- atomic_write
def test_atomic_write_takes_bytes_text_or_a_writer(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a", b"\x00\x01")
    atomic_write(tmp_path / "b", "héllo")
    atomic_write(tmp_path / "c", lambda fh: fh.write(b"written"))
    assert (tmp_path / "a").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "c").read_bytes() == b"written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "pointer.json"
    atomic_write(target, '{"root": "old"}')

    def fail(fh) -> None:
        fh.write(b'{"root": "ne')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == '{"root": "old"}'
    assert [p.name for p in tmp_path.iterdir()] == ["pointer.json"]


def test_atomic_write_gives_the_usual_permissions(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"x")
    atomic_write(tmp_path / "atomic", b"x")
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


# ---------------------------------------------------------------------------------------- hashes
def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.fixture
def counted_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    original = files._hash_file

    def counting(path: Path) -> str:
        calls.append(path)
        return original(path)

    monkeypatch.setattr(files, "_hash_file", counting)
    monkeypatch.setattr(files, "_memo", {})
    return calls


def test_an_unchanged_old_file_is_hashed_once(tmp_path: Path, counted_hashes: list[Path]) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n1,2\n")
    old = time.time() - 60
    os.utime(path, (old, old))
    first = file_sha256(path)
    assert file_sha256(path) == first
    assert len(counted_hashes) == 1


def test_a_rewrite_that_keeps_size_and_modification_time_is_hashed_again(
    tmp_path: Path, counted_hashes: list[Path]
) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n1,2\n")
    old = time.time() - 60
    os.utime(path, (old, old))
    first = file_sha256(path)
    time.sleep(0.01)  # let the change time move on file systems with coarse time stamps
    with open(path, "r+b") as fh:  # in place, same size
        fh.write(b"a,b\n9,2\n")
    os.utime(path, (old, old))  # and the old modification time put back
    assert file_sha256(path) != first
    assert len(counted_hashes) == 2


def test_a_freshly_written_file_is_not_remembered(tmp_path: Path, counted_hashes: list[Path]) -> None:
    path = tmp_path / "new.csv"
    path.write_bytes(b"x")
    file_sha256(path)
    file_sha256(path)
    assert len(counted_hashes) == 2  # within 2 s of a write a rewrite could look unchanged


def test_memo_false_always_reads(tmp_path: Path, counted_hashes: list[Path]) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    old = time.time() - 60
    os.utime(path, (old, old))
    file_sha256(path, memo=False)
    file_sha256(path, memo=False)
    assert len(counted_hashes) == 2


# ---------------------------------------------------------------------------------------- checksum lists
def test_checksum_lists_round_trip_in_sha256sum_format() -> None:
    digests = {"b.npz": "1" * 64, "a.parquet": "f" * 64}
    text = format_checksums(digests)
    assert text == f"{'f' * 64}  a.parquet\n{'1' * 64}  b.npz\n"
    assert parse_checksums(text) == digests
    assert parse_checksums(f"{'0' * 64} *binary.bin\n".replace(" *", "  *")) == {"binary.bin": "0" * 64}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc  file\n", r"line 1: expected '<64 lowercase hex digits>  <file name>'"),
        (f"{'0' * 64}  a\n{'1' * 64}  a\n", r"line 2: 'a' is listed twice"),
        (f"{'0' * 64}  ../escape\n", r"line 1: expected"),
        (f"{'G' * 64}  a\n", r"line 1: expected"),
    ],
)
def test_bad_checksum_lists_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_checksums(text)


# ---------------------------------------------------------------------------------------- concurrency
def test_readers_never_see_a_half_written_file(tmp_path: Path) -> None:
    target = tmp_path / "pointer.json"
    payloads = [json.dumps({"root": "A" * 3000, "n": n}) for n in range(2)]
    atomic_write(target, payloads[0])

    def write(i: int) -> None:
        atomic_write(target, payloads[i % 2])

    def read() -> None:
        assert json.loads(target.read_text(encoding="utf-8"))["root"] == "A" * 3000

    results = run_concurrently(tmp_path / "sync", write, read)
    assert len(results) == 3 and all(r["reads"] >= 10 for r in results), results  # reads overlapped writes
    assert [r["failures"] for r in results] == [0, 0, 0], results


def test_exchange_paths_swaps_two_directories_or_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("from a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("from b")
    if not exchange_paths(tmp_path / "a", tmp_path / "b"):  # not Linux, or no RENAME_EXCHANGE here
        assert (tmp_path / "a" / "x").read_text() == "from a"
        return
    assert (tmp_path / "a" / "x").read_text() == "from b"
    assert (tmp_path / "b" / "x").read_text() == "from a"
    with pytest.raises(FileNotFoundError):
        exchange_paths(tmp_path / "a", tmp_path / "missing")
