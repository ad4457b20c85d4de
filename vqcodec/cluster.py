"""Bulk coding on a Dask cluster: compress_many and decompress_many with the coding spread over a
cluster's workers, for collections larger than one machine codes in good time.

    from dask.distributed import Client
    from vqcodec.cluster import compress_on

    client = Client("tcp://scheduler:8786")      # a running cluster; Client(n_workers=2) starts one here
    results = compress_on(client, ["photos/"], "photos-vqc/", max_bytes=5000)
    print([(r.source, r.error) for r in results if r.status == "failed"])

This process plans the jobs exactly as compress_many does, reads every input and writes every output;
workers receive bytes and return bytes, so they need vqcodec (the same version: the shipped models come
with it) but no shared filesystem. Each output is written atomically as soon as its result arrives: an
interrupted run leaves whole files only, and the same call with skip_existing=True does the rest. A file
that fails is a failed Result and the others go on. The bytes are those compress_many writes: the encoder
is deterministic for a model, and Dask's workers run torch on one thread per task (give a worker as many
threads as it has cores). Dask is an optional extra: pip install "vqcodec[cluster]".
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Iterable

from .batch import VQC_SUFFIX, Job, Result, plan, triage
from .bitstream import DEFAULT_MAX_PIXELS
from .images import IMAGE_SUFFIXES
from .output import OutputExists, image_format, write_atomically

IN_FLIGHT_PER_THREAD = 4   # tasks sent ahead per worker thread: enough to keep workers busy, few inputs in memory


def encode(data: bytes, name: str, options: dict) -> tuple[bytes, int]:
    """On a worker: an image file's bytes -> the .vqc bytes and the picture's pixel count."""
    from .codec import compress
    from .images import open_image, to_rgb

    rgb = to_rgb(open_image(io.BytesIO(data), name))
    return compress(rgb, **options), rgb.shape[0] * rgb.shape[1]


def decode(data: bytes, name: str, options: dict) -> tuple[bytes, int]:
    """On a worker: .vqc bytes -> the picture as an image file in options["format"], and its pixel count."""
    from .codec import decompress

    image = decompress(data, options["model"], max_pixels=options["max_pixels"])
    out = io.BytesIO()
    image.save(out, format=options["format"])
    return out.getvalue(), image.width * image.height


def _submit_all(client, task: Callable, jobs: list[Job], options: dict, overwrite: bool, skip_existing: bool,
                progress: bool) -> list[Result]:
    """Every job not settled beforehand as a task on the cluster, a few per worker thread at a time (so
    memory stays bounded), each written here as soon as it finishes."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    results, todo = triage(jobs, overwrite, skip_existing)
    waiting, running = iter(todo), {}
    finished = as_completed()

    def submit_next() -> None:
        for k in waiting:
            try:
                data = jobs[k].source.read_bytes()
            except OSError as e:
                results[k] = Result(jobs[k].source, jobs[k].target, "failed", error=f"{type(e).__name__}: {e}")
                bar.update(1)
                continue
            future = client.submit(task, data, str(jobs[k].source), options, pure=False)
            running[future] = k
            finished.add(future)
            return

    with tqdm(total=len(jobs), initial=len(results), desc="files", unit="file", disable=not progress) as bar:
        for _ in range(IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))):
            submit_next()
        for future in finished:
            k = running.pop(future)
            results[k] = _write(jobs[k], future, overwrite)
            bar.update(1)
            submit_next()
    return [results[k] for k in range(len(jobs))]


def _write(job: Job, future, overwrite: bool) -> Result:
    try:
        data, pixels = future.result()
    except Exception as e:  # the task's own error, or a worker lost too often (KilledWorker)
        return Result(job.source, job.target, "failed", error=f"{type(e).__name__}: {e}")
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(job.target, lambda tmp: Path(tmp).write_bytes(data), replace=overwrite)
    except OutputExists:
        return Result(job.source, job.target, "failed",
                      error="the output appeared while this run worked (another run?): --overwrite replaces it")
    except OSError as e:
        return Result(job.source, job.target, "failed", error=f"{type(e).__name__}: {e}")
    return Result(job.source, job.target, "written", source_bytes=job.source.stat().st_size,
                  target_bytes=len(data), pixels=pixels)


def compress_on(client, inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, quality: int | None = None,
                model: str | None = None, rd_lambda: float | None = None, max_bytes: int | None = None,
                target_bpp: float | None = None, overwrite: bool = False, skip_existing: bool = False,
                progress: bool = False) -> list[Result]:
    """compress_many on a dask.distributed Client's workers (model: a shipped model's name, or a folder
    every worker can read)."""
    from .defaults import DEFAULT_RD_LAMBDA

    options = {"quality": quality, "model": model, "rd_lambda": DEFAULT_RD_LAMBDA if rd_lambda is None else rd_lambda,
               "max_bytes": max_bytes, "target_bpp": target_bpp}
    return _submit_all(client, encode, plan(inputs, out_dir, IMAGE_SUFFIXES, VQC_SUFFIX), options, overwrite,
                       skip_existing, progress)


def decompress_on(client, inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, image_suffix: str = ".png",
                  model: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS, overwrite: bool = False,
                  skip_existing: bool = False, progress: bool = False) -> list[Result]:
    """decompress_many on a dask.distributed Client's workers."""
    options = {"model": model, "max_pixels": max_pixels, "format": image_format(f"x{image_suffix}")}
    return _submit_all(client, decode, plan(inputs, out_dir, {VQC_SUFFIX}, image_suffix), options, overwrite,
                       skip_existing, progress)
