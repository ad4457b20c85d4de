"""The `vqcodec` command line."""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import click
import numpy as np

from .bitstream import DEFAULT_MAX_PIXELS, FormatError, check_pixels, unpack
from .output import image_format, same_file, save_image, write_atomically
from .images import ConversionWarning, ImageReadError
from .metrics import MetricUnavailable
from .defaults import DEFAULT_MODEL, DEFAULT_RD_LAMBDA, shipped_levels

EXPECTED_ERRORS = (FormatError, ImageReadError, MetricUnavailable, ValueError, OSError)  # ModelNotFound is an OSError


def _say_warning(message, category, filename, lineno, file=None, line=None) -> None:
    prefix = "note" if issubclass(category, ConversionWarning) else "warning"
    click.echo(f"vqcodec: {prefix}: {message}", err=True)


def _exit_on_signal(signum, frame) -> None:
    # SystemExit unwinds through write_atomically, which removes its temporary file.
    raise SystemExit(128 + signum)


class OneLineErrors(click.Group):
    """Turns every failure into one line on stderr and a non-zero exit code; SIGTERM ends the command
    the way Ctrl-C does, leaving no partial output."""

    def invoke(self, ctx: click.Context):
        warnings.showwarning = _say_warning
        warnings.filterwarnings("ignore", module="torchvision")
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _exit_on_signal) if main_thread else None
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader stopped reading (`| head`): quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except EXPECTED_ERRORS as e:
            raise click.ClickException(_one_line(e)) from None
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


def _one_line(e: Exception) -> str:
    """One wording per kind of failure, naming the file."""
    if not isinstance(e, OSError) or not e.filename:
        return str(e)
    if isinstance(e, FileNotFoundError):
        return f"{e.filename}: no such file"
    if isinstance(e, IsADirectoryError):
        return f"{e.filename}: is a folder (-o DIR codes every file under folders)"
    return f"{e.filename}: {e.strerror}"


def _read_vqc(src: str, max_pixels: int | None) -> bytes:
    """A .vqc file's bytes (stdin for '-'), its header and pixel count checked before any model loads;
    a FormatError names the file."""
    data = sys.stdin.buffer.read() if src == STDIO else Path(src).read_bytes()
    try:
        check_pixels(unpack(data)[0], max_pixels)
    except FormatError as e:
        raise type(e)(f"{'stdin' if src == STDIO else src}: {e}") from None
    return data


def refuse_overwriting_input(src: str | Path, dst: str | Path) -> None:
    if same_file(src, dst):
        raise click.ClickException(f"{dst} is the input file: choose another output path")


def need_extra(command: str, *modules: str) -> None:
    """Refuse, in one line, a command whose optional packages (the 'bench' extra) are missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(f"vqcodec {command} needs {', '.join(missing)}: pip install 'vqcodec[bench]'")


def check_device(device: str) -> str:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.ClickException("--device cuda: no CUDA device is available here (use --device cpu)")
    return device


class IntList(click.ParamType):
    """Positive integers separated by commas: 1,2,2,2."""
    name = "N,N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            numbers = ()
        if not numbers or min(numbers) < 1:
            self.fail(f"expected positive integers separated by commas, got {value!r}", param, ctx)
        return numbers


class Level(click.ParamType):
    """A quality level: a whole number from 1; the model checks its own top level."""
    name = "LEVEL"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        try:
            level = int(value)
        except ValueError:
            level = 0
        if level < 1:
            top = shipped_levels()[1]
            self.fail(f"levels are whole numbers from 1 ({DEFAULT_MODEL}: 1 to {top}), got {value!r}", param, ctx)
        return level


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
                        help="Refuse larger pictures, from the file's header before any work ('none': no "
                             "limit; the default is twice Pillow's decompression-bomb threshold).")(f)


@click.group(cls=OneLineErrors)
@click.version_option(package_name="vqcodec")
def main() -> None:
    """vqcodec: a learned image codec (VQ-GAN tokens + transformer prior + range coding)."""


STDIO = "-"
DEVICE = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                      help="Where the networks run; files are the same either way (integer prior).")
QUIET = click.option("--quiet", is_flag=True, help="Print nothing on success; no progress bars.")


def _many_options(f):
    f = click.option("--out-dir", "-o", type=click.Path(file_okay=False), default=None,
                     help="Output folder: every PATH is an input (file or folder; folders keep their "
                          "relative paths) and outputs are named after them.")(f)
    f = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                     help="Worker processes with -o [default: the number of cores]; each gets cores/jobs "
                          "torch threads.")(f)
    f = click.option("--overwrite", is_flag=True, help="Replace outputs that exist (DST, or files under -o).")(f)
    return click.option("--skip-existing", is_flag=True, help="With -o: leave outputs that exist alone.")(f)


def _one_source_and_target(paths: tuple[str, ...], what: str, overwrite: bool) -> tuple[str, str]:
    """SRC and DST, checked before any work: DST is not SRC, its folder exists, and it exists only
    where --overwrite says to replace it."""
    if len(paths) != 2:
        raise click.UsageError(f"give SRC and DST, or inputs and --out-dir ({len(paths)} path(s) given for {what})")
    src, dst = paths
    if STDIO not in (src, dst):
        refuse_overwriting_input(src, dst)
    if dst != STDIO:
        if not Path(dst).absolute().parent.is_dir():
            raise click.ClickException(f"{dst}: its folder {Path(dst).absolute().parent} does not exist")
        if Path(dst).exists() and not overwrite:
            raise click.ClickException(f"{dst} exists: give --overwrite to replace it")
    return src, dst


def _refuse_image_suffix(dst: str) -> None:
    """A .vqc file under an image format's name would mislead every tool that trusts the suffix."""
    suffix = Path(dst).suffix.lower()
    if dst == STDIO or suffix == ".vqc":  # .vqc is an image format too where the Pillow plugin is registered
        return
    try:
        image_format(dst)
    except ValueError:
        return
    raise click.ClickException(f"{dst}: {suffix} names an image format, but compress writes a .vqc file; name it "
                               ".vqc (or give --any-suffix)")


def _report_many(results, quiet: bool) -> None:
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        click.echo(f"vqcodec: {r.source}: {r.error}", err=True)
    if not quiet:
        written = [r for r in results if r.status == "written"]
        skipped = len(results) - len(written) - len(failed)
        pixels = sum(r.pixels for r in written)
        vqc_bytes = sum(r.target_bytes if r.target.suffix == ".vqc" else r.source_bytes for r in written)
        rate = f", {8 * vqc_bytes / pixels:.4f} bpp over the written files" if pixels else ""
        existed = sum("--overwrite replaces it" in r.error for r in failed)
        flags = f"; {existed} existed: --overwrite replaces them, --skip-existing leaves them" if existed else ""
        click.echo(f"{len(results)} file(s): {len(written)} written, {skipped} skipped, {len(failed)} failed{rate}{flags}")
    if failed:
        raise SystemExit(1)


def _check_size_options(max_bytes: int | None, target_bpp: float | None, quality: int | None, rd_lambda: float,
                        coder: str) -> None:
    """--max-bytes and --target-bpp choose the level and rd-lambda themselves, with the prior coder."""
    if max_bytes is not None and target_bpp is not None:
        raise click.UsageError("give --max-bytes or --target-bpp, not both")
    clash = [name for name, given in (("--quality", quality is not None), ("--rd-lambda", rd_lambda != DEFAULT_RD_LAMBDA),
                                      ("--coder uniform", coder != "prior")) if given]
    if clash:
        raise click.UsageError(f"{' and '.join(clash)} cannot go with {'--max-bytes' if max_bytes else '--target-bpp'}, "
                               "which chooses the level and rd-lambda itself")


def _levels_help() -> str:
    levels = shipped_levels()
    return f"Quality level, 1 (smallest) to {levels[1]} [default: {levels[0]}, for {DEFAULT_MODEL}]."


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="SRC DST | PATH... -o DIR")
@click.option("--quality", "-q", type=Level(), default=None, help=_levels_help())
@click.option("--model", "-m", default=None, help=f"Shipped model name or model folder [default: {DEFAULT_MODEL}].")
@DEVICE
@click.option("--coder", type=click.Choice(["prior", "uniform"]), default="prior", show_default=True,
              help="uniform: no prior, log2 K bits per index (for comparison).")
@click.option("--rd-lambda", type=float, default=DEFAULT_RD_LAMBDA, show_default=True,
              help="What a bit is worth when the encoder picks codes, >= 0: larger gives smaller files; 0: closest codes.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None,
              help="The best file no larger than this (the level and rd-lambda are chosen for it).")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The best file no larger than this many bits per pixel (as --max-bytes).")
@_max_pixels_option
@click.option("--any-suffix", is_flag=True, help="Write DST under any name, also one an image format's suffix names.")
@_many_options
@QUIET
def compress(paths: tuple[str, ...], quality: int | None, model: str | None, device: str, coder: str,
             rd_lambda: float, max_bytes: int | None, target_bpp: float | None, max_pixels: int | None,
             any_suffix: bool, out_dir: str | None, jobs: int | None, overwrite: bool, skip_existing: bool,
             quiet: bool) -> None:
    """Compress image SRC into the .vqc file DST ('-': stdin / stdout), or every image PATH (files and
    folders) into the folder DIR."""
    sized = max_bytes is not None or target_bpp is not None
    if sized:
        _check_size_options(max_bytes, target_bpp, quality, rd_lambda, coder)
    if out_dir is not None:
        from .batch import compress_many

        if coder != "prior":
            raise click.UsageError("--coder uniform is for single files")
        check_device(device)
        _report_many(compress_many(paths, out_dir, quality, model, device, rd_lambda, jobs, overwrite,
                                   skip_existing, progress=not quiet, max_bytes=max_bytes, target_bpp=target_bpp,
                                   max_pixels=max_pixels),
                     quiet)
        return
    from .images import open_image, to_rgb

    src, dst = _one_source_and_target(paths, "compress", overwrite)
    if not any_suffix:
        _refuse_image_suffix(dst)
    rgb = to_rgb(open_image(io.BytesIO(sys.stdin.buffer.read()) if src == STDIO else src,
                            "stdin" if src == STDIO else src, max_pixels))
    from .codec import compress as _compress, compress_to_size  # torch: only once the input is known good

    if sized:
        result = compress_to_size(rgb, max_bytes, target_bpp, model=model, device=check_device(device))
        data = result.data
        if not quiet:
            click.echo(f"vqcodec: quality {result.quality}, rd-lambda {result.rd_lambda:.3g} fit the target", err=True)
    else:
        data = _compress(rgb, quality=quality, model=model, device=check_device(device), coder=coder,
                         rd_lambda=rd_lambda)
    if dst == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomically(dst, lambda tmp: Path(tmp).write_bytes(data), replace=overwrite)
    if not quiet:
        click.echo(f"{dst}: {len(data)} bytes, {8 * len(data) / (rgb.shape[0] * rgb.shape[1]):.4f} bpp",
                   err=dst == STDIO)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="SRC DST | PATH... -o DIR")
@click.option("--model", "-m", default=None, help="Model folder, when the file was not made by a shipped model.")
@DEVICE
@_max_pixels_option
@click.option("--suffix", default=".png", show_default=True,
              help="With -o: the image format of the outputs, by suffix (.png, .jpg, .webp, ...).")
@_many_options
@QUIET
def decompress(paths: tuple[str, ...], model: str | None, device: str, max_pixels: int | None, suffix: str,
               out_dir: str | None, jobs: int | None, overwrite: bool, skip_existing: bool, quiet: bool) -> None:
    """Decompress the .vqc file SRC into the image DST, its suffix naming the format ('-': stdin / PNG
    on stdout), or every .vqc PATH (files and folders) into the folder DIR."""
    if out_dir is not None:
        from .batch import decompress_many

        image_format(f"x{suffix}")
        check_device(device)
        _report_many(decompress_many(paths, out_dir, suffix, model, device, max_pixels, jobs, overwrite,
                                     skip_existing, progress=not quiet), quiet)
        return
    src, dst = _one_source_and_target(paths, "decompress", overwrite)
    if dst != STDIO:
        image_format(dst)
    data = _read_vqc(src, max_pixels)
    from .codec import decompress as _decompress  # torch: only once the file's header is known good

    try:
        image = _decompress(data, model=model, device=check_device(device), max_pixels=max_pixels)
    except FormatError as e:  # a payload that fails its checksum, a model that does not read it, ...
        raise type(e)(f"{'stdin' if src == STDIO else src}: {e}") from None
    if dst == STDIO:
        image.save(sys.stdout.buffer, format="PNG")
        sys.stdout.buffer.flush()
    else:
        save_image(image, dst, replace=overwrite)
    if not quiet:
        click.echo(f"{dst}: {image.width}x{image.height} from {len(data)} bytes "
                   f"({8 * len(data) / (image.width * image.height):.4f} bpp)", err=dst == STDIO)


@main.command()
@click.argument("src")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_max_pixels_option
def info(src: str, as_json: bool, max_pixels: int | None) -> None:
    """Describe the .vqc file SRC (checked as far as possible without decoding it)."""
    data = _read_vqc(src, max_pixels)
    from .codec import describe  # torch: only once the file's header is known good

    d = describe(data, max_pixels)
    if as_json:
        click.echo(json.dumps(d))
        return
    for key, value in d.items():
        if key == "retired":
            continue
        if key in ("model", "made_by") and value is None:
            value = f"(no longer shipped: {d['retired']})" if d["retired"] else "(not a shipped model)"
        click.echo(f"{key:14s} {value:.4f}" if isinstance(value, float) else f"{key:14s} {value}")


def _drawing_options(f):
    """How sample and complete draw from the prior, and with which model."""
    for option in reversed([
        click.option("--temperature", type=float, default=1.0, show_default=True,
                     help="Divides the prior's log-probabilities, > 0: below 1 plainer, above 1 wilder."),
        click.option("--top-k", type=click.IntRange(min=1), default=None,
                     help="Draw from the k most likely codes only [default: all]."),
        click.option("--top-p", type=float, default=None,
                     help="Draw from the most likely codes that make up this share of probability, in (0, 1] [default: 1]."),
        click.option("--model", "-m", default=None, help=f"Shipped model name or model folder [default: {DEFAULT_MODEL}]."),
        DEVICE,
    ]):
        f = option(f)
    return f


@main.command()
@click.option("-n", "count", type=int, default=4, show_default=True, help="Number of images.")
@click.option("-o", "--out", "dst", required=True, help="Output PNG (a grid of the samples).")
@click.option("--size", default="256x256", show_default=True,
              help="WIDTHxHEIGHT of each sample; beyond 256 px a side the prior's window slides (slow).")
@click.option("--quality", "-q", type=Level(), default=None, help=_levels_help())
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed draws the same images.")
@_drawing_options
@QUIET
def sample(count: int, dst: str, size: str, quality: int | None, seed: int, temperature: float,
           top_k: int | None, top_p: float | None, model: str | None, device: str, quiet: bool) -> None:
    """Draw images from the prior (unconditional generation)."""
    from .generate import image_grid, sample as _sample

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {size!r}", param_hint="--size") from None
    if width < 1 or height < 1:
        raise click.BadParameter(f"width and height must be at least 1, got {size!r}", param_hint="--size")
    image_format(dst)
    images = _sample(count, (width, height), quality, temperature, top_k, top_p, seed, model, check_device(device),
                     progress=not quiet)
    save_image(image_grid(images, min(count, 4)), dst)
    if not quiet:
        click.echo(f"{dst}: {count} samples of {width}x{height}")


@main.command()
@click.argument("src")
@click.argument("dst", required=False)
@click.option("--keep", default="top:0.5", show_default=True,
              help="What of SRC to keep: top:F (the top F of its rows) or left:F (the left F of its columns).")
@click.option("--mask", default=None, type=click.Path(exists=True, dir_okay=False),
              help="A mask picture of SRC's size instead of --keep: white = keep.")
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True, help="Number of completions.")
@click.option("-o", "--out-dir", "out_dir", default=None, help="Write the completions as N files into this folder.")
@click.option("--quality", "-q", type=Level(), default=None, help=_levels_help())
@click.option("--seed", type=int, default=None, help="Random seed: the same seed draws the same completions [default: fresh].")
@_drawing_options
@QUIET
def complete(src: str, dst: str | None, keep: str, mask: str | None, count: int, out_dir: str | None,
             quality: int | None, seed: int | None, temperature: float, top_k: int | None, top_p: float | None,
             model: str | None, device: str, quiet: bool) -> None:
    """Keep part of the picture SRC and let the prior draw the rest; N completions side by side in DST
    (a PNG), or N files in --out-dir.

    The prior reads the token grid in raster order (row by row, left to right) and sees only what comes
    before a token: a kept region steers only what follows it. With top:F the bottom follows the top;
    with left:F each row's right part follows its kept left part and the rows above, but nothing can
    follow what is kept lower down. A 16 x 16-pixel token is kept where at least half its pixels are."""
    from .generate import complete as _complete, image_grid

    if (dst is None) == (out_dir is None):
        raise click.UsageError("give DST (one PNG of all completions) or --out-dir (one file each), not both")
    if dst:
        image_format(dst)
    results = _complete(src, mask if mask else keep, count, seed, quality, temperature, top_k, top_p, model,
                        check_device(device), progress=not quiet)
    if dst:
        save_image(image_grid(results, min(count, 4)), dst)
        written = dst
    else:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for k, im in enumerate(results):
            save_image(im, str(Path(out_dir) / f"{Path(src).stem}-completion-{k}.png"))
        written = f"{out_dir}/ ({count} files)"
    if not quiet:
        click.echo(f"{written}: {count} completion(s) of {src}, keeping {mask or keep}")


@main.command()
@click.option("-o", "--out", "dst", default="vqcodec-demo.png", show_default=True, help="Side-by-side PNG.")
@click.option("--quality", "-q", type=Level(), default=None, help=_levels_help())
@click.option("--model", "-m", default=None, help=f"Shipped model name or model folder [default: {DEFAULT_MODEL}].")
@DEVICE
def demo(dst: str, quality: int | None, model: str | None, device: str) -> None:
    """Compress and decompress scikit-image's astronaut, and show it beside AVIF at the nearest size not
    smaller than vqcodec's and AVIF of the half-size picture scaled back up at the nearest size: one
    labelled PNG and the same table."""
    from PIL import Image, ImageDraw
    need_extra("demo", "skimage")
    from skimage import data as skdata

    from .bench import codec_named, match_size
    from .codec import compress as _compress, decompress as _decompress, describe
    from .metrics import load_lpips, lpips_distance, psnr
    from .zoo import load_model

    image_format(dst)
    model = load_model(model, check_device(device))
    original = skdata.astronaut()
    h, w = original.shape[:2]
    t0 = time.perf_counter()
    blob = _compress(original, quality=quality, model=model)
    t1 = time.perf_counter()
    decoded = np.asarray(_decompress(blob, model=model).convert("RGB"))
    t2 = time.perf_counter()
    click.echo(f"vqcodec: encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")
    avif, half = codec_named("avif"), codec_named("avif@1/2")
    setting, avif_file = match_size(avif, original, len(blob), not_smaller=True)
    half_setting, half_file = match_size(half, original, len(blob))
    panels = [("original", original, None), (f"vqcodec level {describe(blob)['quality']}", decoded, blob),
              (f"AVIF q={setting}", avif.decode(avif_file, (h, w)), avif_file),
              (f"AVIF 1/2 size q={half_setting}", half.decode(half_file, (h, w)), half_file)]
    try:
        lpips_model = load_lpips()
    except MetricUnavailable as e:
        lpips_model = None
        click.echo(f"LPIPS not computed: {e}")
    click.echo(f"astronaut {w}x{h}\n| | bytes | bpp | PSNR dB | LPIPS |\n|---|---|---|---|---|")
    sheet = Image.new("RGB", (len(panels) * w, h + 30), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, picture, data) in enumerate(panels):
        sheet.paste(Image.fromarray(picture), (k * w, 30))
        if data is None:
            label = f"{name} {w}x{h}"
        else:
            score = f"{lpips_distance(lpips_model, original, picture):.3f}" if lpips_model else "n/a"
            numbers = (f"{len(data)} | {8 * len(data) / (w * h):.4f} | {psnr(original, picture):.2f} | {score}")
            click.echo(f"| {name} | {numbers} |")
            label = f"{name}: " + numbers.replace(" | ", " B, ", 1).replace(" | ", " bpp, PSNR ", 1).replace(
                " | ", " dB, LPIPS ", 1)
        draw.text((k * w + 4, 8), label, fill="black")
    save_image(sheet, dst)
    click.echo(f"{dst}: original | vqcodec | AVIF | AVIF of the half-size picture, scaled back up")


@main.command()
@click.argument("folder")
@click.option("--codecs", default="vqcodec,jpeg,webp,avif,jp2", show_default=True,
              help="Comma-separated: vqcodec, jpeg, webp, avif, jp2; CODEC@1/N codes the picture shrunk N times "
                   "(Lanczos) and scales it back up (e.g. avif@1/2), bpp over the full-size pixels.")
@click.option("--out", "out", default="bench-results", show_default=True, help="Results folder.")
@click.option("--model", "-m", default=None, help="vqcodec model name or folder.")
@click.option("--grid-image", default=None,
              help="File name(s), comma-separated, of the images for the comparison grid [default: the first].")
@click.option("--grid-codecs", default=None,
              help="Comma-separated codecs shown beside vqcodec in the comparison grid [default: all benchmarked].")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes measuring in parallel; each gets cores/jobs torch threads, so the timing "
                   "columns are those of a process sharing the machine.")
@DEVICE
@QUIET
def bench(folder: str, codecs: str, out: str, model: str | None, grid_image: str | None,
          grid_codecs: str | None, jobs: int, device: str, quiet: bool) -> None:
    """Rate-distortion benchmark of the images under FOLDER: CSV, JSON, markdown, plots, BD-rates."""
    need_extra("bench", "lpips", "matplotlib", "scipy", "skimage")
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    from .bench import run_bench, write_report

    names = [c.strip() for c in codecs.split(",") if c.strip()]
    shown = ["vqcodec"] + [c.strip() for c in grid_codecs.split(",") if c.strip()] if grid_codecs else None
    if shown and not set(shown) <= set(names):
        raise click.ClickException(f"--grid-codecs {grid_codecs}: the grid can only show benchmarked codecs ({codecs})")
    rows = run_bench(folder, names, out, model, log=lambda m: click.echo(f"vqcodec: {m}", err=True), jobs=jobs,
                     device=check_device(device))
    if not rows:
        raise click.ClickException(f"no readable images under {folder}")
    command = "vqcodec bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else f"vqcodec bench {folder}"
    grid_images = [g.strip() for g in grid_image.split(",")] if grid_image else None
    write_report(rows, out, names, folder, command, model, grid_images, shown, device=device)
    if not quiet:
        click.echo(Path(out, "results.md").read_text())


@main.group()
def train() -> None:
    """Train a tokenizer, then a prior, then export them as a model folder."""


@train.command("tokenizer")
@click.argument("data", nargs=-1, required=True)
@click.option("--run", "out", default=None,
              help="Scratch folder for exact checkpoints (with the optimizers) and logs; resumed if present.")
@click.option("--resume", "state", default=None, type=click.Path(file_okay=False),
              help="The run's lasting state (e.g. eval/runs/vqgan-f16): fp16 weights + state.json, written with every "
                   "checkpoint and resumed (a warm restart) when newer than --run's. Its state.json holds the run's "
                   "config; the options given here change this stretch only.")
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True, help="Total steps of the run (its learning-rate schedule ends here).")
@click.option("--minutes", type=float, default=0.0, help="Stop with a checkpoint after this much wall time in all.")
@click.option("--stretch-minutes", type=float, default=0.0,
              help="Stop with a checkpoint after this much wall time in this process.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Crops per step (per process under torchrun).")
@click.option("--crop", type=click.IntRange(min=16), default=128, show_default=True, help="Side of the square training crops, in pixels.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Adam learning rate after the warm-up.")
@click.option("--decay-from", type=click.IntRange(min=0), default=0, show_default=True,
              help="From this step the learning rate falls along a cosine to 0 at --steps (0: it stays constant).")
@click.option("--disc-start", type=int, default=2000, show_default=True, help="Step that switches the GAN loss on.")
@click.option("--disc-warmup", type=int, default=0, show_default=True,
              help="Steps the discriminator trains alone before --disc-start.")
@click.option("--disc-weight", type=float, default=0.8, show_default=True,
              help="The GAN term's weight times the adaptive lambda (taming: 0.8).")
@click.option("--discriminator", type=click.Choice(["patchgan", "projected"]), default="patchgan", show_default=True,
              help="patchgan: taming's PatchGAN on pixels; projected: small heads on LPIPS's frozen AlexNet "
                   "features (useful after far fewer steps).")
@click.option("--freeze-encoder", is_flag=True, help="Train the decoder only (token grids stay fixed).")
@click.option("--mse-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of a squared-error term beside L1 and LPIPS (pixels in [-1, 1]): it asks for PSNR.")
@click.option("--depth", type=int, default=None, help="Residual depths (= quality levels) of a new run [default: 4].")
@click.option("--code-dim", type=int, default=None,
              help="Dimension of the quantized latent of a new run [default: 32, or --init-from's]; wider than "
                   "--init-from's keeps its weights and re-initialises the codebooks.")
@click.option("--decoder-blocks", type=IntList(), default=None,
              help="ResBlocks per decoder resolution of a new run, lowest first, e.g. 1,2,2,2 [default: one "
                   "each, or --init-from's]; more than --init-from's keep its output: the added blocks start "
                   "as identities.")
@click.option("--new-code-scale", type=float, default=0.1, show_default=True,
              help="With a wider --code-dim than --init-from's: the new encoder outputs start at this times "
                   "their fresh initialisation (the decoder ignores them at first either way).")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Start a new run from the tokenizer of this model folder (e.g. vqcodec/weights/vqc-v3) or "
                   "lasting state (e.g. eval/runs/vqgan-f16); "
                   "depths beyond its own are k-means initialised.")
@click.option("--ancestor-pixels", type=click.IntRange(min=0), default=0, show_default=True,
              help="Training pixels --init-from's weights had seen (counted into the run's train_pixels).")
@click.option("--held-out-every", type=click.IntRange(min=0), default=20, show_default=True,
              help="Never train on every n-th image of DATA (sorted): the held-out pictures (0: train on all).")
@click.option("--eval-every", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Score the held-out pictures every this many steps into the log and the state (0: never).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="bf16: the networks under bf16 autocast (fast on GPUs and on CPUs with AMX, slow on other CPUs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the crops and the initialisation.")
@DEVICE
@click.pass_context
def train_tokenizer_cmd(ctx, data, out, state, steps, minutes, stretch_minutes, batch, crop, lr, decay_from,
                        disc_start, disc_warmup, disc_weight, discriminator, freeze_encoder, mse_weight, depth,
                        code_dim, decoder_blocks, new_code_scale, init_from, ancestor_pixels, held_out_every, eval_every, precision,
                        seed, device) -> None:
    """Train the VQ-GAN tokenizer on the images under the folder(s) DATA (each keeps its own held-out
    pictures; the first folder's are scored)."""
    from .tokenizer import TokenizerConfig
    need_extra("train", "lpips")
    from .train import state as lasting
    from .families import read_tokenizer_config
    from .train.tokenizer import TokenizerTrainConfig, train_tokenizer

    if not (out or state):
        raise click.UsageError("give --run, --resume or both")
    options = dict(steps=steps, minutes=minutes, stretch_minutes=stretch_minutes, batch=batch, crop=crop, lr=lr,
                   decay_from=decay_from, disc_start=disc_start, disc_warmup=disc_warmup, disc_weight=disc_weight,
                   discriminator=discriminator, freeze_encoder=freeze_encoder, mse_weight=mse_weight,
                   init_from=init_from or "",
                   new_code_scale=new_code_scale, ancestor_pixels=ancestor_pixels,
                   held_out_every=held_out_every, eval_every=eval_every, precision=precision, seed=seed)
    model_cfg = run_cfg = None
    places = dict(data=os.pathsep.join(data), out=out or "", state=state or "", device=check_device(device))
    if state and lasting.has_state(Path(state)):  # the run's own config; the options given change this stretch
        given = {k: v for k, v in options.items()
                 if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
        if depth or code_dim or decoder_blocks or "init_from" in given:
            raise click.UsageError(f"{state} is a run under way: its model is set (no --depth, --code-dim, "
                                   "--decoder-blocks, --init-from)")
        run_cfg = TokenizerTrainConfig(**{**lasting.read_record(Path(state))["train"], "out": places["out"],
                                          "state": places["state"],
                                          "minutes": 0.0, "stretch_minutes": 0.0, "stop_after": 0})
        options = {**asdict(run_cfg), **given, "stretch_minutes": stretch_minutes}
    else:
        if init_from:
            model_cfg = read_tokenizer_config(init_from)
        if depth:
            model_cfg = replace(model_cfg or TokenizerConfig(), depth=depth)
        if code_dim:
            model_cfg = replace(model_cfg or TokenizerConfig(), code_dim=code_dim)
        if decoder_blocks:
            model_cfg = replace(model_cfg or TokenizerConfig(), decoder_blocks=decoder_blocks)
    options.update(places)
    train_tokenizer(TokenizerTrainConfig(**options), model_cfg, run_cfg)


@train.command("prior")
@click.argument("data")
@click.option("--run", "out", required=True, help="Run folder holding the trained tokenizer.")
@click.option("--steps", type=click.IntRange(min=1), default=6000, show_default=True,
              help="Total steps of the run (its cosine schedule ends here).")
@click.option("--minutes", type=float, default=0.0, show_default=True,
              help="Stop with a checkpoint after this much wall time in all (0: no limit).")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Token tiles per step.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the tile draws and the initialisation.")
@click.option("--tokenizer", type=click.Path(exists=True, file_okay=False), default=None,
              help="The folder of the tokenizer whose grids the prior learns: a run folder or a lasting state "
                   "(e.g. eval/runs/vqgan-f16; copy it first if it trains on) [default: --run].")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="bf16: the training steps under bf16 autocast (fast on GPUs and on CPUs with AMX); the "
                   "held-out bits are measured in fp32.")
@click.option("--resume", "state", type=click.Path(file_okay=False), default=None,
              help="The prior's lasting state (e.g. eval/runs/vqgan-f16-prior): fp16 weights + state.json, written with "
                   "every checkpoint and resumed (a warm restart) when newer than --run's; refused for the "
                   "grids of another encoder.")
@click.option("--init", type=click.Path(exists=True, file_okay=False), default=None,
              help="A prior's lasting state whose weights start the run when there is nothing to resume (e.g. "
                   "the prior of the tokenizer's earlier step: nearby grids are learnt in far fewer steps).")
@DEVICE
def train_prior_cmd(data, out, steps, minutes, batch, seed, tokenizer, precision, state, init, device) -> None:
    """Train the transformer prior on token grids of the images under DATA."""
    from .train.prior import PriorTrainConfig, train_prior

    train_prior(PriorTrainConfig(data=data, out=out, steps=steps, minutes=minutes, batch=batch, seed=seed,
                                 tokenizer=tokenizer or "", precision=precision, state=state or "",
                                 init=init or "", device=check_device(device)))


@train.command("export")
@click.argument("run")
@click.argument("dst")
@click.option("--default-quality", type=click.IntRange(min=1), default=2, show_default=True, help="The level compress uses when none is given.")
@click.option("--reads-files-of", type=click.Path(exists=True, file_okay=False), default=None,
              help="An earlier model folder whose files the new model decodes: allowed when the run kept its "
                   "codebooks and prior (a decoder-only run), checked.")
@click.option("--tokenizer", type=click.Path(exists=True, file_okay=False), default=None,
              help="The tokenizer's folder, as given to train prior [default: RUN].")
def export_cmd(run: str, dst: str, default_quality: int, reads_files_of: str | None, tokenizer: str | None) -> None:
    """Write the model of run folder RUN into the model folder DST (fp16 safetensors + config)."""
    from .train.export import export_run

    identity = export_run(Path(run), Path(dst), default_quality, Path(reads_files_of) if reads_files_of else None,
                          Path(tokenizer) if tokenizer else None)
    click.echo(f"{dst}: model {identity[:4].hex()} (sha256 {identity.hex()})")


@train.command("hierarchy")
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--resume", "state", required=True, type=click.Path(file_okay=False),
              help="The hierarchy's lasting state (e.g. eval/runs/vqgan-f16-f8): resumed when it exists (a warm "
                   "restart), rewritten every 100 steps and at the end.")
@click.option("--tokenizer", type=click.Path(exists=True, file_okay=False), default=None,
              help="A new state's f16 tokenizer, frozen under the fine side, or one an existing state moves onto "
                   "(of the same layout; the fine side carries over): a model folder or a lasting state.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="The stretch's budget, over which the learning rate falls along a cosine: CPU minutes of "
                   "this process on a CPU, wall minutes on a GPU.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="The fine side's peak learning rate.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Crops per step.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the crop draws and the fine depths.")
@click.option("--synthesis-blocks", type=click.IntRange(min=1), default=None,
              help="Grow the fine synthesis to this many ResBlocks; the added ones start as identities, so the "
                   "pictures start unchanged [default: as the state has it; 1 for a new state].")
@click.option("--refine-width", type=click.IntRange(min=1), default=None,
              help="Give the fine synthesis an f4 stage of this many channels, which corrects its 8x8 blocks "
                   "across their edges; it starts at zero, so the pictures start unchanged [default: as the "
                   "state has it; none for a new state].")
@click.option("--reuse", type=click.IntRange(min=1), default=1, show_default=True,
              help="Steps each batch of crops trains: the frozen f16 side's pass over a batch, most of a step's "
                   "compute, is then made once for that many steps.")
@click.option("--own-decoder", is_flag=True, default=False,
              help="Give the fine side its own copy of the f16 decoder, trained with it, to draw the picture "
                   "under the detail (the coarse levels alone keep the tokenizer's); it starts as the "
                   "tokenizer's, so the pictures start unchanged [default: as the state has it].")
@click.option("--decoder-lr", type=click.FloatRange(min=0, min_open=True), default=5e-5, show_default=True,
              help="The peak learning rate of the fine side's own f16 decoder.")
@click.option("--mse-weight", type=click.FloatRange(min=0), default=None,
              help="Weight of a squared-error term beside L1 and LPIPS (pixels in [-1, 1]): it asks for PSNR "
                   "[default: as the state's last stretch had it; 0 for a new state].")
@DEVICE
@QUIET
def train_hierarchy_cmd(data, state, tokenizer, minutes, lr, batch, seed, synthesis_blocks, refine_width, reuse,
                        own_decoder, decoder_lr, mse_weight, device, quiet) -> None:
    """Train a hierarchy's fine side (an f8 grid over a frozen f16 tokenizer) on the pictures under DATA
    (folders, each keeping its every 20th picture out)."""
    from .train.hierarchy import HierarchyTrainConfig, train_hierarchy

    try:
        record = train_hierarchy(HierarchyTrainConfig(data=tuple(data), state=state, tokenizer=tokenizer or "",
                                                      minutes=minutes, lr=lr, batch=batch, seed=seed,
                                                      synthesis_blocks=synthesis_blocks or 0,
                                                      refine_width=refine_width or 0, reuse=reuse,
                                                      own_decoder=own_decoder, decoder_lr=decoder_lr,
                                                      mse_weight=mse_weight, device=check_device(device),
                                                      quiet=quiet))
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    if not quiet:
        click.echo(f"{state}: step {record.get('step', 0)}, {record.get('train_pixels', 0):,} training pixels")


@train.command("export-hierarchy")
@click.argument("hierarchy", type=click.Path(exists=True, file_okay=False))
@click.argument("coarse_model", type=click.Path(exists=True, file_okay=False))
@click.argument("fine_prior", type=click.Path(exists=True, file_okay=False))
@click.argument("dst")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="A training folder the fine prior trained on (repeat for several): its grids calibrate it.")
@click.option("--cache", required=True, type=click.Path(file_okay=False),
              help="The scratch folder of those grids (as given to python -m vqcodec.train.fineprior).")
@click.option("--default-quality", type=click.IntRange(min=1), default=2, show_default=True,
              help="The level compress uses when none is given.")
def export_hierarchy_cmd(hierarchy: str, coarse_model: str, fine_prior: str, dst: str, data: tuple[str, ...],
                         cache: str, default_quality: int) -> None:
    """Write a hierarchy's model folder DST: the tokenizer and fine side of the lasting state HIERARCHY,
    the prior of model folder COARSE_MODEL for its coarse grids, and the fine grid's prior of the lasting
    state FINE_PRIOR."""
    from .train.export import export_hierarchy

    identity = export_hierarchy(Path(hierarchy), Path(coarse_model), Path(fine_prior), Path(dst), default_quality,
                                [Path(d) for d in data], Path(cache))
    click.echo(f"{dst}: model {identity[:4].hex()} (sha256 {identity.hex()})")


@train.command("export-decoder")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("tokenizer", type=click.Path(exists=True, file_okay=False))
@click.argument("dst")
def export_decoder_cmd(model: str, tokenizer: str, dst: str) -> None:
    """Write model folder MODEL into DST with the decoder of TOKENIZER (a run folder or lasting state that
    trained MODEL's decoder only): same grids, same prior, and DST decodes MODEL's files."""
    from .train.export import export_decoder

    identity = export_decoder(Path(model), Path(tokenizer), Path(dst))
    click.echo(f"{dst}: model {identity[:4].hex()} (sha256 {identity.hex()}), reads the files of {model}")


if __name__ == "__main__":
    sys.exit(main())
