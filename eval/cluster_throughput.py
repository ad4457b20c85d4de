"""Bulk coding throughput: the Kodak pictures through compress_many on local worker processes and through
vqcodec.cluster on a local Dask cluster with as many one-thread workers, in the same run; the outputs are
compared byte for byte:

    python eval/cluster_throughput.py ../shared/data/kodak --workers 2 --out eval/results
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import vqcodec
from vqcodec import cluster
from vqcodec.bench import machine_description


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    pictures = sorted(args.images.glob("*.png"))
    pixels = 0
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        start = time.perf_counter()
        local = vqcodec.compress_many(pictures, scratch / "local", jobs=args.workers)
        local_s = time.perf_counter() - start
        start = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as lc, Client(lc) as client:
            client.wait_for_workers(args.workers)
            startup_s = time.perf_counter() - start
            start = time.perf_counter()
            remote = cluster.compress_on(client, pictures, scratch / "dask")
            dask_s = time.perf_counter() - start
        same = all(a.target.read_bytes() == b.target.read_bytes() for a, b in zip(local, remote))
        pixels = sum(r.pixels for r in local)
        failed = [r for r in local + remote if r.status != "written"]
    record = {"machine": machine_description(), "pictures": len(pictures), "workers": args.workers,
              "compress_many_s": round(local_s, 1), "dask_startup_s": round(startup_s, 1), "dask_s": round(dask_s, 1),
              "identical": same, "failed": len(failed), "megapixels": round(pixels / 1e6, 2)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps(record, indent=1))
    lines = [f"# Bulk coding: local processes against a local Dask cluster ({record['machine']})", "",
             f"`python eval/cluster_throughput.py {args.images} --workers {args.workers}`: {len(pictures)} pictures "
             f"({record['megapixels']} MP), default quality, {args.workers} workers of one thread each.", "",
             "| engine | wall s | pictures / min | outputs |", "|---|---|---|---|",
             f"| `compress_many(jobs={args.workers})` (`--jobs {args.workers}`) | {local_s:.1f} | "
             f"{60 * len(pictures) / local_s:.1f} | reference |",
             f"| `vqcodec.cluster.compress_on`, LocalCluster({args.workers} × 1 thread) | {dask_s:.1f} "
             f"(+ {startup_s:.1f} to start the cluster) | {60 * len(pictures) / dask_s:.1f} | "
             f"{'byte-identical' if same else 'DIFFERENT'} |"]
    (args.out / "cluster.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
