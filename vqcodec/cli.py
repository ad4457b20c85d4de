"""The `vqcodec` command line."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from . import bitstream
from .bitstream import FormatError
from .images import ConversionWarning, ImageReadError
from .metrics import MetricUnavailable
from .search import DEFAULT_RD_LAMBDA
from .zoo import DEFAULT_MODEL, ModelNotFound, find_model_by_id

EXPECTED_ERRORS = (FormatError, ImageReadError, ModelNotFound, MetricUnavailable, ValueError, OSError)


def _say_warning(message, category, filename, lineno, file=None, line=None) -> None:
    prefix = "note" if issubclass(category, ConversionWarning) else "warning"
    click.echo(f"vqcodec: {prefix}: {message}", err=True)


class Commands(click.Group):
    """Turns every failure into one line on stderr and a non-zero exit code."""

    def invoke(self, ctx: click.Context):
        warnings.showwarning = _say_warning
        warnings.filterwarnings("ignore", module="torchvision")
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as e:
            raise click.ClickException(str(e) if not isinstance(e, OSError) or not e.filename
                                       else f"{e.filename}: {e.strerror}") from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug: still one line, with what to report
            raise click.ClickException(f"internal error ({type(e).__name__}: {e}); please report it") from None


def write_atomically(path: str | Path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place, so that a
    failure never leaves a partial output. OSErrors name `path`, not the temporary file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        os.unlink(tmp)
        raise


def _save_png(image, path: str | Path) -> None:
    write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))


@click.group(cls=Commands)
@click.version_option(package_name="vqcodec")
def main() -> None:
    """vqcodec: a learned image codec (VQ-GAN tokens + transformer prior + range coding)."""


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--quality", "-q", type=int, default=None, help="Quality level, 1 (smallest) to the model's top level.")
@click.option("--model", "-m", default=None, help=f"Shipped model name or model folder [default: {DEFAULT_MODEL}].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--coder", type=click.Choice(["prior", "uniform"]), default="prior", show_default=True,
              help="uniform: no prior, log2 K bits per index (for comparison).")
@click.option("--rd-lambda", type=float, default=DEFAULT_RD_LAMBDA, show_default=True,
              help="What a bit is worth when the encoder picks codes: larger gives smaller files; 0: closest codes.")
def compress(src: str, dst: str, quality: int | None, model: str | None, device: str, coder: str,
             rd_lambda: float) -> None:
    """Compress image SRC into the .vqc file DST."""
    from .codec import compress as _compress
    from .images import to_rgb

    rgb = to_rgb(src)
    data = _compress(rgb, quality=quality, model=model, device=device, coder=coder, rd_lambda=rd_lambda)
    write_atomically(dst, lambda tmp: Path(tmp).write_bytes(data))
    click.echo(f"{dst}: {len(data)} bytes, {8 * len(data) / (rgb.shape[0] * rgb.shape[1]):.4f} bpp")


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--model", "-m", default=None, help="Model folder, when the file was not made by a shipped model.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def decompress(src: str, dst: str, model: str | None, device: str) -> None:
    """Decompress the .vqc file SRC into the PNG image DST."""
    from .codec import decompress as _decompress

    image = _decompress(Path(src).read_bytes(), model=model, device=device)
    _save_png(image, dst)


def describe(data: bytes) -> dict:
    """Header fields and sizes of a .vqc file (checks its CRC; does not decode)."""
    header, payload = bitstream.unpack(data)
    name = find_model_by_id(header.model_id)  # the shipped model that decodes it
    codebook_size = made_by = None
    if name is not None:
        from .zoo import load_model
        m = load_model(name)
        codebook_size = m.codebook_size
        made_by = name if m.model_id == header.model_id else m.reads_files_of[header.model_id]
    return {
        "version": bitstream.VERSION, "width": header.width, "height": header.height,
        "model_id": header.model_id.hex(), "made_by": made_by, "model": name, "quality": header.quality,
        "coder": header.coder.name.lower(), "grid": [header.grid_height, header.grid_width],
        "tokens": header.quality * header.grid_height * header.grid_width, "codebook_size": codebook_size,
        "payload_bytes": len(payload), "file_bytes": len(data),
        "bpp": 8 * len(data) / (header.width * header.height),
    }


@main.command()
@click.argument("src")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(src: str, as_json: bool) -> None:
    """Describe the .vqc file SRC."""
    d = describe(Path(src).read_bytes())
    if as_json:
        click.echo(json.dumps(d))
        return
    for key, value in d.items():
        if key in ("model", "made_by") and value is None:
            value = "(not a shipped model)"
        click.echo(f"{key:14s} {value:.4f}" if isinstance(value, float) else f"{key:14s} {value}")


@main.command()
@click.option("-n", "count", type=int, default=4, show_default=True, help="Number of images.")
@click.option("-o", "--out", "dst", required=True, help="Output PNG (a grid of the samples).")
@click.option("--size", default="256x256", show_default=True, help="WIDTHxHEIGHT of each sample.")
@click.option("--quality", "-q", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=int, default=None)
@click.option("--top-p", type=float, default=None)
@click.option("--model", "-m", default=None)
def sample(count: int, dst: str, size: str, quality: int | None, seed: int, temperature: float,
           top_k: int | None, top_p: float | None, model: str | None) -> None:
    """Draw images from the prior (unconditional generation)."""
    from .generate import image_grid, sample as _sample

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {size!r}", param_hint="--size") from None
    images = _sample(count, (height, width), quality, temperature, top_k, top_p, seed, model)
    _save_png(image_grid(images, min(count, 4)), dst)
    click.echo(f"{dst}: {count} samples of {width}x{height}")


@main.command()
@click.option("-o", "--out", "dst", default="vqcodec-demo.png", show_default=True, help="Side-by-side PNG.")
@click.option("--quality", "-q", type=int, default=None)
@click.option("--model", "-m", default=None)
def demo(dst: str, quality: int | None, model: str | None) -> None:
    """Compress and decompress scikit-image's astronaut; print size and quality."""
    from PIL import Image
    from skimage import data as skdata

    from .codec import compress as _compress, decompress as _decompress
    from .metrics import load_lpips, lpips_distance, psnr

    original = skdata.astronaut()
    t0 = time.perf_counter()
    blob = _compress(original, quality=quality, model=model)
    t1 = time.perf_counter()
    decoded = np.asarray(_decompress(blob, model=model))
    t2 = time.perf_counter()
    h, w = original.shape[:2]
    click.echo(f"astronaut {w}x{h}: {len(blob)} bytes, {8 * len(blob) / (w * h):.4f} bpp, "
               f"PSNR {psnr(original, decoded):.2f} dB, encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")
    try:
        click.echo(f"LPIPS (alex v0.1) {lpips_distance(load_lpips(), original, decoded):.4f}")
    except MetricUnavailable as e:
        click.echo(f"LPIPS not computed: {e}")
    side = Image.new("RGB", (2 * w, h))
    side.paste(Image.fromarray(original), (0, 0))
    side.paste(Image.fromarray(decoded), (w, 0))
    _save_png(side, dst)
    click.echo(f"{dst}: original (left), decoded (right)")


@main.command()
@click.argument("folder")
@click.option("--codecs", default="vqcodec,jpeg,webp,avif,jp2", show_default=True,
              help="Comma-separated: vqcodec, jpeg, webp, avif, jp2.")
@click.option("--out", "out", default="bench-results", show_default=True, help="Results folder.")
@click.option("--model", "-m", default=None, help="vqcodec model name or folder.")
@click.option("--grid-image", default=None,
              help="File name(s), comma-separated, of the images for the comparison grid [default: the first].")
@click.option("--grid-codecs", default=None,
              help="Comma-separated codecs shown beside vqcodec in the comparison grid [default: all benchmarked].")
def bench(folder: str, codecs: str, out: str, model: str | None, grid_image: str | None,
          grid_codecs: str | None) -> None:
    """Rate-distortion benchmark of the images under FOLDER: CSV, JSON, markdown, plots, BD-rates."""
    from .eval import run_bench, write_report

    names = [c.strip() for c in codecs.split(",") if c.strip()]
    shown = ["vqcodec"] + [c.strip() for c in grid_codecs.split(",") if c.strip()] if grid_codecs else None
    if shown and not set(shown) <= set(names):
        raise click.ClickException(f"--grid-codecs {grid_codecs}: the grid can only show benchmarked codecs ({codecs})")
    rows = run_bench(folder, names, out, model, log=lambda m: click.echo(f"vqcodec: {m}", err=True))
    if not rows:
        raise click.ClickException(f"no readable images under {folder}")
    command = "vqcodec bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else f"vqcodec bench {folder}"
    grid_images = [g.strip() for g in grid_image.split(",")] if grid_image else None
    write_report(rows, out, names, folder, command, model, grid_images, shown)
    click.echo(Path(out, "results.md").read_text())


@main.group()
def train() -> None:
    """Train a tokenizer, then a prior, then export them as a model folder."""


@train.command("tokenizer")
@click.argument("data")
@click.option("--run", "out", required=True, help="Run folder for checkpoints and logs (resumed if present).")
@click.option("--steps", type=int, default=3000, show_default=True)
@click.option("--minutes", type=float, default=0.0, help="Stop with a checkpoint after this much wall time.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--disc-start", type=int, default=2000, show_default=True, help="Step that switches the GAN loss on.")
@click.option("--disc-warmup", type=int, default=0, show_default=True,
              help="Steps the discriminator trains alone before --disc-start.")
@click.option("--freeze-encoder", is_flag=True, help="Train the decoder only (token grids stay fixed).")
@click.option("--depth", type=int, default=None, help="Residual depths (= quality levels) of a new run [default: 4].")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Start a new run from the tokenizer of this model folder (e.g. vqcodec/weights/vqc-v3); "
                   "depths beyond its own are k-means initialised.")
@click.option("--seed", type=int, default=0, show_default=True)
def train_tokenizer_cmd(data, out, steps, minutes, batch, crop, lr, disc_start, disc_warmup, freeze_encoder, depth,
                        init_from, seed) -> None:
    """Train the VQ-GAN tokenizer on the images under DATA."""
    from .tokenizer import TokenizerConfig
    from .train.tokenizer import TokenizerTrainConfig, train_tokenizer

    model_cfg = None
    if init_from:
        model_cfg = TokenizerConfig.from_dict(json.loads((Path(init_from) / "config.json").read_text())["tokenizer"])
    if depth:
        model_cfg = replace(model_cfg or TokenizerConfig(), depth=depth)
    train_tokenizer(TokenizerTrainConfig(data=data, out=out, steps=steps, minutes=minutes, batch=batch, crop=crop,
                                         lr=lr, disc_start=disc_start, disc_warmup=disc_warmup,
                                         freeze_encoder=freeze_encoder,
                                         init_from=init_from or "", seed=seed), model_cfg)


@train.command("prior")
@click.argument("data")
@click.option("--run", "out", required=True, help="Run folder holding the trained tokenizer.")
@click.option("--steps", type=int, default=6000, show_default=True)
@click.option("--minutes", type=float, default=0.0)
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train_prior_cmd(data, out, steps, minutes, batch, seed) -> None:
    """Train the transformer prior on token grids of the images under DATA."""
    from .train.prior import PriorTrainConfig, train_prior

    train_prior(PriorTrainConfig(data=data, out=out, steps=steps, minutes=minutes, batch=batch, seed=seed))


@train.command("export")
@click.argument("run")
@click.argument("dst")
@click.option("--default-quality", type=int, default=2, show_default=True)
@click.option("--reads-files-of", type=click.Path(exists=True, file_okay=False), default=None,
              help="An earlier model folder whose files the new model decodes: allowed when the run kept its "
                   "codebooks and prior (a decoder-only run), checked.")
def export_cmd(run: str, dst: str, default_quality: int, reads_files_of: str | None) -> None:
    """Write the model of run folder RUN into the model folder DST (fp16 safetensors + config)."""
    from .train.export import export_run

    identity = export_run(Path(run), Path(dst), default_quality, Path(reads_files_of) if reads_files_of else None)
    click.echo(f"{dst}: model {identity[:4].hex()} (sha256 {identity.hex()})")


if __name__ == "__main__":
    sys.exit(main())
