"""`make bench`'s bytecode figure: its modes are what they say (a stale timestamp cache after a copy, a checked-hash
cache that survives it), its target is judged by its figure, and `--only bytecode` updates its rows in place."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import pytest

from tests.unit.test_bench_report import results

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT))
    from bench import bytecode

    spec = importlib.util.spec_from_file_location("bench_run_bytecode", ROOT / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    return bytecode, run


def header(pyc: Path) -> tuple[int, bytes]:
    data = pyc.read_bytes()
    (flags,) = struct.unpack("<I", data[4:8])
    return flags, data[8:16]


def test_a_copy_makes_timestamp_caches_stale_and_leaves_checked_hash_ones_valid(bench, tmp_path):
    bytecode, _ = bench
    apps = bytecode.prepare(tmp_path)
    assert bytecode.caches(apps["source"]) == []
    for mode in ("stale", "timestamp", "checked-hash"):
        assert bytecode.caches(apps[mode]), mode
    source = apps["stale"] / "shared" / "__init__.py"
    [stale] = [p for p in bytecode.caches(apps["stale"]) if p.name.startswith("__init__.")]
    flags, recorded = header(stale)
    assert flags == 0  # timestamp-based: the source's time, which no longer matches
    assert struct.unpack("<I", recorded[:4])[0] != int(source.stat().st_mtime) & 0xFFFFFFFF
    source = apps["checked-hash"] / "shared" / "__init__.py"
    [checked] = [p for p in bytecode.caches(apps["checked-hash"]) if p.name.startswith("__init__.")]
    flags, recorded = header(checked)
    assert flags == 0b11  # hash-based, checked against the source
    assert recorded == importlib.util.source_hash(source.read_bytes())


def figures(shipped: float) -> dict[str, object]:
    return {"modules": 18, "python": "3.13", "source": 60.0, "stale": 59.0, "timestamp": 40.0, "checked-hash": shipped}


def test_the_shipped_caches_are_judged_against_valid_caches(bench):
    bytecode, _ = bench
    assert bytecode.rows(figures(42.0))[-1].endswith("<= 1.15x valid caches: met |")
    assert bytecode.rows(figures(55.0))[-1].endswith("<= 1.15x valid caches: MISSED |")
    assert "18.0 ms saved" in bytecode.rows(figures(42.0))[-1]


def test_the_report_carries_the_rows_when_measured(bench):
    bytecode, run = bench
    measured = {**results(import_ms=92, kv32=60, rps64=600, first_ours=400), "bytecode": figures(42.0)}
    text = run.report(measured, quick=False)
    assert [line for line in text.splitlines() if line.startswith(bytecode.ROW_PREFIX)] == bytecode.rows(figures(42.0))
    assert "first request's app imports" not in run.report(
        results(import_ms=92, kv32=60, rps64=600, first_ours=400), quick=False
    )


def test_only_bytecode_replaces_its_rows_in_place(bench):
    bytecode, run = bench
    text = run.report(results(import_ms=92, kv32=60, rps64=600, first_ours=400), quick=False)
    once = bytecode.splice(text, bytecode.rows(figures(42.0)))
    twice = bytecode.splice(once, bytecode.rows(figures(41.0)))
    lines = twice.splitlines()
    ours = [i for i, line in enumerate(lines) if line.startswith(bytecode.ROW_PREFIX)]
    assert len(ours) == 4
    assert lines[ours[0] - 1].startswith("| ready to serve")
    assert "41.0 ms" in lines[ours[-1]]
    assert len(lines) == len(text.splitlines()) + 4
