"""The command line: the main jobs work, and every bad input ends in one clear line and no output."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vqcodec.cli import main


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


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "png"])
def test_damaged_vqc_files(tmp_path, photo_png, damage):
    vqc, out = tmp_path / "x.vqc", tmp_path / "y.png"
    run("compress", photo_png, vqc)
    data = vqc.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data = data[:20] + bytes([data[20] ^ 0x10]) + data[21:]
    elif damage == "empty":
        data = b""
    else:
        data = photo_png.read_bytes()
    vqc.write_bytes(data)
    assert_clean_failure(run("decompress", vqc, out))
    assert_clean_failure(run("info", vqc))
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


def test_demo(tmp_path):
    out = tmp_path / "demo.png"
    r = run("demo", "-o", out, "--quality", 1)
    assert r.exit_code == 0, r.output
    assert "bpp" in r.output and "PSNR" in r.output
    assert Image.open(out).size == (1024, 512)
    a = np.asarray(Image.open(out))
    assert not np.array_equal(a[:, :512], a[:, 512:])  # lossy, but a picture on both sides
