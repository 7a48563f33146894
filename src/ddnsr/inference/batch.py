"""Planning a batch: inputs (files and folders) -> jobs (source, destination), the way ``ddnsr upscale``
and ``ddnsr degrade`` name their outputs, and the page names its downloads.

Rules: a folder contributes its image files (and, when ``video_ext`` is given, its video files);
``recursive`` mirrors sub-folders under the output folder; an input given twice is taken once; an output
that would replace an input, or that two inputs would share, fails that input (one line in
:attr:`Plan.failures`); files inside the output folders are not inputs (a rerun would take them); an
output folder that is also a folder input is refused (:class:`~ddnsr.errors.SettingError` naming the
setting ``output_dir`` or ``pairs_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ddnsr.imageio as dio
from ddnsr.errors import SettingError

__all__ = ["BatchJob", "Plan", "output_name", "plan_batch", "take_shard", "unique_name"]


@dataclass
class BatchJob:
    """One input's work: read ``source``, write ``dest`` (and ``pair``, degrade's cropped HR copy)."""

    source: Path
    dest: Path
    key: str  # the input's name relative to its folder input (POSIX): seeds degrade's reference choice
    pair: Path | None = None
    video: bool = False  # a video file (ddnsr.inference.video)


@dataclass
class Plan:
    jobs: list[BatchJob] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line each: "<path>: <reason>"


def output_name(stem: str, suffix: str, ext: str) -> str:
    """The file name of an output: ``<stem><suffix>.<ext>`` (``ext`` without its dot)."""
    return f"{stem}{suffix}.{ext.lstrip('.')}"


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``<stem>-2<suffix>``, ``-3``... when already in ``used``; the result is added to ``used``."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}{suffix}"
    used.add(candidate)
    return candidate


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def check_output_folders(inputs: list[str], out_dir: Path, pairs_dir: Path | None) -> None:
    """Refuse output folders that cannot be used with these inputs (SettingError naming the setting).

    An output folder that is also a folder input: its outputs would be read back as inputs by the next
    run (``a_x4_x4.png``). ``pairs_dir`` must differ from ``output_dir`` (each HR copy would replace the
    LR of the same name). An existing path that is not a folder is refused too.
    """
    for name, folder in (("output_dir", out_dir), ("pairs_dir", pairs_dir)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise SettingError(f"{name} {folder}: exists and is not a folder").named(name)
    if pairs_dir is not None and pairs_dir.resolve() == out_dir.resolve():
        raise SettingError(f"pairs_dir {pairs_dir} is the output folder: each HR copy would replace its LR; "
                           "choose another folder").named("pairs_dir")
    for item in inputs:
        root = Path(item)
        for name, folder in (("output_dir", out_dir), ("pairs_dir", pairs_dir)):
            if folder is not None and root.is_dir() and folder.resolve() == root.resolve():
                raise SettingError(f"{name} {folder} is also an input folder: the next run would read its "
                                   "outputs as inputs; choose another output folder").named(name)


def _list_inputs(inputs: list[str], out_dir: Path, pairs_dir: Path | None, recursive: bool,
                 video_ext: str | None, plan: Plan) -> list[tuple[Path, Path]]:
    """(file, output path relative to the output folder without extension) of every input, once each."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        root = Path(item)
        try:
            files = dio.list_images([root], recursive=recursive)
            if video_ext and root.is_dir():
                files = _with_videos(root, files, recursive)
        except dio.ImageError as exc:
            plan.failures.append(str(exc))
            continue
        except OSError as exc:
            plan.failures.append(f"{root}: cannot list: {exc.strerror or exc}")
            continue
        if root.is_dir():
            own = [d for d in (out_dir, pairs_dir) if d is not None and d.resolve() != root.resolve()]
            files = [f for f in files if not any(_inside(f, d) for d in own)]
            if not files:
                plan.failures.append(f"{root}: no image files ({', '.join(dio.IMAGE_EXTENSIONS)})")
            found.extend((f, f.relative_to(root).with_suffix("")) for f in files)
        else:
            found.extend((f, Path(f.stem)) for f in files)
    return list({f.resolve(): (f, rel) for f, rel in reversed(found)}.values())[::-1]  # an input given twice


def _collision(targets: tuple[Path | None, ...], inputs: set[Path], taken: dict[Path, Path]) -> str | None:
    for target in targets:
        if target is None:
            continue
        resolved = target.resolve()
        if resolved in inputs:
            return (f"output {target} would replace an input file; refused (choose another output folder, suffix "
                    "or extension)")
        if resolved in taken:
            return f"output {target} is also the output of {taken[resolved]}; skipped (rename one of them)"
    return None


def plan_batch(inputs: list[str], out_dir: Path, *, recursive: bool, ext: str, suffix: str,
               pairs_dir: Path | None = None, video_ext: str | None = None) -> Plan:
    """Inputs -> jobs (source, destination), with the inputs that fail already here (see the module)."""
    check_output_folders(inputs, out_dir, pairs_dir)
    plan = Plan()
    found = _list_inputs(inputs, out_dir, pairs_dir, recursive, video_ext, plan)
    inputs_resolved = {f.resolve() for f, _ in found}
    taken: dict[Path, Path] = {}
    for source, rel in found:
        video = bool(video_ext) and _is_video(source)
        name = output_name(rel.name, suffix, video_ext if video and video_ext else ext)
        dest = out_dir / rel.parent / name
        pair = None if pairs_dir is None else pairs_dir / rel.parent / name
        problem = _collision((dest, pair), inputs_resolved, taken)
        if problem:
            plan.failures.append(f"{source}: {problem}")
            continue
        for target in (dest, pair):
            if target is not None:
                taken[target.resolve()] = source
        plan.jobs.append(BatchJob(source, dest, rel.as_posix(), pair, video))
    return plan


def take_shard(plan: Plan, shard: tuple[int, int] | None) -> Plan:
    """Keep the K-th of N parts of the jobs (``shard`` = (K, N)): every N-th job by sorted output path, so
    that N machines given the same inputs share them out without overlap and without talking to each other."""
    if shard is None:
        return plan
    k, n = shard
    jobs = sorted(plan.jobs, key=lambda job: job.dest.as_posix())
    plan.jobs = [job for i, job in enumerate(jobs) if i % n == k - 1]
    return plan


def _is_video(path: Path) -> bool:
    from ddnsr.imageio.video import is_video

    return is_video(path)


def _with_videos(root: Path, files: list[Path], recursive: bool) -> list[Path]:
    """A folder's image files and its video files, sorted by path."""
    from ddnsr.imageio.video import list_videos

    return sorted([*files, *list_videos(root, recursive)], key=lambda f: f.relative_to(root).parts)
