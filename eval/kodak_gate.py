"""Does a candidate model beat the shipped one on Kodak at every level? Each of the candidate's levels is
compared with the baseline's curve at the candidate's bpp (linear in log-bpp between the baseline's
levels; beyond its ends, its end point, which favours the baseline when the candidate spends fewer bits).
A level passes when PSNR and LPIPS are both no worse and one of them is better by the margin (0.3 dB or
0.01 LPIPS); MS-SSIM is shown beside them. `--strict` is the ship gate on the held-out pictures: MS-SSIM
must be no worse too (run eval/kodak_levels.py on the held-out folder for its tables).

    python eval/kodak_gate.py eval/results/retired/vqc-v4/vqc-v4_kodak.json eval/results/vqc-v3/vqc-v3_kodak.json \
        --out eval/results/retired/vqc-v4/vqc-v4_kodak_gate.md
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

PSNR_MARGIN, LPIPS_MARGIN = 0.3, 0.01
METRICS = ("psnr", "ms_ssim", "lpips")


def at_rate(curve: list[dict], bpp: float, metric: str) -> tuple[float, str]:
    """The baseline's metric at bpp, and how it was found ("interpolated", "its lowest", "its highest")."""
    points = sorted((p["bpp"], p[metric]) for p in curve)
    if bpp <= points[0][0]:
        return points[0][1], "its lowest"
    if bpp >= points[-1][0]:
        return points[-1][1], "its highest"
    for (r0, v0), (r1, v1) in zip(points, points[1:]):
        if r0 <= bpp <= r1:
            t = (math.log(bpp) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return v0 + t * (v1 - v0), "interpolated"
    raise AssertionError("unreachable")


def gate(candidate: list[dict], baseline: list[dict], strict: bool = False) -> list[dict]:
    rows = []
    for level in candidate:
        row = {"quality": level["quality"], "bpp": level["bpp"]}
        for metric in METRICS:
            row[metric] = level[metric]
            row[f"baseline_{metric}"], row["baseline_at"] = at_rate(baseline, level["bpp"], metric)
        d_psnr, d_lpips = row["psnr"] - row["baseline_psnr"], row["baseline_lpips"] - row["lpips"]
        row["passes"] = d_psnr >= 0 and d_lpips >= 0 and (d_psnr >= PSNR_MARGIN or d_lpips >= LPIPS_MARGIN)
        if strict:
            row["passes"] = row["passes"] and row["ms_ssim"] >= row["baseline_ms_ssim"]
        rows.append(row)
    return rows


def table(rows: list[dict], name: str, baseline_name: str) -> str:
    lines = [f"| level | bpp | {name} PSNR / MS-SSIM / LPIPS | {baseline_name} at that bpp | ΔPSNR dB | ΔMS-SSIM | ΔLPIPS (− is better) | passes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['quality']} | {r['bpp']:.4f} | {r['psnr']:.2f} / {r['ms_ssim']:.3f} / {r['lpips']:.3f} | "
                     f"{r['baseline_psnr']:.2f} / {r['baseline_ms_ssim']:.3f} / {r['baseline_lpips']:.3f} "
                     f"({r['baseline_at']}) | {r['psnr'] - r['baseline_psnr']:+.2f} | {r['ms_ssim'] - r['baseline_ms_ssim']:+.4f} | "
                     f"{r['lpips'] - r['baseline_lpips']:+.3f} | {'yes' if r['passes'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("candidate", type=Path, help="eval/kodak_levels.py's JSON of the candidate")
    ap.add_argument("baseline", type=Path, help="the same of the shipped model")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here too")
    ap.add_argument("--strict", action="store_true", help="MS-SSIM must be no worse too (the held-out ship gate)")
    args = ap.parse_args()
    cand, base = (json.loads(p.read_text()) for p in (args.candidate, args.baseline))
    rows = gate(cand["summary"], base["summary"], strict=args.strict)
    text = table(rows, cand["model"], base["model"])
    verdict = "passes at every level" if all(r["passes"] for r in rows) else \
        f"fails at level(s) {', '.join(str(r['quality']) for r in rows if not r['passes'])}"
    rule = "PSNR, MS-SSIM and LPIPS" if args.strict else "PSNR and LPIPS"
    text += f"\n{cand['model']} against {base['model']} on {cand['data']} ({rule} no worse): {verdict}.\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
