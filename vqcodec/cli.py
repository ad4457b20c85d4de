"""The `vqcodec` command line."""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from .bitstream import DEFAULT_MAX_PIXELS, FormatError
from .images import ConversionWarning, ImageReadError
from .metrics import MetricUnavailable
from .search import DEFAULT_RD_LAMBDA
from .zoo import DEFAULT_MODEL, ModelNotFound

EXPECTED_ERRORS = (FormatError, ImageReadError, ModelNotFound, MetricUnavailable, ValueError, OSError)


def _say_warning(message, category, filename, lineno, file=None, line=None) -> None:
    prefix = "note" if issubclass(category, ConversionWarning) else "warning"
    click.echo(f"vqcodec: {prefix}: {message}", err=True)


def _exit_on_signal(signum, frame) -> None:
    # SystemExit unwinds through write_atomically, which removes its temporary file.
    raise SystemExit(128 + signum)


class Commands(click.Group):
    """Turns every failure into one line on stderr and a non-zero exit code; SIGTERM ends the command
    the way Ctrl-C does, leaving no partial output."""

    def invoke(self, ctx: click.Context):
        warnings.showwarning = _say_warning
        warnings.filterwarnings("ignore", module="torchvision")
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _exit_on_signal) if main_thread else None
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as e:
            raise click.ClickException(str(e) if not isinstance(e, OSError) or not e.filename
                                       else f"{e.filename}: {e.strerror}") from None
        except click.UsageError as e:  # one line too, naming the command and `--help`
            raise click.ClickException(f"{e.format_message()} (see '{e.ctx.command_path if e.ctx else 'vqcodec'} "
                                       "--help')") from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug: still one line, with what to report
            raise click.ClickException(f"internal error ({type(e).__name__}: {e}); please report it") from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | Path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place, so that a
    failure or an interruption never leaves a partial output. The file gets the permissions any new
    file gets under the user's umask. OSErrors name `path`, not the temporary file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        os.unlink(tmp)
        raise


def image_format(path: str | Path) -> str:
    """The Pillow format an output path's suffix names; refuses a suffix Pillow cannot write."""
    from PIL import Image

    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise click.ClickException(f"{path}: cannot tell an image format Pillow writes from the suffix "
                                   f"{suffix or '(none)'!r}; use .png, .jpg, .webp, .tif, ...")
    return fmt


def save_image(image, path: str | Path) -> None:
    """Write a PIL image in the format its path's suffix names, atomically."""
    fmt = image_format(path)
    write_atomically(path, lambda tmp: image.save(tmp, format=fmt))


def refuse_overwriting_input(src: str | Path, dst: str | Path) -> None:
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise click.ClickException(f"{dst} is the input file: choose another output path")


def check_device(device: str) -> str:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.ClickException("--device cuda: no CUDA device is available here (use --device cpu)")
    return device


class PixelCount(click.ParamType):
    """A pixel count, or 'none' for no limit."""
    name = "PIXELS|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() == "none":
            return None
        try:
            count = int(value)
        except ValueError:
            self.fail(f"expected a number of pixels or 'none', got {value!r}", param, ctx)
        if count < 1:
            self.fail(f"must be at least 1, got {count}", param, ctx)
        return count


def _max_pixels_option(f):
    return click.option("--max-pixels", type=PixelCount(), default=DEFAULT_MAX_PIXELS, show_default=True,
                        help="Refuse files that claim a larger picture ('none': no limit; the default is "
                             "twice Pillow's decompression-bomb threshold).")(f)


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

    refuse_overwriting_input(src, dst)
    rgb = to_rgb(src)
    data = _compress(rgb, quality=quality, model=model, device=check_device(device), coder=coder,
                     rd_lambda=rd_lambda)
    write_atomically(dst, lambda tmp: Path(tmp).write_bytes(data))
    click.echo(f"{dst}: {len(data)} bytes, {8 * len(data) / (rgb.shape[0] * rgb.shape[1]):.4f} bpp")


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--model", "-m", default=None, help="Model folder, when the file was not made by a shipped model.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@_max_pixels_option
def decompress(src: str, dst: str, model: str | None, device: str, max_pixels: int | None) -> None:
    """Decompress the .vqc file SRC into the image DST (its suffix names the format: .png, .jpg, ...)."""
    from .codec import decompress as _decompress

    refuse_overwriting_input(src, dst)
    image_format(dst)
    image = _decompress(src, model=model, device=check_device(device), max_pixels=max_pixels)
    save_image(image, dst)


@main.command()
@click.argument("src")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_max_pixels_option
def info(src: str, as_json: bool, max_pixels: int | None) -> None:
    """Describe the .vqc file SRC (checked as far as possible without decoding it)."""
    from .codec import describe

    d = describe(src, max_pixels)
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
    if width < 1 or height < 1:
        raise click.BadParameter(f"width and height must be at least 1, got {size!r}", param_hint="--size")
    image_format(dst)
    images = _sample(count, (height, width), quality, temperature, top_k, top_p, seed, model)
    save_image(image_grid(images, min(count, 4)), dst)
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

    image_format(dst)
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
    save_image(side, dst)
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
    from .bench import run_bench, write_report

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
@click.option("--code-dim", type=int, default=None,
              help="Dimension of the quantized latent of a new run [default: 32, or --init-from's]; wider than "
                   "--init-from's keeps its weights and re-initialises the codebooks.")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Start a new run from the tokenizer of this model folder (e.g. vqcodec/weights/vqc-v3); "
                   "depths beyond its own are k-means initialised.")
@click.option("--seed", type=int, default=0, show_default=True)
def train_tokenizer_cmd(data, out, steps, minutes, batch, crop, lr, disc_start, disc_warmup, freeze_encoder, depth,
                        code_dim, init_from, seed) -> None:
    """Train the VQ-GAN tokenizer on the images under DATA."""
    from .tokenizer import TokenizerConfig
    from .train.tokenizer import TokenizerTrainConfig, train_tokenizer

    model_cfg = None
    if init_from:
        model_cfg = TokenizerConfig.from_dict(json.loads((Path(init_from) / "config.json").read_text())["tokenizer"])
    if depth:
        model_cfg = replace(model_cfg or TokenizerConfig(), depth=depth)
    if code_dim:
        model_cfg = replace(model_cfg or TokenizerConfig(), code_dim=code_dim)
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
