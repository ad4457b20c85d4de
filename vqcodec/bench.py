"""Rate-distortion benchmarks: vqcodec against JPEG, WebP, AVIF and JPEG 2000 (all through Pillow).

    rows = run_bench("kodak/", ["vqcodec", "jpeg", "webp", "avif", "jp2"], "results/")

For every image and codec setting: whole-file bytes and bpp, PSNR (RGB), MS-SSIM, LPIPS (alex v0.1),
encode and decode seconds. Classical results are cached by image content, so a re-run computes only
what changed. `write_report` adds per-setting means, Bjøntegaard delta rates, R-D plots and a grid of
crops at matched bitrates.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import PIL
import torch
from PIL import Image
from tqdm import tqdm

from . import __version__ as vqcodec_version
from .images import ImageReadError, image_files, to_rgb
from .metrics import load_lpips, lpips_distance, ms_ssim, psnr
from .output import write_atomically

METRICS = ("psnr", "ms_ssim", "lpips")
HIGHER_IS_BETTER = {"psnr": True, "ms_ssim": True, "lpips": False}


@dataclass
class Codec:
    name: str
    settings: list                               # what the sweep passes to encode
    encode: Callable[[np.ndarray, object], bytes]
    decode: Callable[[bytes, tuple[int, int]], np.ndarray]  # data, (height, width) of the original
    version: str                                 # part of the cache key


def write_csv(rows: list[dict], path: Path) -> None:
    """One row per dict, columns in the first row's key order; creates the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def machine_description() -> str:
    """CPU model (or GPU when one is used), torch threads and versions: printed next to timings."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"constriction {importlib.metadata.version('constriction')}")


def _pillow_codec(name: str, fmt: str, settings: list, options: Callable[[object], dict]) -> Codec:
    def encode(rgb: np.ndarray, setting) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt, **options(setting))
        return buf.getvalue()

    def decode(data: bytes, shape: tuple[int, int]) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    return Codec(name, settings, encode, decode, f"pillow-{PIL.__version__}")


def classical_codecs() -> dict[str, Codec]:
    """Sweeps that reach the low-rate end (<= 0.1 bpp on Kodak) where the codec can."""
    return {
        "jpeg": _pillow_codec("jpeg", "JPEG", [1, 3, 5, 8, 12, 20, 30, 50],
                              lambda setting: {"quality": setting, "optimize": True}),
        "webp": _pillow_codec("webp", "WEBP", [0, 2, 5, 10, 20, 35, 50],
                              lambda setting: {"quality": setting, "method": 6}),
        "avif": _pillow_codec("avif", "AVIF", [0, 5, 10, 15, 25, 35, 50],
                              lambda setting: {"quality": setting, "speed": 4}),
        # JPEG 2000 is driven by compression ratio (24 bpp / ratio)
        "jp2": _pillow_codec("jp2", "JPEG2000", [400, 240, 160, 100, 60, 40],
                             lambda r: {"quality_mode": "rates", "quality_layers": [r], "irreversible": True}),
    }


def shrunk(codec: Codec, factor: int) -> Codec:
    """The codec of the picture shrunk `factor` times (Lanczos), scaled back up (Lanczos) on decoding:
    what a user who needs files smaller than the codec's lowest rate does. The decoder is told the
    original's size (a real file would spend a few bytes on it)."""
    def encode(rgb: np.ndarray, setting) -> bytes:
        h, w = rgb.shape[:2]
        small = Image.fromarray(rgb).resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.LANCZOS)
        return codec.encode(np.asarray(small), setting)

    def decode(data: bytes, shape: tuple[int, int]) -> np.ndarray:
        small = Image.fromarray(codec.decode(data, shape))
        return np.asarray(small.resize((shape[1], shape[0]), Image.LANCZOS))

    return Codec(f"{codec.name}@1/{factor}", codec.settings, encode, decode, f"{codec.version}-lanczos-1/{factor}")


def codec_named(name: str, model=None, device: str | None = None) -> Codec:
    """vqcodec (its networks on `device`), a classical codec (classical_codecs), or CODEC@1/N: that codec of
    the picture shrunk N times."""
    known = classical_codecs()
    if name == "vqcodec":
        return vqcodec_codec(model, device)
    base, _, scale = name.partition("@")
    if base in known and not scale:
        return known[base]
    if base in known and scale.startswith("1/") and scale[2:].isdigit() and int(scale[2:]) >= 2:
        return shrunk(known[base], int(scale[2:]))
    raise ValueError(f"unknown codec {name!r}: choose from vqcodec, {', '.join(known)}, or CODEC@1/N (N >= 2) "
                     "for one of those of the picture shrunk N times")


def match_size(codec: Codec, rgb: np.ndarray, target: int, settings: range = range(101),
               not_smaller: bool = False) -> tuple[int, bytes]:
    """The setting (and file) of `codec` whose file size is nearest to `target` bytes; with not_smaller,
    the smallest file of at least `target` bytes (else the largest there is). Bisects `settings`, over
    which the size grows."""
    lo, hi = 0, len(settings) - 1
    while lo < hi:  # the first setting whose file reaches the target
        mid = (lo + hi) // 2
        if len(codec.encode(rgb, settings[mid])) >= target:
            hi = mid
        else:
            lo = mid + 1
    candidates = [k for k in (lo - 1, lo) if 0 <= k < len(settings)]
    files = {k: codec.encode(rgb, settings[k]) for k in candidates}
    if not_smaller:
        big = [k for k in candidates if len(files[k]) >= target]
        best = min(big) if big else max(candidates)
    else:
        best = min(candidates, key=lambda k: abs(len(files[k]) - target))
    return settings[best], files[best]


def vqcodec_codec(model=None, device: str | None = None) -> Codec:
    from .codec import compress, decompress
    from .zoo import resolve_model

    m = resolve_model(model, device)
    return Codec("vqcodec", list(range(1, m.levels + 1)),
                 lambda rgb, quality: compress(rgb, quality=quality, model=m),
                 lambda data, shape: np.asarray(decompress(data, model=m).convert("RGB")),
                 # The encoder's choices change the files, so a cached row is only good for this version.
                 f"vqcodec-{vqcodec_version}-model-{m.model_id.hex()}")


def measure(codec: Codec, rgb: np.ndarray, setting, lpips_model) -> tuple[dict, np.ndarray]:
    t0 = time.perf_counter()
    data = codec.encode(rgb, setting)
    t1 = time.perf_counter()
    out = codec.decode(data, rgb.shape[:2])
    t2 = time.perf_counter()
    h, w = rgb.shape[:2]
    return {"codec": codec.name, "setting": setting, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
            "psnr": psnr(rgb, out), "ms_ssim": ms_ssim(rgb, out), "lpips": lpips_distance(lpips_model, rgb, out),
            "encode_s": t1 - t0, "decode_s": t2 - t1}, out


def rd_curve(image, codecs: tuple[str, ...] = ("vqcodec",), settings: dict | None = None, model=None,
             device: str | None = None, lpips_model=None) -> list[dict]:
    """Rate-distortion rows of one picture (a path, PIL image or array): for every codec of `codecs`
    ("vqcodec", "jpeg", "webp", "avif", "jp2", or CODEC@1/N for the picture shrunk N times) and every one
    of its settings (vqcodec's are its quality levels; `settings` = {codec: [...]} chooses others), one
    row: codec, setting, bytes, bpp (whole file), psnr, ms_ssim, lpips (alex v0.1), encode_s, decode_s.

        rows = vqcodec.rd_curve("photo.png", codecs=("vqcodec", "avif"))
        plt.plot([r["bpp"] for r in rows if r["codec"] == "vqcodec"], [r["lpips"] for r in rows if ...])
    """
    rgb = to_rgb(image)
    lpips_model = lpips_model or load_lpips()
    rows = []
    for name in codecs:
        codec = codec_named(name, model, device)
        for setting in (settings or {}).get(name, codec.settings):
            rows.append(measure(codec, rgb, setting, lpips_model)[0])
    return rows


class ResultCache:
    """JSON file of measured rows keyed by (image content, codec, its version, setting)."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict = json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def key(digest: str, codec: Codec, setting) -> str:
        return f"{digest}|{codec.name}|{codec.version}|{setting}"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, lambda tmp: Path(tmp).write_text(json.dumps(self.rows)))


_bench_worker: dict = {}


def _start_bench_worker(threads: int, options: dict) -> None:
    torch.set_num_threads(threads)
    _bench_worker["codecs"] = {c: codec_named(c, options["model"], options["device"]) for c in options["codecs"]}
    _bench_worker["lpips"] = options.get("lpips_model") or load_lpips()


def _measure_task(task: tuple[Path, str, object]) -> dict:
    path, name, setting = task
    row, _ = measure(_bench_worker["codecs"][name], to_rgb(path), setting, _bench_worker["lpips"])
    return row


def run_bench(folder: str | Path, codecs: list[str], out: str | Path, model=None,
              log: Callable[[str], None] = print, lpips_model=None, jobs: int = 1,
              device: str | None = None) -> list[dict]:
    """Measure every image under `folder` with every codec setting; returns one row per pair.
    Images that cannot be read are reported through `log` and skipped. jobs > 1 measures on that many
    worker processes (vqcodec.batch's pool), each with cores // jobs torch threads: encode and decode
    times are then those of a process sharing the machine. device: where vqcodec's networks run."""
    from .batch import process_map

    chosen = [codec_named(c, model, device) for c in codecs]
    cache = ResultCache(Path(out) / "cache" / "results.json")
    readable, tasks = [], []
    for path in image_files(Path(folder)):
        try:
            rgb = to_rgb(path)
        except ImageReadError as e:
            log(f"skipped {e}")
            continue
        digest = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()[:16]
        keys = [(codec, setting, ResultCache.key(digest, codec, setting))
                for codec in chosen for setting in codec.settings]
        readable.append((path, rgb.shape, keys))
        tasks += [(path, codec.name, setting, key) for codec, setting, key in keys if key not in cache.rows]
    if jobs > 1 and hasattr(model, "model_id"):
        raise ValueError("with jobs > 1 give the model by name or folder: each worker loads its own")
    options = {"codecs": codecs, "model": model, "device": device, "lpips_model": None if jobs > 1 else lpips_model}
    with tqdm(total=len(tasks), desc="bench") as bar:
        for (_, _, _, key), row in zip(tasks, process_map(_measure_task, [t[:3] for t in tasks], jobs,
                                                          _start_bench_worker, options)):
            cache.rows[key] = row
            cache.save()
            bar.update(1)
    return [{"image": path.name, "width": shape[1], "height": shape[0], **cache.rows[key]}
            for path, shape, keys in readable for _, _, key in keys]


def mean_curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Per codec: one point per setting, every field averaged over images, sorted by bpp."""
    curves: dict[str, list[dict]] = {}
    for codec in dict.fromkeys(r["codec"] for r in rows):
        points = []
        for setting in dict.fromkeys(r["setting"] for r in rows if r["codec"] == codec):
            sel = [r for r in rows if r["codec"] == codec and r["setting"] == setting]
            points.append({"setting": setting, "images": len(sel),
                           **{k: float(np.mean([r[k] for r in sel]))
                              for k in ("bpp", *METRICS, "encode_s", "decode_s")}})
        curves[codec] = sorted(points, key=lambda p: p["bpp"])
    return curves


def bd_rate(rate_a, score_a, rate_b, score_b, higher_is_better: bool = True) -> tuple[float | None, str]:
    """Bjøntegaard delta rate of curve B against curve A, in percent (negative: B needs fewer bits
    for the same score), with piecewise cubic (PCHIP) interpolation of log-rate over the range of the
    metric's scores (PSNR, MS-SSIM, LPIPS) both curves cover. Returns (None, reason) where they do not
    overlap."""
    from scipy.interpolate import PchipInterpolator

    sign = 1.0 if higher_is_better else -1.0
    score_a, score_b = sign * np.asarray(score_a, float), sign * np.asarray(score_b, float)
    show = lambda lo, hi: f"{min(sign * lo, sign * hi):.4g}..{max(sign * lo, sign * hi):.4g}"  # noqa: E731

    def monotone(rate, score):
        order = np.argsort(score)
        s, r = np.asarray(score, float)[order], np.log(np.asarray(rate, float)[order])
        keep = np.concatenate([[True], np.diff(s) > 0])  # PCHIP needs strictly increasing x
        return s[keep], r[keep]

    sa, ra = monotone(rate_a, score_a)
    sb, rb = monotone(rate_b, score_b)
    if len(sa) < 2 or len(sb) < 2:
        return None, "fewer than two distinct points"
    lo, hi = max(sa[0], sb[0]), min(sa[-1], sb[-1])
    if hi <= lo:
        return None, f"no overlap in quality ({show(sa[0], sa[-1])} vs {show(sb[0], sb[-1])})"
    ia, ib = PchipInterpolator(sa, ra).integrate(lo, hi), PchipInterpolator(sb, rb).integrate(lo, hi)
    return float((np.exp((ib - ia) / (hi - lo)) - 1) * 100), f"quality {show(lo, hi)}"


def bd_table(curves: dict[str, list[dict]], subject: str = "vqcodec") -> list[dict]:
    """BD-rate of `subject` against every other codec, per metric."""
    table = []
    for other in curves:
        if other == subject or subject not in curves:
            continue
        for metric in METRICS:
            value, note = bd_rate([p["bpp"] for p in curves[other]], [p[metric] for p in curves[other]],
                                  [p["bpp"] for p in curves[subject]], [p[metric] for p in curves[subject]],
                                  HIGHER_IS_BETTER[metric])
            table.append({"against": other, "metric": metric, "bd_rate_percent": value, "note": note})
    return table


def plot_curves(curves: dict[str, list[dict]], path: Path, max_bpp: float = 0.7) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric, label in (("lpips", "LPIPS (alex v0.1), lower is better"), ("ms_ssim", "MS-SSIM"),
                          ("psnr", "PSNR (dB)")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
        for codec, points in curves.items():
            pts = [p for p in points if p["bpp"] <= max_bpp]
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], "o-" if codec == "vqcodec" else ".--",
                    label=codec, linewidth=2.2 if codec == "vqcodec" else 1.2)
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        out = path.parent / f"{path.stem}_{metric}.png"
        fig.tight_layout()
        fig.savefig(out)
        plt.close(fig)
        written.append(out)
    return written


def comparison_grid(image_paths: list[Path], rows: list[dict], codecs: list[str], out: Path, model=None,
                    crop: int = 192, device: str | None = None) -> Path:
    """One row per image and vqcodec level: the centre crop of the image decoded by every codec at the
    setting whose bpp on this image is nearest to vqcodec's, labelled with codec and bpp."""
    known = {name: codec_named(name, model, device) for name in ["vqcodec", *codecs]}
    columns = ["original", "vqcodec"] + [c for c in codecs if c != "vqcodec"]
    cells = []  # (row, column, tile, caption)
    for image_path in image_paths:
        rgb = to_rgb(image_path)
        y0, x0 = (rgb.shape[0] - crop) // 2, (rgb.shape[1] - crop) // 2
        mine = [r for r in rows if r["image"] == image_path.name]
        for level in sorted((r for r in mine if r["codec"] == "vqcodec"), key=lambda r: r["bpp"]):
            row = len({c[0] for c in cells})
            for j, name in enumerate(columns):
                if name == "original":
                    decoded, caption = rgb, image_path.name
                else:
                    best = min((r for r in mine if r["codec"] == name), key=lambda r: abs(r["bpp"] - level["bpp"]))
                    decoded = known[name].decode(known[name].encode(rgb, best["setting"]), rgb.shape[:2])
                    caption = f"{name} {best['setting']}: {best['bpp']:.3f} bpp"
                cells.append((row, j, Image.fromarray(decoded[y0:y0 + crop, x0:x0 + crop]), caption))
    labelled_sheet(cells, (crop, crop)).save(out, optimize=True)
    return out


def labelled_sheet(cells: list[tuple[int, int, Image.Image, str]], tile: tuple[int, int],
                   caption_height: int = 16) -> Image.Image:
    """A white sheet of (row, column, picture, caption) cells, each picture (tile: its width, height)
    under its caption."""
    from PIL import ImageDraw

    width, height = tile
    n_rows, n_columns = max(c[0] for c in cells) + 1, max(c[1] for c in cells) + 1
    sheet = Image.new("RGB", (width * n_columns, (height + caption_height) * n_rows), "white")
    draw = ImageDraw.Draw(sheet)
    for i, j, picture, caption in cells:
        sheet.paste(picture, (j * width, i * (height + caption_height) + caption_height))
        draw.text((j * width + 3, i * (height + caption_height) + 2), caption, fill="black")
    return sheet


def write_report(rows: list[dict], out: str | Path, codecs: list[str], folder: str | Path,
                 command: str, model=None, grid_images: list[str] | None = None,
                 grid_codecs: list[str] | None = None, device: str | None = None) -> dict:
    """CSV, JSON, markdown, plots and the comparison grid (of grid_images, file names, default: the
    first image; of grid_codecs, default: all of codecs; vqcodec's networks on `device`); returns the
    JSON summary."""
    out = Path(out)
    write_csv(rows, out / "per_image.csv")
    curves = mean_curves(rows)
    bd = bd_table(curves)
    summary = {"data": str(folder), "command": command, "images": len({r["image"] for r in rows}),
               "curves": curves, "bd_rate_vqcodec": bd}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = [f"Data: `{folder}` ({summary['images']} images). Command: `{command}`", "",
          "| codec | setting | bpp | PSNR dB | MS-SSIM | LPIPS | encode s | decode s |", "|---|---|---|---|---|---|---|---|"]
    for codec, points in curves.items():
        for p in points:
            md.append(f"| {codec} | {p['setting']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | "
                      f"{p['lpips']:.4f} | {p['encode_s']:.3f} | {p['decode_s']:.3f} |")
    if bd:
        md += ["", "BD-rate of vqcodec against each codec (negative: vqcodec needs fewer bits for the same quality):",
               "", "| against | metric | BD-rate | over |", "|---|---|---|---|"]
        for b in bd:
            value = "n/a" if b["bd_rate_percent"] is None else f"{b['bd_rate_percent']:+.1f}%"
            md.append(f"| {b['against']} | {b['metric']} | {value} | {b['note']} |")
    (out / "results.md").write_text("\n".join(md) + "\n")
    plot_curves(curves, out / "rd.png")
    if "vqcodec" in codecs:
        files = image_files(Path(folder))
        chosen = [p for p in files if p.name in (grid_images or [])] or files[:1]
        # 176-pixel crops keep a grid of 4 images x 6 levels x 4 columns under 5 MB
        comparison_grid(chosen, rows, grid_codecs or codecs, out / "comparison_grid.png", model, crop=176,
                        device=device)
    return summary
