"""Finding and downloading pretrained files (VGG19 for training, the LPIPS backbone for metrics).

Every file is found the same way, in this order:

1. an explicit path given by the caller (a command-line option),
2. an environment variable naming the file (``DDNSR_VGG19``, ``DDNSR_ALEXNET``, ...),
3. the user cache folder (``$DDNSR_CACHE``, else ``$XDG_CACHE_HOME/ddnsr``, else ``~/.cache/ddnsr``),
4. a download from the file's real home into that cache folder, unless ``DDNSR_OFFLINE=1``.

Downloads go to ``<name>.part`` and are renamed only after the checksum matched, so an interrupted or
corrupted transfer never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ddnsr.errors import DownloadError

__all__ = [
    "ChecksumError",
    "DownloadError",
    "RemoteFile",
    "VGG19_KERAS",
    "ALEXNET_TORCHVISION",
    "cache_dir",
    "download",
    "find_local",
    "resolve",
]


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected checksum (it was not kept)."""


@dataclass(frozen=True)
class RemoteFile:
    """A pretrained file: its name in the cache, its real URL, its checksum and its override variable."""

    filename: str
    url: str
    env_var: str
    md5: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None  # torchvision-style: the first hex digits of the sha256, in the name


VGG19_KERAS = RemoteFile(
    filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    url="https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    env_var="DDNSR_VGG19",
    md5="253f8cb515780f3b799900260a226db6",
)

ALEXNET_TORCHVISION = RemoteFile(
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    env_var="DDNSR_ALEXNET",
    sha256_prefix="7be5be79",
)


def cache_dir() -> Path:
    """The folder where downloaded files are kept (created on first use by :func:`download`)."""
    if os.environ.get("DDNSR_CACHE"):
        return Path(os.environ["DDNSR_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ddnsr"


def offline() -> bool:
    """True when ``DDNSR_OFFLINE`` is set to a true value: nothing is downloaded."""
    return os.environ.get("DDNSR_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, spec: RemoteFile) -> str | None:
    """Return None when ``path`` matches the checksums of ``spec``, else a one-line reason."""
    if spec.md5 and (got := _digest(path, "md5")) != spec.md5:
        return f"md5 {got} != expected {spec.md5}"
    if spec.sha256 and (got := _digest(path, "sha256")) != spec.sha256:
        return f"sha256 {got} != expected {spec.sha256}"
    if spec.sha256_prefix and not (got := _digest(path, "sha256")).startswith(spec.sha256_prefix):
        return f"sha256 {got[:16]}... does not start with {spec.sha256_prefix}"
    return None


def download(spec: RemoteFile, dest: Path, *, url: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``spec`` (from ``url`` if given, else its real URL) to ``dest``, checking its checksum.

    The bytes go to ``dest.part`` first; only a complete transfer with the right checksum is renamed
    to ``dest``. A short transfer (fewer bytes than the server announced) or a wrong checksum raises
    :class:`DownloadError` / :class:`ChecksumError` and leaves no ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    src = url or spec.url
    try:
        with urllib.request.urlopen(src, timeout=timeout) as resp, open(part, "wb") as out:
            expected = resp.headers.get("Content-Length")
            shutil.copyfileobj(resp, out, length=1 << 20)
        size = part.stat().st_size
        if expected is not None and size != int(expected):
            raise DownloadError(f"{src}: transfer cut off ({size} of {expected} bytes)")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{src}: download failed ({reason})") from exc
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    bad = verify(part, spec)
    if bad:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{src}: checksum mismatch, file refused ({bad})")
    os.replace(part, dest)
    return dest


def find_local(spec: RemoteFile, path: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Where ``spec`` is on this machine (steps 1-3 of the module's order), never downloading.

    Returns:
        ``(path, "")``, or ``(None, one-line reason)`` that names the setting to use.
    """
    if path is not None:
        p = Path(path).expanduser()
        return (p, "") if p.is_file() else (None, f"{p}: no such file (given for {spec.filename})")
    env = os.environ.get(spec.env_var)
    if env:
        p = Path(env).expanduser()
        return (p, "") if p.is_file() else (None, f"{p}: no such file (set by {spec.env_var})")
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached, ""
    return None, f"{spec.filename} not found: set {spec.env_var}=PATH or put it in {cache_dir()}"


def resolve(spec: RemoteFile, path: str | os.PathLike | None = None, *, url: str | None = None) -> Path:
    """Find ``spec`` locally (:func:`find_local`) or download it into the cache.

    Raises :class:`DownloadError` with a one-line reason that names the setting to use when the file
    is missing and downloads are disabled (``DDNSR_OFFLINE=1``) or impossible.
    """
    found, why = find_local(spec, path)
    if found is not None:
        return found
    if path is not None or os.environ.get(spec.env_var):  # a named file that is not there: never a download
        raise DownloadError(why)
    if offline():
        raise DownloadError(f"{why} (downloads are disabled by DDNSR_OFFLINE)")
    cached = cache_dir() / spec.filename
    try:
        return download(spec, cached, url=url)
    except ChecksumError:
        raise
    except DownloadError as exc:
        raise DownloadError(f"{exc}; set {spec.env_var}=PATH to a local copy of {spec.filename}") from exc
