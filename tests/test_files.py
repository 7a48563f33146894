"""ddnsr.files: the one atomic writer, the temporary-name rule, JSON-safe values."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ddnsr.files import atomic_paths, atomic_write, is_temporary_name, jsonable


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "out.txt"
    atomic_write(dest, "first")
    assert dest.read_text() == "first"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~_umask()

    def dies(f) -> None:
        f.write(b"half of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(dest, dies)
    assert dest.read_text() == "first" and sorted(p.name for p in dest.parent.iterdir()) == ["out.txt"]


def test_atomic_paths_publish_a_pair_together_or_neither(tmp_path: Path) -> None:
    a, b = tmp_path / "m.param", tmp_path / "m.bin"
    with pytest.raises(RuntimeError), atomic_paths(a, b) as (ta, tb):
        ta.write_text("graph")
        assert is_temporary_name(ta.name) and not a.exists()
        raise RuntimeError("the second file failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(a, b) as (ta, tb):
        ta.write_text("graph")
        tb.write_bytes(b"weights")
    assert a.read_text() == "graph" and b.read_bytes() == b"weights" and len(list(tmp_path.iterdir())) == 2


def test_jsonable_values() -> None:
    out = jsonable({"p": Path("a/b"), "t": (1, np.float32(0.5)), "bad": math.nan, "i": np.int64(3)})
    assert out == {"p": "a/b", "t": [1, 0.5], "bad": None, "i": 3}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
