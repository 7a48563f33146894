"""Tests of ddnsr.training.data: records, image checks, conversions, the crop stream, resume and sharding."""

from __future__ import annotations

import io
import itertools
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ddnsr.training.data import (
    BUFFER_BLOCK,
    OFFICIAL_RECORDS,
    CropStream,
    DataError,
    DataWarning,
    ImageSet,
    buffer_choices,
    buffer_state,
    list_images,
    load_records,
    load_rgb8,
    make_loader,
    make_unpaired,
    resolve_sources,
    scan_images,
    stream_keys,
    to_rgb8,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DDNSR_SHARED", REPO.parent / "shared")) / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _folder(root: Path, n: int = 9, size: tuple[int, int] = (40, 30)) -> Path:
    """n noise PNGs of ``size`` (w, h) with slightly different heights."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(_noise(size[1] + i, size[0], seed=i)).save(root / f"img{i:02d}.png")
    return root


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (gray HxW or RGB HxWx3), written by hand (Pillow cannot write 48-bit RGB)."""
    h, w = arr.shape[:2]
    color = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _batches(loader, n: int) -> list[torch.Tensor]:
    return [b.clone() for b in itertools.islice(loader, n)]


# ---------------------------------------------------------------------------------------------------------
# records


def test_load_records_normalises_and_rejects(tmp_path):
    good = tmp_path / "records.json"
    good.write_text(json.dumps({"a": "x", "b": ["y", "z"]}))
    assert load_records(good) == {"a": ["x"], "b": ["y", "z"]}
    with pytest.raises(DataError, match="missing.json: records file does not exist"):
        load_records(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not a readable JSON"):
        load_records(bad)
    bad.write_text(json.dumps({"a": []}))
    with pytest.raises(DataError, match="'a' must be a folder name"):
        load_records(bad)
    bad.write_text(json.dumps(["a"]))
    with pytest.raises(DataError, match="expected a JSON object"):
        load_records(bad)


def test_resolve_sources_names_key_and_path(tmp_path):
    (tmp_path / "hr").mkdir()
    (tmp_path / "afile").write_text("x")
    records = {"y": ["hr"], "gone": ["nowhere"], "track2-target-cleanup": ["clean"], "file": ["afile"]}
    assert resolve_sources(records, tmp_path, "y") == [tmp_path / "hr"]
    with pytest.raises(DataError, match=r"no data set 'x' \(known: file, gone, track2-target-cleanup, y\)"):
        resolve_sources(records, tmp_path, "x")
    with pytest.raises(DataError, match=f"gone: folder {tmp_path / 'nowhere'} does not exist"):
        resolve_sources(records, tmp_path, "gone")
    with pytest.raises(DataError, match="ddnsr clean-up"):
        resolve_sources(records, tmp_path, "track2-target-cleanup")
    with pytest.raises(DataError, match="is not a folder"):
        resolve_sources(records, tmp_path, "file")
    # absolute entries are kept as they are
    assert resolve_sources({"abs": [str(tmp_path / "hr")]}, "/elsewhere", "abs") == [tmp_path / "hr"]


def test_stream_keys():
    assert stream_keys("track1", "div2k") == ("track1-source", "track1-target-div2k")
    assert stream_keys("track2", "mixed") == ("track2-source", "track2-target-mixed")
    with pytest.raises(DataError, match="source 'track3'"):
        stream_keys("track3", "div2k")
    with pytest.raises(DataError, match="target 'dslr'"):
        stream_keys("track2", "dslr")


def test_repository_records_keep_the_official_layout():
    records = load_records(REPO / "records.json")
    assert records == OFFICIAL_RECORDS
    assert set(records) == {
        "track1-source", "track1-target-div2k", "track2-source", "track2-target-div2k",
        "track2-target-cleanup", "track2-target-mixed", "track2-target-canon",
    }
    assert records["track1-source"] == ["datasets/Corrupted-tr-x"]
    assert records["track2-source"] == ["datasets/DPEDiphone-tr-x"]
    assert records["track2-target-mixed"] == records["track2-target-div2k"] + records["track2-target-cleanup"]
    assert all(f.startswith("datasets/") for folders in records.values() for f in folders)


@needs_shared
def test_shared_records_resolve():
    records = load_records(SHARED_DATA / "records.json")
    assert resolve_sources(records, SHARED_DATA, "track1-source") == [SHARED_DATA / "track1-train-source"]
    assert resolve_sources(records, SHARED_DATA, "track1-target-div2k") == [SHARED_DATA / "clean-hr"]
    assert resolve_sources(records, SHARED_DATA, "track2-source") == [SHARED_DATA / "track2-train-source"]
    with pytest.raises(DataError, match="track2-target-mixed: folder .*track2-target-cleanup does not exist"):
        resolve_sources(records, SHARED_DATA, "track2-target-mixed")


# ---------------------------------------------------------------------------------------------------------
# scanning and decoding


def test_scan_skips_each_bad_file_once(tmp_path):
    folder = _folder(tmp_path / "d", n=3)
    Image.fromarray(_noise(40, 40)).save(folder / "UPPER.PNG")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    Image.fromarray(_noise(10, 50)).save(folder / "small.png")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(DataWarning) as caught:
        images = scan_images([folder], 16)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert "empty.png: skipped: not a readable image" in messages[0]
    assert "small.png: skipped: 50x10 is smaller than the 16 px crop" in messages[1]
    assert "text.png: skipped: not a readable image" in messages[2]
    assert [p.name for p in images.files] == ["UPPER.PNG", "img00.png", "img01.png", "img02.png"]
    assert images.sizes[0] == (40, 40)
    assert len(images.skipped) == 3


def test_nothing_usable_is_an_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    Image.fromarray(_noise(8, 8)).save(folder / "tiny.png")
    with pytest.warns(DataWarning), pytest.raises(DataError, match="no usable image .2 skipped"):
        scan_images([folder], 16)
    with pytest.raises(DataError, match="folder does not exist"):
        list_images([tmp_path / "nothing"])
    with pytest.warns(DataWarning), pytest.raises(DataError, match="no usable image"):
        make_loader([folder], 16)


def test_mode_conversions(tmp_path):
    rgb = _noise(6, 7)
    gray = rgb[:, :, 0]
    assert np.array_equal(to_rgb8(Image.fromarray(gray)), np.repeat(gray[:, :, None], 3, 2))
    rgba = np.dstack([rgb, np.full((6, 7), 17, np.uint8)])
    assert np.array_equal(to_rgb8(Image.fromarray(rgba)), rgb)  # alpha dropped
    pal = Image.fromarray(rgb).quantize(8)
    assert np.array_equal(to_rgb8(pal), np.asarray(pal.convert("RGB")))
    assert to_rgb8(pal).shape == (6, 7, 3)
    la = Image.fromarray(np.dstack([gray, gray]), mode="LA")
    assert np.array_equal(to_rgb8(la), np.repeat(gray[:, :, None], 3, 2))
    # 16-bit gray and 16-bit RGB PNG files: the high byte of each sample
    g16 = np.random.default_rng(1).integers(0, 65536, (6, 7)).astype(np.uint16)
    c16 = np.random.default_rng(2).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    (tmp_path / "g16.png").write_bytes(_png16(g16))
    (tmp_path / "c16.png").write_bytes(_png16(c16))
    high = (g16 >> 8).astype(np.uint8)
    assert np.array_equal(load_rgb8(tmp_path / "g16.png"), np.repeat(high[:, :, None], 3, 2))
    assert np.array_equal(load_rgb8(tmp_path / "c16.png"), (c16 >> 8).astype(np.uint8))
    # float gray: clipped to [0, 255]
    f = Image.fromarray(np.array([[-3.0, 12.4, 300.0]], np.float32), mode="F")
    assert to_rgb8(f)[0, :, 0].tolist() == [0, 12, 255]
    # through the loader: all become 3-channel float in [0, 1]
    folder = tmp_path / "modes"
    folder.mkdir()
    Image.fromarray(_noise(20, 20)[:, :, 0]).save(folder / "gray.png")
    Image.fromarray(_noise(20, 20)).quantize(16).save(folder / "pal.png")
    Image.fromarray(np.dstack([_noise(20, 20), _noise(20, 20)[:, :, :1]])).save(folder / "rgba.png")
    (folder / "g16.png").write_bytes(_png16(np.full((20, 20), 65535, np.uint16)))
    batch = next(iter(make_loader([folder], 16, batch_size=8, crops_per_image=2, shuffle_buffer=4)))
    assert batch.shape == (8, 3, 16, 16) and batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0


def test_truncated_png_is_skipped_while_training(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    for i, colour in enumerate(colours):
        Image.new("RGB", (24, 24), colour).save(folder / f"c{i}.png")
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, "PNG")
    (folder / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    images = scan_images([folder], 16)  # the header is intact: it passes the cheap check
    assert len(images) == 4
    stream = CropStream(images, 16, 4, seed=1)
    bad = images.files.index(folder / "cut.png")
    n = next(n for n in range(40) if stream.plan(n).file_index == bad)
    with pytest.warns(DataWarning, match="cut.png: skipped: cannot be decoded"):
        crops = stream.read(n)
    assert crops.shape == (4, 3, 16, 16)
    assert tuple(crops[0, :, 0, 0].tolist()) in colours  # taken from the next file of the permutation
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file is known bad now: no second warning, no crash
        for m in range(n, n + 12):
            assert tuple(stream.read(m)[0, :, 0, 0].tolist()) in colours


def test_bad_settings_are_one_line_errors(tmp_path):
    folder = _folder(tmp_path / "d", n=2)
    for kwargs, setting in [
        ({"batch_size": 0}, "batch_size=0"),
        ({"shuffle_buffer": 0}, "shuffle_buffer=0"),
        ({"seed": -1}, "seed=-1"),
        ({"rank": 2, "world_size": 2}, "rank 2"),
        ({"crops_per_image": 0}, "crops_per_image=0"),
    ]:
        with pytest.raises(DataError, match=setting):
            make_loader([folder], 16, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# the stream


def test_one_flip_per_read_applies_to_all_its_crops(tmp_path):
    folder = tmp_path / "ramp"
    folder.mkdir()
    ramp = np.tile(np.arange(0, 240, 4, dtype=np.uint8)[None, :, None], (40, 1, 3))  # increases left to right
    for i in range(3):
        Image.fromarray(ramp).save(folder / f"r{i}.png")
    stream = CropStream(scan_images([folder], 16), 16, 16, seed=5)
    flips = []
    for n in range(24):
        crops = stream.read(n).numpy().astype(int)
        direction = np.sign(crops[:, 0, 0, -1] - crops[:, 0, 0, 0])  # per crop: right minus left
        assert len(set(direction.tolist())) == 1, "every crop of one read has the same orientation"
        assert (direction[0] < 0) == stream.plan(n).flip
        flips.append(stream.plan(n).flip)
    assert any(flips) and not all(flips)


def test_crops_cut_where_planned(tmp_path):
    stream = CropStream(ImageSet((tmp_path / "x.png",), ((50, 40),)), 16, 16, seed=0)
    image = _noise(40, 50)
    corners = np.array([[0.0, 0.0], [0.999999, 0.999999], [0.5, 0.25]] + [[0.1, 0.9]] * 13)
    crops = stream.cut(image, False, corners)
    assert crops.shape == (16, 3, 16, 16) and crops.dtype == np.uint8
    assert np.array_equal(crops[0], image[:16, :16].transpose(2, 0, 1))
    assert np.array_equal(crops[1], image[24:, 34:].transpose(2, 0, 1))  # the last possible corner
    assert np.array_equal(crops[2], image[12:28, 8:24].transpose(2, 0, 1))
    flipped = stream.cut(image, True, corners)
    assert np.array_equal(flipped[0], image[:16, ::-1][:, :16].transpose(2, 0, 1))


def test_file_order_is_one_shuffle_repeated(tmp_path):
    images = scan_images([_folder(tmp_path / "d", n=7)], 16)
    stream = CropStream(images, 16, 2, seed=3)
    order = [stream.plan(n).file_index for n in range(21)]
    assert sorted(order[:7]) == list(range(7))
    assert order[:7] == order[7:14] == order[14:]  # official: shuffled once, repeated
    assert order[:7] != list(range(7))
    again = CropStream(images, 16, 2, seed=3, reshuffle_each_pass=True)
    passes = [[again.plan(n).file_index for n in range(7 * p, 7 * p + 7)] for p in range(3)]
    assert all(sorted(p) == list(range(7)) for p in passes) and passes[0] != passes[1]


def test_worker_sharding_reads_each_image_once_in_order(tmp_path):
    images = scan_images([_folder(tmp_path / "d", n=5)], 16)
    stream = CropStream(images, 16, 2, seed=0, head=[2, 5, 9], tail_start=11)
    w0 = list(itertools.islice(stream.reads(0, 2), 5))
    w1 = list(itertools.islice(stream.reads(1, 2), 5))
    assert w0 == [2, 9, 12, 14, 16] and w1 == [5, 11, 13, 15, 17]
    loader = DataLoader(CropStream(images, 16, 2, seed=0), batch_size=None, num_workers=2,
                        multiprocessing_context="forkserver")  # as CropLoader (a forked worker can crash)
    got = [(n, crops.clone()) for n, crops in itertools.islice(loader, 8)]
    assert [n for n, _ in got] == list(range(8))  # each read once, in order, from alternating workers
    single = CropStream(images, 16, 2, seed=0)
    assert all(torch.equal(crops, single.read(n)) for n, crops in got)


def test_rank_sharding_splits_each_pass(tmp_path):
    images = scan_images([_folder(tmp_path / "d", n=6)], 16)
    ranks = [CropStream(images, 16, 2, seed=4, rank=r, world_size=2) for r in range(2)]
    files = [[s.plan(n).file_index for n in range(3)] for s in ranks]
    assert sorted(files[0] + files[1]) == list(range(6))
    batches = [_batches(make_loader(images, 16, 2, 2, 4, seed=4, rank=r, world_size=2), 2) for r in range(2)]
    assert not torch.equal(batches[0][0], batches[1][0])


def test_loader_shapes_and_range(tmp_path):
    loader = make_loader([_folder(tmp_path / "d")], 24, batch_size=5, crops_per_image=3, shuffle_buffer=7)
    for batch in _batches(loader, 4):
        assert batch.shape == (5, 3, 24, 24) and batch.dtype == torch.float32
        assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
        assert torch.equal(batch, torch.round(batch * 255) / 255)  # 8-bit values


def test_buffer_state_matches_a_step_by_step_buffer():
    size, steps = 64, BUFFER_BLOCK + 777  # crosses a block of slot choices
    slots = np.arange(size)
    choices = np.concatenate([buffer_choices(9, 1, size, b) for b in range(2)])
    for t in range(steps):
        slots[choices[t]] = size + t
        if t in (0, 5000):
            assert np.array_equal(buffer_state(9, 1, size, t + 1), slots)
    assert np.array_equal(buffer_state(9, 1, size, steps), slots)
    assert np.array_equal(buffer_state(9, 1, size, 0), np.arange(size))


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_gives_the_uninterrupted_batches(tmp_path, workers):
    folder = _folder(tmp_path / "d", n=9)
    kwargs = dict(batch_size=4, crops_per_image=4, shuffle_buffer=10, seed=7)
    full = _batches(make_loader([folder], 16, **kwargs), 30)
    for k in (1, 13, 22):
        resumed = _batches(make_loader([folder], 16, num_workers=workers, start_batch=k, **kwargs), 8)
        assert all(torch.equal(a, b) for a, b in zip(full[k : k + 8], resumed, strict=True)), k
    if workers:
        parallel = _batches(make_loader([folder], 16, num_workers=workers, **kwargs), 30)
        assert all(torch.equal(a, b) for a, b in zip(full, parallel, strict=True))  # workers change nothing
    other = _batches(make_loader([folder], 16, **{**kwargs, "seed": 8}), 2)
    assert not torch.equal(other[0], full[0])


def test_shuffle_mixes_reads(tmp_path):
    folder = tmp_path / "solid"
    folder.mkdir()
    for i in range(12):
        Image.new("RGB", (20, 20), (i * 20, 0, 0)).save(folder / f"s{i:02d}.png")
    unshuffled = next(iter(make_loader([folder], 16, 8, 8, 1)))
    assert len(set(unshuffled[:, 0, 0, 0].tolist())) == 1  # buffer 1: the 8 crops of one read
    shuffled = next(iter(make_loader([folder], 16, 8, 8, 64)))
    assert len(set(shuffled[:, 0, 0, 0].tolist())) > 2


# ---------------------------------------------------------------------------------------------------------
# the shared data


@needs_shared
def test_track1_official_batches_from_shared_data():
    records = load_records(SHARED_DATA / "records.json")
    pairs = make_unpaired(records, SHARED_DATA, "track1", "div2k", seed=1)  # official sizes: 16, 16, 1024
    x, y = next(iter(pairs))
    assert x.shape == (16, 3, 32, 32) and y.shape == (16, 3, 128, 128)
    assert x.dtype == y.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert len(pairs.x_loader.images) == 70 and len(pairs.y_loader.images) == 134


@needs_shared
def test_track2_source_from_shared_data():
    records = load_records(SHARED_DATA / "records.json")
    folders = resolve_sources(records, SHARED_DATA, stream_keys("track2", "div2k")[0])
    batches = _batches(make_loader(folders, 32, shuffle_buffer=64, seed=2, num_workers=2), 3)
    assert all(b.shape == (16, 3, 32, 32) for b in batches)
    resumed = _batches(make_loader(folders, 32, shuffle_buffer=64, seed=2, start_batch=2), 1)
    assert torch.equal(resumed[0], batches[2])
