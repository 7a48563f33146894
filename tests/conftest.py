"""Shared test fixtures: where ../shared is, the VGG19 file, small helpers."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _default_sigchld():
    """Give SIGCHLD back its default action after each test. PyTorch's DataLoader installs a Python handler
    for it and never removes it; on a CPU with AMX, once bf16 work has run on the main thread, a later child
    exit (a subprocess of another test) delivered that handler on pytest's small alternate signal stack and
    the kernel killed the test process (SIGSEGV, si_code SI_KERNEL, seen in gdb inside poll())."""
    yield
    if signal.getsignal(signal.SIGCHLD) not in (signal.SIG_DFL, None):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DDNSR_SHARED", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"
DATA = SHARED / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (the shared folder beside the repository)")
    return path


@pytest.fixture(scope="session")
def vgg19_path() -> Path:
    """The Keras VGG19 notop file: $DDNSR_VGG19, else the cache; skipped with the reason if absent."""
    from ddnsr.datasets.pretrained import VGG19_KERAS, find_local

    path, why = find_local(VGG19_KERAS)
    if path is None:
        pytest.skip(f"VGG19 weights: {why} (../shared/weights/fetch-vgg19.sh DIR fetches them)")
    return path


def gate_worker(app, name: str | None = None, timeout: float = 60) -> tuple[threading.Event, threading.Event]:
    """Hold ``ddnsr serve``'s worker inside the first tile of each job (or only of the job called ``name``)
    until ``release`` is set; ``started`` is set when it gets there. Returns (started, release)."""
    worker = app.extensions["ddnsr"].worker
    started, release = threading.Event(), threading.Event()
    original = worker._progress

    def gated(job):
        report = original(job)

        def progress(done: int, total: int) -> None:
            if name is None or job.name == name:
                started.set()
                release.wait(timeout)
            report(done, total)

        return progress

    worker._progress = gated
    return started, release
