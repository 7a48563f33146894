"""Unpaired training data: records.json, image checks and the official crop stream, in PyTorch.

The official TensorFlow pipeline (``method/data.py`` and ``method/gan.py`` of muys1845/DDNSR) is::

    files of a data set, shuffled ONCE, repeated forever (the same order on every pass)
    each file read -> decode -> ONE random left-right flip -> 16 random crops (32 px for X, 128 for Y)
    zip(X crops, Y crops) -> shuffle(buffer 1024, over the (x, y) pairs) -> batch(16)

This module produces that stream from a seed, as a pure function of the seed and the batch index:

* **read n** (the n-th image read of a rank) uses file ``perm[g % N]`` where ``g = n * world_size + rank``
  and ``perm`` is one permutation of the N usable files drawn from ``(seed, stream)``; its flip and
  crop corners come from a generator seeded by ``(seed, stream, g)``, so they depend on the pass
  (``g // N``), the position and the rank, and on nothing else: not on the DataLoader worker that
  decodes it. Its crops get the ids ``n * crops_per_image + i``.
* **the shuffle buffer** is tf.data's: it is filled with the first S crops, then step t outputs the crop
  in slot ``c_t`` and puts crop ``S + t`` in its place. The slot choices ``c_t`` come from
  ``(seed, rank, t // 16384)`` and not from the stream, so an X loader and a Y loader with the same
  seed shuffle in step: exactly the official shuffle of (x, y) pairs.
* **batch b** is steps ``b*B .. b*B+B-1``.

Resuming (``start_batch=k``): the slot contents after ``k*B`` steps are computed from the choices alone
(no image is decoded, about 0.1 s per million steps), only the reads that still have a crop in the
buffer are decoded again, and batches k, k+1, ... are bit-identical to those of an uninterrupted run
with the same files, seed, sizes, rank and world size, whatever the number of workers (workers only
decode reads; they are delivered in read order and the buffer runs in the main process).

Images are decoded with Pillow: gray, palette, RGBA (alpha dropped, as ``decode_image(channels=3)``),
CMYK and 16-bit images become 8-bit RGB (16-bit keeps its high byte, as TensorFlow's
``convert_image_dtype`` and Pillow's 48-bit PNG reader do). Output batches are float32 in [0, 1],
shape ``B x 3 x crop x crop``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ddnsr import imageio
from ddnsr.errors import DataError

__all__ = [
    "DataError",
    "DataWarning",
    "IMAGE_EXTENSIONS",
    "OFFICIAL_RECORDS",
    "SOURCES",
    "TARGETS",
    "CropLoader",
    "CropStream",
    "ImageSet",
    "ReadPlan",
    "UnpairedBatches",
    "buffer_choices",
    "buffer_state",
    "list_images",
    "load_records",
    "load_rgb8",
    "make_loader",
    "make_unpaired",
    "resolve_sources",
    "scan_images",
    "stream_keys",
    "to_rgb8",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SOURCES = ("track1", "track2")
TARGETS = ("div2k", "cleanup", "mixed", "canon")
# The official layout under a data root (the repository's records.json): NTIRE 2020 archive names,
# the cleaned-up and DPED canon folders named as in the original README.
OFFICIAL_RECORDS: dict[str, list[str]] = {
    "track1-source": ["datasets/Corrupted-tr-x"],
    "track1-target-div2k": ["datasets/train-target"],
    "track2-source": ["datasets/DPEDiphone-tr-x"],
    "track2-target-div2k": ["datasets/train-target"],
    "track2-target-cleanup": ["datasets/dped-clean"],
    "track2-target-mixed": ["datasets/train-target", "datasets/dped-clean"],
    "track2-target-canon": ["datasets/dped-canon"],
}
BUFFER_BLOCK = 1 << 14  # slot choices are drawn in blocks of this many steps, one generator per block

_TAG_PERM, _TAG_READ, _TAG_BUFFER = 1, 2, 3


class DataWarning(UserWarning):
    """A file that is skipped (unreadable, not an image, too small): one warning per file."""


# ---------------------------------------------------------------------------------------------------------
# records.json


def load_records(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a records.json: official data-set names -> list of folders (relative to a data root).

    Values may be one folder (a string) or a non-empty list of folders; both become lists.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: records file does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object of name -> folder(s)")
    records: dict[str, list[str]] = {}
    for key, value in raw.items():
        folders = [value] if isinstance(value, str) else value
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) and f for f in folders):
            raise DataError(f"{path}: '{key}' must be a folder name or a non-empty list of folder names")
        records[key] = list(folders)
    return records


def resolve_sources(records: dict[str, list[str]], data_root: str | os.PathLike, key: str) -> list[Path]:
    """The folders of data set ``key``, joined to ``data_root`` (absolute entries are kept as they are).

    Raises :class:`DataError` naming the key and the path when the key or a folder is missing.
    """
    if key not in records:
        known = ", ".join(sorted(records)) or "none"
        raise DataError(f"records: no data set '{key}' (known: {known})")
    root = Path(data_root)
    folders = [root / entry for entry in records[key]]
    for folder in folders:
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            hint = " (make it with `ddnsr clean-up`)" if key.endswith("-target-cleanup") else ""
            raise DataError(f"{key}: folder {folder} {what}{hint}")
    return folders


def stream_keys(source: str, target: str) -> tuple[str, str]:
    """Records keys of the X (real LR) and Y (clean HR) streams.

    X is ``<source>-source``, Y is ``<source>-target-<target>``.

    Every (source, target) pair is accepted here; the official records define only ``div2k`` for
    track1, so e.g. ``track1-target-cleanup`` fails later, in :func:`resolve_sources`, unless a
    records file defines it.
    """
    if source not in SOURCES:
        raise DataError(f"source '{source}': expected one of {', '.join(SOURCES)}")
    if target not in TARGETS:
        raise DataError(f"target '{target}': expected one of {', '.join(TARGETS)}")
    return f"{source}-source", f"{source}-target-{target}"


# ---------------------------------------------------------------------------------------------------------
# image files


def list_images(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files directly inside each folder (not recursive), with the rules of
    :func:`ddnsr.imageio.list_images`: by extension, any case, hidden and temporary names skipped.

    Folders keep their order; files are sorted by name inside each folder, so the list (and the
    stream made from it) does not depend on the file system's order.
    """
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: folder does not exist")
        files.extend(imageio.list_images(folder))
    return files


@dataclass(frozen=True)
class ImageSet:
    """The usable images of a data set: paths, their sizes ``(width, height)``, and what was skipped."""

    files: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]
    skipped: tuple[tuple[Path, str], ...] = ()

    def __len__(self) -> int:
        return len(self.files)


def _skip(path: Path, reason: str) -> None:
    warnings.warn(f"{path}: skipped: {reason}", DataWarning, stacklevel=3)


def scan_images(folders: Sequence[str | os.PathLike], min_size: int = 1, *, name: str = "") -> ImageSet:
    """Check every image's header (``Image.open`` and its size, no decoding) and keep the usable ones.

    Unreadable or non-image files and images smaller than ``min_size`` on a side are skipped with one
    :class:`DataWarning` each and listed in ``ImageSet.skipped``. A truncated body passes this check;
    it is caught (and skipped, with a warning) when the image is decoded during training.
    Raises :class:`DataError` when nothing usable is left.
    """
    files, sizes, skipped = [], [], []
    for path in list_images(folders):
        try:
            with Image.open(path) as img:
                size = img.size
        except Exception as exc:  # Pillow raises many kinds: UnidentifiedImageError, OSError, SyntaxError...
            reason = f"not a readable image ({type(exc).__name__}: {exc})"
            skipped.append((path, reason))
            _skip(path, reason)
            continue
        if min(size) < min_size:
            reason = f"{size[0]}x{size[1]} is smaller than the {min_size} px crop"
            skipped.append((path, reason))
            _skip(path, reason)
            continue
        files.append(path)
        sizes.append(size)
    where = name or ", ".join(str(f) for f in folders)
    if not files:
        raise DataError(f"{where}: no usable image ({len(skipped)} skipped; extensions {IMAGE_EXTENSIONS})")
    log.info("%s: %d usable images, %d skipped", where, len(files), len(skipped))
    return ImageSet(tuple(files), tuple(sizes), tuple(skipped))


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Pillow image of any mode -> ``H x W x 3`` uint8 RGB.

    16-bit and 32-bit integer gray keep the high byte of the 16-bit value (``v >> 8``); float gray is
    clipped to [0, 255]; alpha is dropped; palette, CMYK, YCbCr... are converted by Pillow.
    """
    if img.mode.startswith("I"):
        gray = (np.clip(np.asarray(img).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    elif img.mode == "F":
        gray = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
    else:
        if img.mode != "RGB":
            img = img.convert("RGB")
        return np.asarray(img, dtype=np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def load_rgb8(path: str | os.PathLike) -> np.ndarray:
    """Decode a whole image file -> ``H x W x 3`` uint8 RGB. Raises what Pillow raises on a bad file."""
    with Image.open(path) as img:
        img.load()
        return to_rgb8(img)


# ---------------------------------------------------------------------------------------------------------
# the read stream: image reads -> flip + crops


@dataclass(frozen=True)
class ReadPlan:
    """What read n of a rank does: its global index g, its file (index into the ImageSet), flip and corners.

    ``corners`` is ``crops_per_image x 2`` floats in [0, 1): (row, column) of each crop's top-left
    corner as a fraction of the free range ``(H - crop + 1, W - crop + 1)`` of the (flipped) image.
    """

    read: int
    global_read: int
    file_index: int
    flip: bool
    corners: np.ndarray


class CropStream(IterableDataset):
    """The official per-image stage: reads of the shuffled file list, one flip each, then crops.

    Iterating yields ``(n, crops)`` for the reads ``n`` of :meth:`reads`, ``crops`` being a uint8 tensor
    ``crops_per_image x 3 x crop x crop`` (uint8 keeps worker-to-main transfers and the shuffle buffer
    4x smaller; :class:`CropLoader` turns batches into float32 in [0, 1]). Inside DataLoader workers,
    worker w of W yields items ``w, w+W, ...`` of that sequence, so nothing is read twice and the
    DataLoader (which collects from its workers in turn) delivers the reads in order.

    The sequence of reads is ``head`` (explicit read numbers, used when resuming) followed by
    ``tail_start, tail_start+1, ...`` forever. Every read is a pure function of its number
    (see :meth:`plan`); a file that fails to decode is skipped with one warning and replaced by the
    next file of the permutation, so the read still gives its crops.
    """

    def __init__(
        self,
        images: ImageSet,
        crop: int,
        crops_per_image: int = 16,
        *,
        seed: int = 0,
        stream: int = 0,
        rank: int = 0,
        world_size: int = 1,
        reshuffle_each_pass: bool = False,
        head: Sequence[int] = (),
        tail_start: int = 0,
    ) -> None:
        super().__init__()
        _check_int("crop", crop, 1)
        _check_int("crops_per_image", crops_per_image, 1)
        _check_int("seed", seed, 0)
        _check_int("stream", stream, 0)
        _check_int("world_size", world_size, 1)
        _check_int("rank", rank, 0)
        if rank >= world_size:
            raise DataError(f"rank {rank}: must be below world_size {world_size}")
        small = [p for p, (w, h) in zip(images.files, images.sizes, strict=True) if min(w, h) < crop]
        if small:
            raise DataError(f"{small[0]}: smaller than the {crop} px crop (scan with min_size={crop})")
        self.images = images
        self.crop = crop
        self.crops_per_image = crops_per_image
        self.seed = seed
        self.stream = stream
        self.rank = rank
        self.world_size = world_size
        self.reshuffle_each_pass = reshuffle_each_pass
        self.head = tuple(int(n) for n in head)
        self.tail_start = int(tail_start)
        self._perm: tuple[int, np.ndarray] | None = None
        self._bad: set[int] = set()  # files found undecodable by this process (each warned once)

    # -- pure functions of the read number ---------------------------------------------------------------

    def permutation(self, pass_index: int) -> np.ndarray:
        """File order of one pass over the list (the same for every pass unless ``reshuffle_each_pass``)."""
        key = pass_index if self.reshuffle_each_pass else 0
        if self._perm is None or self._perm[0] != key:
            rng = np.random.default_rng([self.seed, self.stream, _TAG_PERM, key])
            self._perm = (key, rng.permutation(len(self.images)))
        return self._perm[1]

    def plan(self, n: int) -> ReadPlan:
        """The file, flip and crop corners of read ``n`` (no decoding)."""
        g = n * self.world_size + self.rank
        num = len(self.images)
        file_index = int(self.permutation(g // num)[g % num])
        rng = np.random.default_rng([self.seed, self.stream, _TAG_READ, g])
        flip = bool(rng.random() < 0.5)
        corners = rng.random((self.crops_per_image, 2))
        return ReadPlan(n, g, file_index, flip, corners)

    def cut(self, image: np.ndarray, flip: bool, corners: np.ndarray) -> np.ndarray:
        """``H x W x 3`` uint8 image -> flipped once -> ``crops_per_image x 3 x crop x crop`` uint8 crops."""
        if flip:
            image = image[:, ::-1]
        h, w = image.shape[:2]
        c = self.crop
        if h < c or w < c:
            raise ValueError(f"{w}x{h} is smaller than the {c} px crop")
        tops = np.floor(corners[:, 0] * (h - c + 1)).astype(np.int64)
        lefts = np.floor(corners[:, 1] * (w - c + 1)).astype(np.int64)
        crops = np.stack([image[t : t + c, x : x + c] for t, x in zip(tops, lefts, strict=True)])
        return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))

    def read(self, n: int) -> torch.Tensor:
        """Decode read ``n``'s image and cut its crops: ``crops_per_image x 3 x crop x crop`` uint8."""
        plan = self.plan(n)
        num = len(self.images)
        perm = self.permutation(plan.global_read // num)
        pos = plan.global_read % num
        for step in range(num):
            index = plan.file_index if step == 0 else int(perm[(pos + step) % num])
            if index in self._bad:
                continue
            path = self.images.files[index]
            try:
                return torch.from_numpy(self.cut(load_rgb8(path), plan.flip, plan.corners))
            except Exception as exc:  # a truncated or corrupt file: skip it, use the next file
                self._bad.add(index)
                _skip(path, f"cannot be decoded ({type(exc).__name__}: {exc})")
        raise DataError(f"{self.images.files[0].parent}: no image could be decoded")

    # -- iteration --------------------------------------------------------------------------------------

    def reads(self, worker: int = 0, num_workers: int = 1) -> Iterator[int]:
        """The read numbers that worker ``worker`` of ``num_workers`` produces, in order (infinite)."""
        i = worker
        while i < len(self.head):
            yield self.head[i]
            i += num_workers
        n = self.tail_start + (i - len(self.head))
        while True:
            yield n
            n += num_workers

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for n in self.reads(worker, num_workers):
            yield n, self.read(n)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}={value!r}: expected an integer >= {minimum}")


# ---------------------------------------------------------------------------------------------------------
# the shuffle buffer


def buffer_choices(seed: int, rank: int, size: int, block: int) -> np.ndarray:
    """Slot choices of steps ``block*BUFFER_BLOCK .. (block+1)*BUFFER_BLOCK - 1``: int64 in [0, size)."""
    rng = np.random.default_rng([seed, rank, _TAG_BUFFER, block])
    return rng.integers(0, size, size=BUFFER_BLOCK, dtype=np.int64)


def buffer_state(seed: int, rank: int, size: int, steps: int) -> np.ndarray:
    """Crop ids in the ``size`` slots after ``steps`` outputs (int64, shape ``(size,)``), without data.

    Slot j holds crop j until it is first chosen; after step t chose it, it holds crop ``size + t``.
    """
    last = np.full(size, -1, dtype=np.int64)
    for block in range(math.ceil(steps / BUFFER_BLOCK)):
        start = block * BUFFER_BLOCK
        choices = buffer_choices(seed, rank, size, block)[: steps - start]
        # the last step of this block that chose each slot: first occurrence in the reversed block
        slots, first = np.unique(choices[::-1], return_index=True)
        last[slots] = start + len(choices) - 1 - first
    return np.where(last >= 0, size + last, np.arange(size, dtype=np.int64))


# ---------------------------------------------------------------------------------------------------------
# the loader


def _safe_start_method() -> str | None:
    """``forkserver`` where the platform has it: workers forked from a process whose native libraries
    run threads (OpenVINO's, once ``ddnsr.Upscaler`` ran in it) can crash the parent; Python 3.14 makes
    it the default on Linux for the same reason. None elsewhere (the platform's default)."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None


class CropLoader(DataLoader):
    """A DataLoader of the official stream: it yields ``B x 3 x crop x crop`` float32 in [0, 1], forever.

    Its dataset is a :class:`CropStream` of image reads (decoded by the workers); the shuffle buffer
    and batching run in the main process (see the module docstring). Every ``iter()`` starts again at
    ``start_batch``.
    """

    def __init__(
        self,
        images: ImageSet,
        crop: int,
        batch_size: int = 16,
        crops_per_image: int = 16,
        shuffle_buffer: int = 1024,
        *,
        num_workers: int = 0,
        seed: int = 0,
        stream: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        reshuffle_each_pass: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        multiprocessing_context: str | None = None,
    ) -> None:
        _check_int("batch_size", batch_size, 1)
        _check_int("shuffle_buffer", shuffle_buffer, 1)
        _check_int("start_batch", start_batch, 0)
        _check_int("num_workers", num_workers, 0)
        _check_int("crops_per_image", crops_per_image, 1)
        _check_int("seed", seed, 0)
        _check_int("rank", rank, 0)
        steps = start_batch * batch_size
        slots = buffer_state(seed, rank, shuffle_buffer, steps)
        first_new = shuffle_buffer + steps  # id of the next crop to enter the buffer
        next_read = first_new // crops_per_image
        # reads that still have a crop in the buffer, to decode again
        head = [int(n) for n in np.unique(slots // crops_per_image) if n < next_read]
        dataset = CropStream(
            images, crop, crops_per_image, seed=seed, stream=stream, rank=rank, world_size=world_size,
            reshuffle_each_pass=reshuffle_each_pass, head=head,
            tail_start=next_read,
        )
        super().__init__(
            dataset, batch_size=None, num_workers=num_workers,
            prefetch_factor=prefetch_factor if num_workers else None,
            multiprocessing_context=(multiprocessing_context or _safe_start_method()) if num_workers else None,
        )
        self.crop = crop
        self.crop_batch_size = batch_size
        self.crops_per_image = crops_per_image
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank = rank
        self.start_batch = start_batch
        self.pin_batches = pin_memory
        self._slots = slots

    @property
    def images(self) -> ImageSet:
        """The usable images (with the list of skipped files)."""
        return self.dataset.images

    def __iter__(self) -> Iterator[torch.Tensor]:  # type: ignore[override]
        return self._batches()

    def _batches(self) -> Iterator[torch.Tensor]:
        size, cpi, bsz, c = self.shuffle_buffer, self.crops_per_image, self.crop_batch_size, self.crop
        step = self.start_batch * bsz
        next_id = size + step
        where = {int(cid): j for j, cid in enumerate(self._slots)}
        reads = super().__iter__()
        try:
            # numpy, not torch: single-threaded small copies (torch's intra-op threads make them slow)
            buf = np.empty((size, 3, c, c), dtype=np.uint8)
            pending: deque[tuple[int, np.ndarray]] = deque()  # (crop id, crop) waiting to enter the buffer
            while where:
                n, crops = next(reads)
                crops = crops.numpy()
                for i in range(cpi):
                    cid = n * cpi + i
                    if cid >= next_id:
                        pending.append((cid, crops[i]))
                    elif (j := where.pop(cid, None)) is not None:
                        buf[j] = crops[i]
            block, choices = -1, np.empty(0, dtype=np.int64)
            while True:
                batch = np.empty((bsz, 3, c, c), dtype=np.uint8)
                for i in range(bsz):
                    if step // BUFFER_BLOCK != block:
                        block = step // BUFFER_BLOCK
                        choices = buffer_choices(self.seed, self.rank, size, block)
                    j = int(choices[step - block * BUFFER_BLOCK])
                    batch[i] = buf[j]
                    if not pending:
                        n, crops = next(reads)
                        crops = crops.numpy()
                        pending.extend((n * cpi + k, crops[k]) for k in range(cpi))
                    cid, crop = pending.popleft()
                    if cid != next_id:  # cannot happen unless the read order is broken
                        raise RuntimeError(f"crop stream out of order: got crop {cid}, expected {next_id}")
                    buf[j] = crop
                    next_id += 1
                    step += 1
                out = torch.from_numpy(np.divide(batch, 255, dtype=np.float32))
                yield out.pin_memory() if self.pin_batches else out
        finally:
            shutdown = getattr(reads, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()


def make_loader(
    paths: Sequence[str | os.PathLike] | ImageSet,
    crop: int,
    batch_size: int = 16,
    crops_per_image: int = 16,
    shuffle_buffer: int = 1024,
    num_workers: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    *,
    start_batch: int = 0,
    stream: int = 0,
    reshuffle_each_pass: bool = False,
    pin_memory: bool = False,
    name: str = "",
) -> CropLoader:
    """A :class:`CropLoader` over the images of ``paths`` (folders, or an already scanned :class:`ImageSet`).

    Yields ``batch_size x 3 x crop x crop`` float32 in [0, 1] forever. ``start_batch=k`` resumes: its
    first batch is batch k of an uninterrupted loader with the same arguments. ``stream`` separates the
    file order and crops of loaders sharing a seed (X uses 0, Y uses 1); the shuffle-buffer choices
    depend on (seed, rank) only.
    """
    images = paths if isinstance(paths, ImageSet) else scan_images(paths, crop, name=name)
    return CropLoader(
        images, crop, batch_size, crops_per_image, shuffle_buffer, num_workers=num_workers, seed=seed,
        stream=stream, rank=rank, world_size=world_size, start_batch=start_batch,
        reshuffle_each_pass=reshuffle_each_pass, pin_memory=pin_memory,
    )


class UnpairedBatches:
    """Zips an X loader (real LR crops) and a Y loader (clean HR crops): ``(x, y)`` batches forever.

    With the two loaders built with the same seed, rank and crops per image (as :func:`make_unpaired`
    does) this is the official ``zip(X, Y).shuffle(1024).batch(16)``: crop i of X travels with crop i of
    Y through the same buffer slots.
    """

    def __init__(self, x_loader: CropLoader, y_loader: CropLoader) -> None:
        self.x_loader = x_loader
        self.y_loader = y_loader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return zip(self.x_loader, self.y_loader, strict=True)


def make_unpaired(
    records: dict[str, list[str]] | str | os.PathLike,
    data_root: str | os.PathLike,
    source: str,
    target: str,
    *,
    batch_size: int = 16,
    lr_crop: int = 32,
    scale: int = 4,
    crops_per_image: int = 16,
    shuffle_buffer: int = 1024,
    num_workers: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    start_batch: int = 0,
) -> UnpairedBatches:
    """The official training data of ``source`` (track1/track2) and ``target`` (div2k/cleanup/mixed/canon).

    X: ``<source>-source`` crops of ``lr_crop`` (32); Y: ``<source>-target-<target>`` crops of
    ``lr_crop * scale`` (128). ``num_workers`` is per loader.
    """
    recs = records if isinstance(records, dict) else load_records(records)
    x_key, y_key = stream_keys(source, target)
    common = dict(
        batch_size=batch_size, crops_per_image=crops_per_image, shuffle_buffer=shuffle_buffer,
        num_workers=num_workers, seed=seed, rank=rank, world_size=world_size, start_batch=start_batch,
    )
    x = make_loader(resolve_sources(recs, data_root, x_key), lr_crop, stream=0, name=x_key, **common)
    y = make_loader(resolve_sources(recs, data_root, y_key), lr_crop * scale, stream=1, name=y_key, **common)
    return UnpairedBatches(x, y)
