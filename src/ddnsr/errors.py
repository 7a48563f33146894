"""The one error base of ddnsr and its kinds.

Every error a user can fix (a bad image, a bad model file, bad training data, a bad setting, a failed
download) is a :class:`DdnsrError`; its message is one line that names the file or setting and the
reason. The command line prints that line (exit 1); any other exception is a bug and shows its
traceback. Each kind also keeps the standard base it had before (``ValueError`` / ``OSError``), so
``except ValueError`` in user code goes on working.
"""

from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["BusyError", "DataError", "DdnsrError", "DownloadError", "ImageError", "LimitError", "ModelFileError",
           "RequestError", "SettingError", "one_line"]


_Error = TypeVar("_Error", bound="DdnsrError")


class DdnsrError(Exception):
    """Base of every error whose one-line message is all the user needs to see.

    A library error names a setting by its library name (``codec``, ``crf``, ``output_dir``) and lists
    those names in :attr:`settings` (see :meth:`named`); the command line shows each as its flag.
    """

    settings: tuple[str, ...] = ()

    def named(self: _Error, *settings: str) -> _Error:
        """This error, recording the settings its message names (returned, for ``raise Error(...).named(...)``)."""
        self.settings = settings
        return self


class SettingError(DdnsrError, ValueError):
    """A bad argument or setting (a flag's value, a size, a device this machine lacks)."""


class ImageError(DdnsrError):
    """An image (or video) file that cannot be read or written; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(path, reason)
        self.path = os.fspath(path)
        self.reason = " ".join(str(reason).split())

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ModelFileError(DdnsrError, ValueError):
    """A model file that is missing, malformed, crafted or of an unsupported architecture."""


class DataError(DdnsrError, ValueError):
    """Training or evaluation data that cannot be used (a missing folder, no images, too small)."""


class DownloadError(DdnsrError, OSError):
    """A download that failed or was refused (offline, HTTP error, checksum, size bound)."""


class RequestError(DdnsrError, ValueError):
    """A request to ``ddnsr serve``'s page that cannot be served: a missing field, an unknown choice or file type."""


class LimitError(DdnsrError, ValueError):
    """An input over a limit (bytes, pixels, files in one request); the page answers HTTP 413."""


class BusyError(DdnsrError, ValueError):
    """Too much work waiting already (``ddnsr serve``'s queue is full); the page answers HTTP 429."""


def one_line(exc: BaseException, *, typed: bool = False, limit: int | None = None) -> str:
    """An exception as one line: the first line of its message, whitespace folded (its type name when empty).

    Args:
        typed: put ``"<Type>: "`` before the message (for exceptions that are not a :class:`DdnsrError`,
            whose message alone may not say what went wrong).
        limit: cut the message to at most this many characters (ending in ``...``).
    """
    lines = str(exc).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if typed else text
