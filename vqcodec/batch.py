"""Many files at once: compress or decompress files and folders into an output folder, on worker
processes that share the machine's cores without oversubscribing them.

Each worker loads the model once and runs torch with cores // jobs threads: two 2-thread processes on
two cores slow a decode about threefold. Every output is written atomically; a file that fails is
reported and the others go on.
"""
from __future__ import annotations

import errno
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .bitstream import DEFAULT_MAX_PIXELS
from .images import IMAGE_SUFFIXES, PILLOW_LIMIT
from .output import OutputExists, same_file, save_image, write_atomically

VQC_SUFFIX = ".vqc"
DISK_FULL = "the disk is full"


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Result:
    source: Path
    target: Path
    status: str            # "written", "skipped" (target existed) or "failed"
    error: str = ""
    source_bytes: int = 0
    target_bytes: int = 0
    pixels: int = 0


def plan(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, suffixes: set[str],
         target_suffix: str) -> list[Job]:
    """One job per input file; a folder contributes the files under it with those suffixes, keeping
    their paths relative to it. Refuses two inputs that would write the same output."""
    out_dir = Path(out_dir)
    jobs: list[Job] = []
    for given in map(Path, inputs):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            jobs += [Job(p, (out_dir / p.relative_to(given)).with_suffix(target_suffix)) for p in files]
        else:
            jobs.append(Job(given, (out_dir / given.name).with_suffix(target_suffix)))
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target in seen:
            raise ValueError(f"{seen[job.target]} and {job.source} would both be written to {job.target}")
        seen[job.target] = job.source
    return jobs


_worker: dict = {}


def _start_worker(threads: int, options: dict) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker.update(options)


def _exit_with(parent: int) -> None:
    """A pool's worker ends within a second of its parent's death (kill -9 included) instead of going on
    writing into the folder: the parent is polled, since nothing tells a spawned worker otherwise."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _start_pool_worker(parent: int, start: Callable, threads: int, options: dict) -> None:
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    start(threads, options)


def _compress_one(job: Job) -> Result:
    from .codec import compress
    from .images import open_image, to_rgb

    rgb = to_rgb(open_image(job.source, max_pixels=_worker["max_pixels"]))
    data = compress(rgb, _worker["quality"], _worker["model"], _worker["device"], rd_lambda=_worker["rd_lambda"],
                    max_bytes=_worker["max_bytes"], target_bpp=_worker["target_bpp"])
    job.target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(job.target, lambda tmp: Path(tmp).write_bytes(data), replace=_worker["overwrite"])
    return Result(job.source, job.target, "written", source_bytes=job.source.stat().st_size,
                  target_bytes=len(data), pixels=rgb.shape[0] * rgb.shape[1])


def _decompress_one(job: Job) -> Result:
    from .codec import decompress

    data = job.source.read_bytes()
    image = decompress(data, _worker["model"], _worker["device"], max_pixels=_worker["max_pixels"])
    job.target.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, job.target, replace=_worker["overwrite"])
    return Result(job.source, job.target, "written", source_bytes=len(data),
                  target_bytes=job.target.stat().st_size, pixels=image.width * image.height)


def _run_one(task: tuple[Callable[[Job], Result], Job]) -> Result:
    work, job = task
    try:
        return work(job)
    except OutputExists:
        return Result(job.source, job.target, "failed",
                      error="the output appeared while this run worked (another run?): --overwrite replaces it")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            return Result(job.source, job.target, "failed", error=f"{DISK_FULL} ({e.filename})")
        return Result(job.source, job.target, "failed", error=f"{type(e).__name__}: {e}")
    except Exception as e:  # reported per file; the batch goes on
        return Result(job.source, job.target, "failed", error=f"{type(e).__name__}: {e}")


def process_map(work: Callable, items: list, jobs: int, start: Callable, options: dict) -> Iterator:
    """work(item) for every item, in order, on `jobs` worker processes (in this process for one), each
    started by start(threads, options) with cores // jobs torch threads."""
    cores = os.cpu_count() or 1
    if jobs <= 1:
        start(cores, options)
        yield from map(work, items)
        return
    context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive fork
    pool = ProcessPoolExecutor(jobs, context, _start_pool_worker, (os.getpid(), start, max(1, cores // jobs), options))
    try:
        yield from pool.map(work, items)
    finally:  # also when the caller stops early: what has not started is dropped, not waited for
        pool.shutdown(wait=True, cancel_futures=True)


def triage(jobs: list[Job], overwrite: bool, skip_existing: bool) -> tuple[dict[int, Result], list[int]]:
    """Before any work: the results already known (an output that is its input, or exists) by job
    number, and the numbers of the jobs to do."""
    if overwrite and skip_existing:
        raise ValueError("choose overwrite or skip_existing, not both")
    results: dict[int, Result] = {}
    todo = []
    for k, job in enumerate(jobs):
        if same_file(job.source, job.target):
            results[k] = Result(job.source, job.target, "failed", error="the output is the input file")
        elif job.target.exists() and not overwrite:
            results[k] = Result(job.source, job.target, "skipped" if skip_existing else "failed",
                                error="" if skip_existing else "the output exists: --overwrite replaces it, "
                                                               "--skip-existing leaves it")
        else:
            todo.append(k)
    return results, todo


def run(work: Callable[[Job], Result], jobs: list[Job], options: dict, workers: int | None,
        overwrite: bool, skip_existing: bool, progress: bool) -> list[Result]:
    """Do every job on `workers` processes (default: the cores); results in the jobs' order."""
    from tqdm import tqdm

    options = {**options, "overwrite": overwrite}  # checked again when each file is written
    results, todo = triage(jobs, overwrite, skip_existing)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    with tqdm(total=len(jobs), initial=len(results), desc="files", unit="file", disable=not progress) as bar:
        outcomes = process_map(_run_one, [(work, jobs[k]) for k in todo], workers, _start_worker, options)
        try:
            for k, result in zip(todo, outcomes):
                results[k] = result
                bar.update(1)
                if result.error.startswith(DISK_FULL):  # every later file would fail the same way
                    break
        finally:
            outcomes.close()
    for k in todo:
        results.setdefault(k, Result(jobs[k].source, jobs[k].target, "failed",
                                     error="not written: the run stopped when the disk was full"))
    return [results[k] for k in range(len(jobs))]


def compress_many(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, quality: int | None = None,
                  model: str | None = None, device: str = "cpu", rd_lambda: float | None = None,
                  jobs: int | None = None, overwrite: bool = False, skip_existing: bool = False,
                  progress: bool = False, max_bytes: int | None = None, target_bpp: float | None = None,
                  max_pixels: int | None | str = PILLOW_LIMIT) -> list[Result]:
    """Compress image files (and the images under folders) into out_dir as .vqc files, keeping paths
    relative to each folder. jobs: worker processes (default: the cores). A target that exists is a
    failure unless overwrite or skip_existing is set. max_bytes / target_bpp: each file the best that fits
    (codec.compress); max_pixels: larger pictures fail (images.open_image). Returns one Result per file; nothing raises for a single bad file."""
    from .defaults import DEFAULT_RD_LAMBDA

    options = {"quality": quality, "model": model, "device": device,
               "rd_lambda": DEFAULT_RD_LAMBDA if rd_lambda is None else rd_lambda,
               "max_bytes": max_bytes, "target_bpp": target_bpp, "max_pixels": max_pixels}
    return run(_compress_one, plan(inputs, out_dir, IMAGE_SUFFIXES, VQC_SUFFIX), options, jobs,
               overwrite, skip_existing, progress)


def decompress_many(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, image_suffix: str = ".png",
                    model: str | None = None, device: str = "cpu", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                    jobs: int | None = None, overwrite: bool = False, skip_existing: bool = False,
                    progress: bool = False) -> list[Result]:
    """Decompress .vqc files (and those under folders) into out_dir as images in the format
    image_suffix names; otherwise as compress_many."""
    options = {"model": model, "device": device, "max_pixels": max_pixels}
    return run(_decompress_one, plan(inputs, out_dir, {VQC_SUFFIX}, image_suffix), options, jobs,
               overwrite, skip_existing, progress)
