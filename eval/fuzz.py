"""The long fuzzing run: structure-aware mutations of valid .vqc files (vqcodec.fuzz) through
describe() and decompress(), with the outcome classes, the slowest input and the peak RSS written to
eval/results/fuzz.md; any input that ends outside the documented errors is saved for a test. Also times
the hostile headers of the decoder's limits (what a refusal costs) with the shipped model.

    python eval/fuzz.py --inputs 1000000 --out eval/results
"""
from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import torch

import vqcodec
from vqcodec import bitstream
from vqcodec.bitstream import Coder, FormatError, Header
from vqcodec.fuzz import FUZZ_MAX_PIXELS, FUZZ_PRIOR, FUZZ_TOKENIZER, FuzzReport, fuzz, fuzz_model


def peak_rss_mib() -> float:
    """Of this process and of the largest of its finished workers."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def hostile_headers() -> list[tuple[str, str, float]]:
    """(file, outcome, seconds) for the headers the decoder's limits exist for, with the shipped model."""
    model = vqcodec.load_model()
    rows = []
    cases = [("65536² uniform, empty payload", 65536, 65536, Coder.UNIFORM, b"", "default"),
             ("65536² uniform, empty payload", 65536, 65536, Coder.UNIFORM, b"", None),
             ("4096² uniform, empty payload", 4096, 4096, Coder.UNIFORM, b"", "default"),
             ("65536² prior, empty payload", 65536, 65536, Coder.PRIOR, b"", "default"),
             ("65536² prior, empty payload", 65536, 65536, Coder.PRIOR, b"", None),
             ("4096² prior, empty payload", 4096, 4096, Coder.PRIOR, b"", "default"),
             ("4096² prior, 1 KB random payload", 4096, 4096, Coder.PRIOR, bytes(range(256)) * 4, "default")]
    for name, width, height, coder, payload, limit in cases:
        f = model.downsample
        data = bitstream.pack(Header(width, height, model.model_id, 2, coder, -(-height // f), -(-width // f), 0),
                              payload)
        kwargs = {} if limit == "default" else {"max_pixels": limit}
        t0 = time.perf_counter()
        try:
            vqcodec.decompress(data, **kwargs)
            outcome = "decoded"
        except FormatError as e:
            outcome = f"{type(e).__name__}: {e}"
        label = f"{name}, max_pixels={'default' if limit == 'default' else limit} ({len(data)} bytes)"
        rows.append((label, outcome, time.perf_counter() - t0))
    return rows


def _fuzz_worker(task: tuple[int, int, int]) -> FuzzReport:
    inputs, seed, threads = task
    torch.set_num_threads(threads)
    return fuzz(fuzz_model(seed=0), inputs, seed=seed, progress=seed == 1)


def fuzz_on(workers: int, inputs: int, seed: int, threads: int) -> FuzzReport:
    """The inputs split over worker processes, each with its own mutation seed; one merged report."""
    import multiprocessing

    shares = [inputs // workers + (k < inputs % workers) for k in range(workers)]
    tasks = [(n, seed * workers + k + 1, threads) for k, n in enumerate(shares)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        reports = pool.map(_fuzz_worker, tasks)
    merged = reports[0]
    for r in reports[1:]:
        merged.inputs += r.inputs
        merged.outcomes.update(r.outcomes)
        merged.findings += r.findings
        merged.slowest = max(merged.slowest, r.slowest, key=lambda s: s[0])
    return merged


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--workers", type=int, default=1, help="processes, each fuzzing its share of the inputs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    headers = hostile_headers()
    report = fuzz_on(args.workers, args.inputs, args.seed, args.threads)
    wall = time.perf_counter() - t0
    findings_dir = args.out / "fuzz_findings"
    for k, (data, kind) in enumerate(report.findings):
        findings_dir.mkdir(parents=True, exist_ok=True)
        (findings_dir / f"{k:04d}.vqc").write_bytes(data)
    lines = [
        "# Fuzzing the decoder",
        "",
        f"Command: `python eval/fuzz.py --inputs {args.inputs} --seed {args.seed} --threads {args.threads} "
        f"--workers {args.workers}`; {platform.processor() or platform.machine()}, {args.workers} process(es) "
        f"of {args.threads} torch thread(s), "
        f"torch {torch.__version__}, vqcodec {vqcodec.__version__}; wall {wall / 60:.1f} min.",
        "",
        "## What a hostile header costs (shipped model)",
        "",
        "| file | outcome | seconds |",
        "|---|---|---|",
        *[f"| {name} | {outcome} | {seconds:.3f} |" for name, outcome, seconds in headers],
        "",
        "## Structure-aware mutations",
        "",
        f"{report.inputs:,} inputs: mutations of {len(FUZZ_TOKENIZER.channels)}-stage f={FUZZ_TOKENIZER.downsample} "
        f"model files (K={FUZZ_TOKENIZER.codebook_size}, {FUZZ_TOKENIZER.depth} levels, prior window "
        f"{FUZZ_PRIOR.window}, random weights; vqcodec.fuzz), file CRC recomputed in 9 of 10, "
        f"max_pixels={FUZZ_MAX_PIXELS}. Each input goes through `describe()` and `decompress()`.",
        "",
        f"**Inputs outside the documented errors: {len(report.findings)}**"
        + (f" (saved in `{findings_dir}`)" if report.findings else "") + ".",
        f"Slowest input: {report.slowest[0] * 1000:.1f} ms ({len(report.slowest[1])} bytes: "
        f"`{report.slowest[1].hex()[:120]}`). Peak RSS: {peak_rss_mib():.0f} MiB (the largest process).",
        "",
        "| outcome | inputs | share |",
        "|---|---|---|",
        *[f"| {kind} | {n:,} | {100 * n / report.inputs:.2f} % |" for kind, n in report.outcomes.most_common()],
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
