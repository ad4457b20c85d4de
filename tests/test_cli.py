"""The command line: the main jobs work, and every bad input ends in one clear line and no output."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vqcodec.cli import main
from vqcodec.defaults import DEFAULT_MODEL, shipped_levels


@pytest.fixture
def photo_png(tmp_path, small_photo):
    path = tmp_path / "photo.png"
    Image.fromarray(small_photo).save(path)
    return path


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def assert_clean_failure(result):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output


def test_compress_info_decompress(tmp_path, photo_png, model):
    vqc, out = tmp_path / "x.vqc", tmp_path / "y.png"
    r = run("compress", photo_png, vqc, "--quality", 2)
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", vqc, "--json").output)
    assert info["width"] == 128 and info["height"] == 96 and info["quality"] == 2
    assert info["tokens"] == 2 * (96 // model.downsample) * (128 // model.downsample)
    assert info["codebook_size"] == model.codebook_size
    assert info["file_bytes"] == vqc.stat().st_size and info["payload_bytes"] < info["file_bytes"]
    assert info["model"] == model.name
    r = run("decompress", vqc, out)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (128, 96)
    assert "bpp" in run("info", vqc).output


def test_uniform_coder_from_the_cli(tmp_path, photo_png):
    vqc = tmp_path / "u.vqc"
    assert run("compress", photo_png, vqc, "--coder", "uniform").exit_code == 0
    assert json.loads(run("info", vqc, "--json").output)["coder"] == "uniform"
    assert run("decompress", vqc, tmp_path / "u.png").exit_code == 0


def test_unreadable_and_non_image_input(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    for src in (text, tmp_path / "missing.png"):
        r = run("compress", src, tmp_path / "out.vqc")
        assert_clean_failure(r)
        assert not (tmp_path / "out.vqc").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "png", "grid-crc"])
def test_damaged_vqc_files_are_one_line_naming_the_file(tmp_path, photo_png, damage):
    import zlib

    vqc, out = tmp_path / "x.vqc", tmp_path / "y.png"
    run("compress", photo_png, vqc)
    data = vqc.read_bytes()
    if damage == "grid-crc":  # a header whose grid checksum the payload does not meet, file CRC intact
        body = data[:17] + bytes(4) + data[21:-4]
        data = body + zlib.crc32(body).to_bytes(4, "big")
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data = data[:20] + bytes([data[20] ^ 0x10]) + data[21:]
    elif damage == "empty":
        data = b""
    else:
        data = photo_png.read_bytes()
    vqc.write_bytes(data)
    commands = [("decompress", vqc, out)] + ([] if damage == "grid-crc" else [("info", vqc)])  # info decodes nothing
    for command in commands:
        r = run(*command)
        assert_clean_failure(r)
        assert r.output.startswith(f"Error: {vqc}: ")
    assert not out.exists()


def test_file_from_another_model(tmp_path, photo_png):
    vqc = tmp_path / "x.vqc"
    run("compress", photo_png, vqc)
    data = bytearray(vqc.read_bytes())
    data[8:12] = b"\xaa\xbb\xcc\xdd"  # another model's id, with a valid checksum
    import zlib
    body = bytes(data[:-4])
    vqc.write_bytes(body + zlib.crc32(body).to_bytes(4, "big"))
    r = run("decompress", vqc, tmp_path / "y.png")
    assert_clean_failure(r)
    assert "aabbccdd" in r.output


def test_unwritable_output_path(tmp_path, photo_png):
    r = run("compress", photo_png, tmp_path / "no-such-dir" / "x.vqc")
    assert_clean_failure(r)
    vqc = tmp_path / "x.vqc"
    run("compress", photo_png, vqc)
    assert_clean_failure(run("decompress", vqc, tmp_path / "no-such-dir" / "y.png"))
    assert list(tmp_path.iterdir()) == sorted([photo_png, vqc]) or set(tmp_path.iterdir()) == {photo_png, vqc}


def test_bad_quality_is_one_line(tmp_path, photo_png):
    assert_clean_failure(run("compress", photo_png, tmp_path / "x.vqc", "--quality", 99))
    r = run("compress", photo_png, tmp_path / "x.vqc", "--quality", 0)
    assert_clean_failure(r)
    assert f"levels are whole numbers from 1 ({DEFAULT_MODEL}: 1 to {shipped_levels()[1]})" in r.output
    assert not (tmp_path / "x.vqc").exists()


def test_rd_lambda_from_the_cli(tmp_path, photo_png):
    sizes = []
    for rd_lambda in ("0", "1"):
        out = tmp_path / f"{rd_lambda}.vqc"
        assert run("compress", photo_png, out, "--rd-lambda", rd_lambda).exit_code == 0
        sizes.append(out.stat().st_size)
    assert sizes[1] < sizes[0]
    assert_clean_failure(run("compress", photo_png, tmp_path / "x.vqc", "--rd-lambda", "-1"))
    assert not (tmp_path / "x.vqc").exists()


def test_sample_writes_a_grid(tmp_path):
    out = tmp_path / "s.png"
    r = run("sample", "-n", 2, "-o", out, "--size", "32x16", "--seed", 3, "--temperature", 0.9, "--top-k", 20)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (64, 16)


def test_complete_writes_completions_side_by_side_or_as_files(tmp_path, photo_png):
    out = tmp_path / "c.png"
    r = run("complete", photo_png, out, "--keep", "left:0.5", "-n", 2, "--seed", 1, "--quiet")
    assert r.exit_code == 0, r.output
    w, h = Image.open(photo_png).size
    assert Image.open(out).size == (2 * w, h)
    r = run("complete", photo_png, "-o", tmp_path / "many", "-n", 2, "--seed", 1, "--top-k", 50, "--quiet")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "many").glob("*.png"))) == 2
    assert "raster order" in run("complete", "--help").output  # the causal prior's limit, said


def test_bad_completions_are_one_line(tmp_path, photo_png):
    for args in (("--keep", "top:0"), ("--keep", "left:1"), ("--keep", "diagonal")):
        assert_clean_failure(run("complete", photo_png, tmp_path / "c.png", *args))
    Image.new("RGB", (8, 8), "white").save(tmp_path / "mask.png")
    assert_clean_failure(run("complete", photo_png, tmp_path / "c.png", "--mask", tmp_path / "mask.png"))
    assert_clean_failure(run("complete", photo_png, tmp_path / "c.png", "-o", tmp_path / "d"))
    assert not (tmp_path / "c.png").exists()


def test_demo(tmp_path):
    out = tmp_path / "demo.png"
    r = run("demo", "-o", out, "--quality", 1)
    assert r.exit_code == 0, r.output
    assert "bpp" in r.output and "PSNR" in r.output and "LPIPS" in r.output
    rows = {line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:6]]
            for line in r.output.splitlines() if line.startswith("| ") and "bytes" not in line}
    assert [name.split()[0] for name in rows] == ["vqcodec", "AVIF", "AVIF"]
    (vq_bytes, *_), (avif_bytes, *_), (half_bytes, *_) = rows.values()
    assert avif_bytes >= vq_bytes or "q=0" in list(rows)[1]  # not smaller, unless AVIF cannot go lower
    assert 0 < half_bytes < 3 * vq_bytes and all(0 < row[3] < 1 for row in rows.values())
    assert Image.open(out).size == (4 * 512, 512 + 30)
    a = np.asarray(Image.open(out))[30:]
    panels = [a[:, k * 512:(k + 1) * 512] for k in range(4)]
    assert all(not np.array_equal(panels[0], p) for p in panels[1:])  # lossy, and pictures everywhere


@pytest.fixture
def vqc_file(tmp_path, photo_png):
    vqc = tmp_path / "x.vqc"
    assert run("compress", photo_png, vqc, "--quality", 1).exit_code == 0
    return vqc


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_permissions_the_umask_gives(tmp_path, photo_png, vqc_file, umask):
    import os

    old = os.umask(umask)
    try:
        assert run("compress", photo_png, tmp_path / "a.vqc", "--quality", 1).exit_code == 0
        assert run("decompress", vqc_file, tmp_path / "a.png").exit_code == 0
    finally:
        os.umask(old)
    for name in ("a.vqc", "a.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_output_that_is_the_input_is_refused(tmp_path, photo_png, vqc_file):
    before = photo_png.read_bytes(), vqc_file.read_bytes()
    assert_clean_failure(run("compress", photo_png, photo_png))
    assert_clean_failure(run("decompress", vqc_file, vqc_file))
    assert_clean_failure(run("compress", photo_png, tmp_path / "." / photo_png.name))
    assert (photo_png.read_bytes(), vqc_file.read_bytes()) == before


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path, vqc_file, monkeypatch):
    import os
    import signal

    def save_then_get_killed(self, fp, format=None, **params):
        Path(fp).write_bytes(b"partial")
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Image.Image, "save", save_then_get_killed)
    r = run("decompress", vqc_file, tmp_path / "y.png")
    assert r.exit_code == 128 + signal.SIGTERM, (r.output, r.exc_info)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["photo.png", "x.vqc"])


def test_the_output_format_follows_the_suffix(tmp_path, vqc_file):
    for suffix, fmt in ((".jpg", "JPEG"), (".webp", "WEBP"), (".png", "PNG"), (".TIF", "TIFF")):
        out = tmp_path / f"y{suffix}"
        assert run("decompress", vqc_file, out).exit_code == 0
        assert Image.open(out).format == fmt
    for name in ("y.xyz", "y"):
        assert_clean_failure(run("decompress", vqc_file, tmp_path / name))
        assert not (tmp_path / name).exists()
    assert_clean_failure(run("sample", "-n", 1, "-o", tmp_path / "s.nope", "--size", "16x16"))
    out = tmp_path / "s.jpg"
    assert run("sample", "-n", 1, "-o", out, "--size", "16x16").exit_code == 0
    assert Image.open(out).format == "JPEG"


def test_max_pixels_from_the_cli(tmp_path, vqc_file):
    assert_clean_failure(run("decompress", vqc_file, tmp_path / "y.png", "--max-pixels", 100))
    assert_clean_failure(run("info", vqc_file, "--max-pixels", 100))
    assert not (tmp_path / "y.png").exists()
    assert run("decompress", vqc_file, tmp_path / "y.png", "--max-pixels", "none").exit_code == 0
    assert_clean_failure(run("decompress", vqc_file, tmp_path / "z.png", "--max-pixels", "lots"))


def test_bad_sampling_options_and_devices_are_one_line(tmp_path, photo_png, vqc_file):
    import torch

    for args in (("--size", "0x0"), ("--temperature", "nan"), ("--temperature", "inf"), ("--top-p", "nan")):
        assert_clean_failure(run("sample", "-n", 1, "-o", tmp_path / "s.png", *args))
    if not torch.cuda.is_available():
        assert_clean_failure(run("compress", photo_png, tmp_path / "c.vqc", "--device", "cuda"))
        assert_clean_failure(run("decompress", vqc_file, tmp_path / "c.png", "--device", "cuda"))
        for args in (("sample", "-n", 1, "-o", tmp_path / "s.png"), ("complete", photo_png, tmp_path / "d.png"),
                     ("demo", "-o", tmp_path / "demo.png"), ("bench", tmp_path, "--codecs", "vqcodec"),
                     ("train", "tokenizer", tmp_path, "--run", tmp_path / "run"),
                     ("train", "prior", tmp_path, "--run", tmp_path / "run")):
            r = run(*args, "--device", "cuda")
            assert_clean_failure(r)
            assert "no CUDA device" in r.output, args


@pytest.mark.parametrize("command", [["compress"], ["decompress"], ["sample"], ["complete"], ["demo"], ["bench"],
                                     ["train", "tokenizer"], ["train", "prior"]])
def test_every_command_that_runs_a_network_takes_a_device(command):
    assert "--device [cpu|cuda]" in run(*command, "--help").output


def test_an_image_over_the_pixel_limit_is_one_line_naming_the_option(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(big)
    for options in (["--max-pixels", 300 * 300 - 1], ["--max-pixels", 1000, "-o", tmp_path / "out"]):
        r = run("compress", big, *([] if "-o" in options else [tmp_path / "big.vqc"]), *options)
        assert r.exit_code != 0 and "--max-pixels" in r.output, r.output
    assert not (tmp_path / "big.vqc").exists() and not list((tmp_path / "out").glob("*.vqc"))
    assert run("compress", big, tmp_path / "big.vqc", "--max-pixels", 300 * 300).exit_code == 0


def test_hostile_headers_are_one_line_for_info_and_decompress(tmp_path, model):
    from vqcodec import bitstream
    from vqcodec.bitstream import Coder, Header

    vqc = tmp_path / "h.vqc"
    for width, height, coder in ((65536, 65536, Coder.UNIFORM), (4096, 4096, Coder.UNIFORM),
                                 (4096, 4096, Coder.PRIOR)):
        grid = (-(-height // model.downsample), -(-width // model.downsample))
        vqc.write_bytes(bitstream.pack(Header(width, height, model.model_id, 2, coder, *grid, 0), b""))
        assert_clean_failure(run("decompress", vqc, tmp_path / "h.png", "--max-pixels", "none"))
        if coder == Coder.UNIFORM:
            assert_clean_failure(run("info", vqc, "--max-pixels", "none"))
        assert not (tmp_path / "h.png").exists()


def test_decompress_says_what_it_wrote_and_quiet_says_nothing(tmp_path, photo_png, vqc_file):
    r = run("decompress", vqc_file, tmp_path / "y.png")
    assert r.exit_code == 0 and "y.png: 128x96 from" in r.output and "bpp" in r.output
    for args in (("compress", photo_png, tmp_path / "q.vqc"), ("decompress", vqc_file, tmp_path / "q.png"),
                 ("sample", "-n", 1, "-o", tmp_path / "s.png", "--size", "16x16")):
        r = CliRunner().invoke(main, [str(a) for a in args] + ["--quiet"])
        assert r.exit_code == 0 and r.output == "", r.output


def test_dash_reads_stdin_and_writes_stdout(tmp_path, photo_png):
    r = CliRunner().invoke(main, ["compress", "-", "-", "--quality", "1"], input=photo_png.read_bytes())
    assert r.exit_code == 0, r.output
    data = r.stdout_bytes
    assert data[:3] == b"VQC" and "bytes" in r.stderr
    r = CliRunner().invoke(main, ["decompress", "-", "-"], input=data)
    assert r.exit_code == 0
    import io
    assert Image.open(io.BytesIO(r.stdout_bytes)).size == (128, 96)
    r = CliRunner().invoke(main, ["compress", "-", tmp_path / "x.vqc"], input=b"not an image")
    assert_clean_failure(r)


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path, astronaut):
    import subprocess
    import sys
    vqc = tmp_path / "a.vqc"
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    assert run("compress", tmp_path / "a.png", vqc, "--quality", 1).exit_code == 0
    # The PNG is larger than a pipe's buffer, so decompress is still writing when the reader goes (`| head`).
    p = subprocess.Popen([sys.executable, "-m", "vqcodec", "decompress", str(vqc), "-"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(8) == b"\x89PNG\r\n\x1a\n"
    p.stdout.close()
    stderr = p.stderr.read()
    assert p.wait(timeout=120) == 1 and stderr == b""


def test_an_existing_output_is_refused_before_any_work_unless_overwrite(tmp_path, photo_png, vqc_file):
    existing = tmp_path / "existing.vqc"
    existing.write_bytes(b"keep me")
    r = run("compress", photo_png, existing)
    assert_clean_failure(r)
    assert "exists: give --overwrite" in r.output and existing.read_bytes() == b"keep me"
    picture = tmp_path / "existing.png"
    picture.write_bytes(b"keep me too")
    r = run("decompress", vqc_file, picture)
    assert_clean_failure(r)
    assert picture.read_bytes() == b"keep me too"
    assert run("compress", photo_png, existing, "--overwrite", "--quality", 1).exit_code == 0
    assert existing.read_bytes()[:3] != b"kee"
    assert run("decompress", vqc_file, picture, "--overwrite").exit_code == 0


def test_compress_refuses_an_image_suffix_and_a_missing_folder_before_any_work(tmp_path, photo_png):
    r = run("compress", photo_png, tmp_path / "out.png")
    assert_clean_failure(r)
    assert ".png names an image format" in r.output and not (tmp_path / "out.png").exists()
    assert run("compress", photo_png, tmp_path / "out.png", "--any-suffix").exit_code == 0  # when the user insists
    assert (tmp_path / "out.png").read_bytes()[:3] == b"VQC"
    r = run("compress", photo_png, tmp_path / "no" / "such" / "out.vqc")
    assert_clean_failure(r)
    assert "does not exist" in r.output


def test_max_bytes_and_target_bpp_write_the_best_file_that_fits_and_say_what_was_chosen(tmp_path, photo_png, model):
    plain = len(__import__("vqcodec").compress(np.asarray(Image.open(photo_png)), quality=2, model=model))
    out = tmp_path / "sized.vqc"
    r = run("compress", photo_png, out, "--max-bytes", plain)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size <= plain and re.search(r"^vqcodec: quality [2-6], rd-lambda [\d.]+ fit the target$",
                                                     r.output, re.M)
    r = run("compress", photo_png, tmp_path / "bpp.vqc", "--target-bpp", 8 * plain / (128 * 96), "--quiet")
    assert r.exit_code == 0 and r.output == ""
    assert (tmp_path / "bpp.vqc").read_bytes() == out.read_bytes()
    r = run("compress", photo_png, "-o", tmp_path / "many", "--max-bytes", plain, "-j", 1)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "many" / "photo.vqc").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("options", [["--max-bytes", 30], ["--max-bytes", 2000, "--quality", 2],
                                     ["--max-bytes", 2000, "--target-bpp", 0.1], ["--target-bpp", 0],
                                     ["--target-bpp", 0.1, "--rd-lambda", 1]])
def test_a_budget_too_small_or_beside_a_quality_is_one_line_and_no_file(tmp_path, photo_png, options):
    assert_clean_failure(run("compress", photo_png, tmp_path / "x.vqc", *options))
    assert not (tmp_path / "x.vqc").exists()


def test_a_refused_command_fails_before_torch_is_imported(tmp_path):
    (tmp_path / "empty.vqc").write_bytes(b"")
    for args in (["info", tmp_path / "missing.vqc"], ["decompress", tmp_path / "empty.vqc", tmp_path / "x.png"],
                 ["compress", tmp_path / "missing.png", tmp_path / "x.vqc"]):
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "vqcodec", *map(str, args)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "Error:" in r.stderr
        assert not re.search(r"\|\s+torch$", r.stderr, re.M), f"{args[0]} imported torch before refusing"


def test_one_wording_per_failure_naming_the_file(tmp_path, photo_png):
    (tmp_path / "empty.vqc").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    cases = [(["compress", tmp_path / "missing.png", tmp_path / "x.vqc"], "missing.png: no such file"),
             (["decompress", tmp_path / "missing.vqc", tmp_path / "x.png"], "missing.vqc: no such file"),
             (["info", tmp_path / "missing.vqc"], "missing.vqc: no such file"),
             (["decompress", tmp_path / "empty.vqc", tmp_path / "x.png"], "empty.vqc: empty file (0 bytes)"),
             (["info", tmp_path / "empty.vqc"], "empty.vqc: empty file (0 bytes)"),
             (["compress", tmp_path / "folder", tmp_path / "x.vqc"], "folder: is a folder (-o DIR"),
             (["decompress", tmp_path / "folder", tmp_path / "x.png"], "folder: is a folder (-o DIR"),
             (["compress", photo_png, tmp_path / "x.vqc", "--max-pixels", 1000],
              "a 128x96 picture (12,288 pixels) is over the limit of 1,000")]
    for args, message in cases:
        r = run(*args)
        assert_clean_failure(r)
        assert message in r.output, r.output
    assert not (tmp_path / "x.vqc").exists() and not (tmp_path / "x.png").exists()
