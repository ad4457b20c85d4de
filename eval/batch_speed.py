"""Folders on every core: compress and decompress a folder of images serially (--jobs 1) and on
worker processes (--jobs N), images per second; and how long `vqcodec --help` takes, beside an older
checkout's. Writes eval/results/batch.md and batch.json.

    git worktree add /tmp/vqcodec-0.5 55f2cb5
    python eval/batch_speed.py ../shared/data/kodak --jobs 2 --older /tmp/vqcodec-0.5
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import vqcodec
from vqcodec.batch import plan
from vqcodec.images import IMAGE_SUFFIXES
from vqcodec.bench import machine_description


def timed(command: list[str], repeats: int = 1, cwd: str | None = None) -> float:
    """Median wall seconds of a command."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


SPIN = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(20_000_000): s += i\nprint(time.perf_counter() - t)"


def parallel_ceiling(jobs: int) -> float:
    """The throughput `jobs` independent pure-Python processes get against one: what this machine's
    cores allow any process pool, whatever the codec does."""
    one = float(subprocess.run([sys.executable, "-c", SPIN], check=True, capture_output=True, text=True).stdout)
    procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    many = max(float(p.communicate()[0]) for p in procs)
    return jobs * one / many


def help_seconds(checkout: Path | None, repeats: int = 5) -> float:
    """`vqcodec --help` from this install, or from an older checkout's source tree."""
    if checkout is None:
        return timed([sys.executable, "-m", "vqcodec", "--help"], repeats)
    code = (f"import sys; sys.path.insert(0, {str(checkout)!r}); import vqcodec; "
            f"assert vqcodec.__file__.startswith({str(checkout)!r}); from vqcodec.cli import main; main(['--help'])")
    return timed([sys.executable, "-c", code], repeats, cwd=tempfile.gettempdir())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--older", type=Path, default=None, help="an older checkout, for the --help comparison")
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    args = ap.parse_args()
    images = len(plan([args.folder], "x", IMAGE_SUFFIXES, ".vqc"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, args.jobs):
            vqc, png = Path(tmp) / f"vqc{jobs}", Path(tmp) / f"png{jobs}"
            quality = [] if args.quality is None else ["--quality", str(args.quality)]
            compress_s = timed(["vqcodec", "compress", str(args.folder), "-o", str(vqc), "--jobs", str(jobs),
                                "--quiet", *quality])
            decompress_s = timed(["vqcodec", "decompress", str(vqc), "-o", str(png), "--jobs", str(jobs), "--quiet"])
            rows.append({"jobs": jobs, "images": images, "compress_s": compress_s, "decompress_s": decompress_s,
                         "compress_images_per_s": images / compress_s, "decompress_images_per_s": images / decompress_s})
        same = all((Path(tmp) / "vqc1" / p.name).read_bytes() == p.read_bytes()
                   for p in (Path(tmp) / f"vqc{args.jobs}").glob("*.vqc"))
        shutil.rmtree(tmp, ignore_errors=True)
    ceiling = parallel_ceiling(args.jobs)
    help_now = help_seconds(None)
    help_before = help_seconds(args.older) if args.older else None
    serial, parallel = rows
    result = {"machine": machine_description(), "folder": str(args.folder), "rows": rows,
              "speedup_compress": serial["compress_s"] / parallel["compress_s"],
              "speedup_decompress": serial["decompress_s"] / parallel["decompress_s"],
              "files_identical_across_jobs": same, "parallel_ceiling": ceiling, "help_s": help_now, "help_s_older": help_before,
              "older": str(args.older) if args.older else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Folders and cores",
        "",
        f"Command: `python eval/batch_speed.py {args.folder} --jobs {args.jobs}"
        + (f" --older {args.older}" if args.older else "") + f"`; {result['machine']}; vqcodec {vqcodec.__version__}, "
        f"default quality; wall time of the whole CLI command (start-up and model loading included).",
        "",
        "| jobs | images | compress s | images/s | decompress s | images/s |",
        "|---|---|---|---|---|---|",
        *[f"| {r['jobs']} | {r['images']} | {r['compress_s']:.1f} | {r['compress_images_per_s']:.2f} | "
          f"{r['decompress_s']:.1f} | {r['decompress_images_per_s']:.2f} |" for r in rows],
        "",
        f"Speed-up with {args.jobs} jobs: compress {result['speedup_compress']:.2f}x, decompress "
        f"{result['speedup_decompress']:.2f}x. The .vqc files are byte-identical whatever the jobs: {same}.",
        f"The machine's ceiling: {args.jobs} independent pure-Python processes get {ceiling:.2f}x the throughput "
        "of one (a perfect pool of independent work could do no better).",
        "",
        f"`vqcodec --help`: {help_now:.2f} s (median of 5)"
        + (f"; the older checkout ({args.older}) took {help_before:.2f} s." if help_before else "."),
        "",
    ]
    (args.out / "batch.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
