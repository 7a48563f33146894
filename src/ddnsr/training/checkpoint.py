"""Training checkpoints: ``RUN/checkpoints/ckpt-<step>.pt``, written atomically, the last few kept.

A checkpoint holds only tensors, dicts, lists, tuples, numbers, strings and None (the networks' and
optimisers' state, the loss scaler, the configuration as plain values and the random states converted
to tensors and lists), so it is read with ``torch.load(weights_only=True)``: a planted or crafted
``ckpt-*.pt`` cannot run code, it is refused as unreadable. A checkpoint that cannot be read (cut
short, garbage, crafted) is skipped for the next older one, with one line on stderr.
"""

from __future__ import annotations

import random
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddnsr.errors import DataError
from ddnsr.files import atomic_write

__all__ = ["CheckpointError", "Checkpointer", "get_rng_state", "latest_checkpoint", "set_rng_state"]

REQUIRED = ("step", "config", "nets", "optimisers", "scaler", "rng")

# checkpoints written before this format kept NumPy's random state as an array: its rebuilding functions
# are allowed (an array's items go through the same restricted unpickler, so no code can run)
_NUMPY_ARRAYS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
                 getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct]


class CheckpointError(DataError):
    """A checkpoint that cannot be read safely, or a run folder with none that can."""


class Checkpointer:
    """The checkpoints of one run folder: ``save`` the newest, keep the last ``keep``, ``load`` safely."""

    def __init__(self, run_dir: str | Path, keep: int = 2) -> None:
        self.folder = Path(run_dir) / "checkpoints"
        self.keep = keep

    def paths(self) -> list[Path]:
        """The checkpoints, oldest first (temporary files of unfinished writes are hidden and ignored)."""
        return sorted(self.folder.glob("ckpt-*.pt"))

    def latest(self) -> Path | None:
        found = self.paths()
        return found[-1] if found else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``ckpt-<step>.pt`` atomically (ddnsr.files.atomic_write) and delete all but the last ``keep``."""
        path = atomic_write(self.folder / f"ckpt-{step:08d}.pt", lambda f: torch.save({"step": step, **state}, f))
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load(self, path: str | Path) -> dict[str, Any]:
        """Read one checkpoint without running any code from it.

        Raises:
            CheckpointError: the file is cut short, not a checkpoint, holds objects other than plain
                values and tensors (a crafted pickle), or lacks a part.
        """
        path = Path(path)
        try:
            with torch.serialization.safe_globals(_NUMPY_ARRAYS), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. a pickle protocol note for a plain (non-torch) pickle
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to read means: not a usable checkpoint
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                reason = "it holds objects other than tensors and plain values (refused: loading it could run code)"
            raise CheckpointError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
        if not isinstance(state, dict) or any(k not in state for k in REQUIRED) or not isinstance(
                state["config"], dict):
            raise CheckpointError(f"{path}: not a ddnsr training checkpoint (expected the parts {', '.join(REQUIRED)})")
        return state

    def load_latest(self, warn: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
        """The newest checkpoint that can be read; each unreadable newer one is reported through ``warn``.

        Raises:
            CheckpointError: there is no checkpoint, or none can be read.
        """
        warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        found = self.paths()
        if not found:
            raise CheckpointError(f"--resume: no checkpoint in {self.folder}")
        errors = []
        for path in reversed(found):
            try:
                state = self.load(path)
            except CheckpointError as exc:
                errors.append(exc)
                continue
            if errors:
                warn(f"warning: {errors[-1]}; resuming from the older {path.name}")
            return path, state
        if len(errors) == 1:
            raise errors[0]
        raise CheckpointError(f"--resume: none of the {len(errors)} checkpoints in {self.folder} can be read "
                              f"(newest: {errors[0]})")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest ``ckpt-*.pt`` of a run folder, or None."""
    return Checkpointer(run_dir).latest()


def get_rng_state() -> dict[str, Any]:
    """Every random state training uses, as tensors and plain values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(internal), "gauss": python_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the random states of :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    if isinstance(n, dict):
        n = (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    np.random.set_state(n)  # a tuple with an array in checkpoints of the earlier format
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]) if isinstance(p, dict) else p)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
