"""Small file-system helpers with one home: the atomic writer, the commit lookup, JSON-safe values.

:func:`atomic_write` is the only way ddnsr writes a result file: the bytes go to
``.<name>.<random>.part`` beside the destination, are flushed and fsynced, and the temporary file is
renamed over the destination (then the folder is fsynced where folders can be opened). On any error
the temporary file is removed and an existing destination is left as it was, so a killed run never
leaves a half-written file under the final name. New files get ordinary permissions (0o666 less the
umask).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "TEMPORARY_SUFFIX", "atomic_paths", "atomic_write", "git_commit", "is_temporary_name", "jsonable", "publish",
    "temporary_name",
]

TEMPORARY_SUFFIX = ".part"


def temporary_name(path: Path) -> Path:
    """A hidden, unique temporary name beside ``path`` (``.<name>.<random>.part``)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def is_temporary_name(name: str) -> bool:
    """True for names ddnsr (or an editor) uses for unfinished files: hidden, ``.part``, ``.tmp``, ``~``."""
    return name.startswith((".", "~$")) or name.endswith(("~", TEMPORARY_SUFFIX, ".tmp"))


def publish(temporary: Path, final: Path) -> None:
    """Make a finished temporary file durable and rename it onto ``final`` (then fsync the folder)."""
    with open(temporary, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(temporary, final)
    with contextlib.suppress(OSError):  # make the rename durable where folders can be opened
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary names for ``paths`` (created empty, parent folders made) to write in any way.

    On a normal exit every temporary file is published onto its final name, all of them only after the
    block finished (so a pair such as ncnn's ``.param`` + ``.bin`` appears together); on any error the
    temporaries are removed, and so are finals already renamed, and nothing is left half-written.
    """
    finals = [Path(p) for p in paths]
    temporaries: list[Path] = []
    renamed: list[Path] = []
    try:
        for final in finals:
            final.parent.mkdir(parents=True, exist_ok=True)
            temporaries.append(_create_temporary(final))
        yield list(temporaries)
        for temporary, final in zip(temporaries, finals, strict=True):
            publish(temporary, final)
            renamed.append(final)
    except BaseException:
        for leftover in [*temporaries[len(renamed):], *(renamed if len(finals) > 1 else [])]:
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        raise


def _create_temporary(final: Path) -> Path:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = temporary_name(final)
        try:
            os.close(os.open(temporary, flags, 0o666))  # the umask applies, as for any new file
            return temporary
        except FileExistsError:
            continue


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, UTF-8 text, or a function writing to a binary file) atomically to ``path``.

    The parent folder is created. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if isinstance(content, str):
        data = content.encode("utf-8")
        write: Callable[[BinaryIO], None] = lambda f: f.write(data)  # noqa: E731
    elif isinstance(content, (bytes, bytearray, memoryview)):
        write = lambda f: f.write(content)  # noqa: E731
    else:
        write = content
    with atomic_paths(path) as (temporary,), open(temporary, "wb") as f:
        write(f)
        f.flush()
    return path


def git_commit() -> str:
    """The short commit of the checkout ddnsr runs from, ``+changes`` when tracked files differ; else "unknown"."""
    here = str(Path(__file__).resolve().parent)
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        if not commit:
            return "unknown"
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def jsonable(value: Any) -> Any:
    """``value`` with paths as strings, tuples as lists, NumPy scalars as Python numbers, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
