"""Benchmark machinery: BD-rate on curves with known answers; a bench run survives a corrupt image."""
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from vqcodec.bench import bd_rate, mean_curves, run_bench, write_report
from vqcodec.metrics import MetricUnavailable, load_lpips


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25])
def test_bd_rate_of_a_rate_scaled_curve_is_the_scale(factor):
    rate = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    quality = 30 + 4 * np.log2(rate) + np.array([0.0, 0.3, 0.1, 0.4, 0.2])  # concave-ish, not a straight line
    value, _ = bd_rate(rate, quality, rate * factor, quality)
    assert value == pytest.approx((factor - 1) * 100, abs=1e-9)


def test_bd_rate_over_a_partial_overlap_and_without_overlap():
    rate = np.array([0.1, 0.2, 0.4, 0.8])
    quality = np.array([20.0, 24.0, 27.0, 29.0])
    value, note = bd_rate(rate, quality, rate[1:] * 0.9, quality[1:])  # overlap only 24..29
    assert value == pytest.approx(-10.0, abs=1.0) and "24" in note  # end slopes differ a little
    value, note = bd_rate(rate, quality, rate, quality + 20)
    assert value is None and "no overlap" in note


def test_bench_reports_a_corrupt_image_and_goes_on(tmp_path):
    try:
        lp = load_lpips()
    except MetricUnavailable as e:
        pytest.skip(f"LPIPS weights unavailable offline: {e}")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(skdata.coffee()[:192, :256]).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    messages = []
    rows = run_bench(folder, ["jpeg"], tmp_path / "out", log=messages.append, lpips_model=lp)
    assert len(messages) == 1 and "b.png" in messages[0]
    assert {r["image"] for r in rows} == {"a.png"} and len(rows) == 8
    curve = mean_curves(rows)["jpeg"]
    assert [p["bpp"] for p in curve] == sorted(p["bpp"] for p in curve)
    assert curve[0]["lpips"] > curve[-1]["lpips"] and curve[0]["psnr"] < curve[-1]["psnr"]
    write_report(rows, tmp_path / "out", ["jpeg"], folder, "test")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 1
    assert (tmp_path / "out" / "rd_lpips.png").exists() and (tmp_path / "out" / "per_image.csv").exists()
    # a second run is served from the cache: same numbers, timings included
    again = run_bench(folder, ["jpeg"], tmp_path / "out", log=messages.append, lpips_model=lp)
    assert again == rows


def test_bd_rate_for_lower_is_better_metrics():
    rate = np.array([0.05, 0.1, 0.2, 0.4])
    lpips = np.array([0.5, 0.4, 0.3, 0.2])
    value, note = bd_rate(rate, lpips, rate * 0.7, lpips, higher_is_better=False)
    assert value == pytest.approx(-30.0, abs=1e-9) and "0.2..0.5" in note


def test_comparison_grid_has_a_row_per_image_and_level(model, tmp_path):
    from vqcodec.bench import comparison_grid

    paths = []
    for name, make in (("coffee.png", skdata.coffee), ("chelsea.png", skdata.chelsea)):
        Image.fromarray(make()[:192, :256]).save(tmp_path / name)
        paths.append(tmp_path / name)
    rows = [{"image": p.name, "codec": codec, "setting": setting, "bpp": bpp}
            for p in paths for codec, setting, bpp in
            (("vqcodec", 1, 0.03), ("vqcodec", 2, 0.06), ("jpeg", 5, 0.2), ("jpeg", 50, 1.0))]
    out = comparison_grid(paths, rows, ["vqcodec", "jpeg"], tmp_path / "grid.png", model)
    sheet = Image.open(out)
    assert sheet.size == (3 * 192, 4 * (192 + 16))  # original, vqcodec, jpeg x 2 images x 2 levels
    first_original = np.asarray(sheet)[16:16 + 192, :192]
    assert np.array_equal(first_original, skdata.coffee()[:192, 32:224])  # the centre crop


def test_bd_rate_equals_the_bjontegaard_package_on_the_kodak_curves():
    import json
    from pathlib import Path

    import bjontegaard

    summary = Path(__file__).parent.parent / "eval" / "results" / "kodak" / "summary.json"
    curves = json.loads(summary.read_text())["curves"]
    checked = 0
    for anchor in ("jpeg", "webp", "avif", "jp2"):
        for metric in ("psnr", "ms_ssim"):
            a, b = curves[anchor], curves["vqcodec"]
            ours, _ = bd_rate([p["bpp"] for p in a], [p[metric] for p in a], [p["bpp"] for p in b], [p[metric] for p in b])
            if ours is None:  # no overlap: the package returns nan
                continue
            theirs = bjontegaard.bd_rate([p["bpp"] for p in a], [p[metric] for p in a], [p["bpp"] for p in b],
                                         [p[metric] for p in b], method="pchip", require_matching_points=False,
                                         min_overlap=0)
            assert ours == pytest.approx(theirs, abs=1e-6)
            checked += 1
    assert checked >= 2


def test_bench_on_two_processes_gives_the_rows_of_one(tmp_path, monkeypatch):
    try:
        load_lpips()
    except MetricUnavailable as e:
        pytest.skip(f"LPIPS weights unavailable offline: {e}")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(skdata.coffee()[:160, :176]).save(folder / "a.png")
    Image.fromarray(skdata.chelsea()[:176, :160]).save(folder / "b.png")
    serial = run_bench(folder, ["vqcodec", "jpeg"], tmp_path / "one", log=print)
    parallel = run_bench(folder, ["vqcodec", "jpeg"], tmp_path / "two", log=print, jobs=2)
    exact = ("image", "codec", "setting", "bytes", "bpp")
    assert [[r[k] for k in exact] for r in parallel] == [[r[k] for k in exact] for r in serial]
    # the float CNN decoder's pixels may differ by one level between thread counts
    for a, b in zip(parallel, serial):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=0.01) and a["lpips"] == pytest.approx(b["lpips"], abs=1e-3)


def test_the_low_rate_rival_codes_a_shrunk_picture_and_counts_full_size_pixels(tmp_path):
    from vqcodec.bench import codec_named

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(skdata.coffee()[:192, :255]).save(folder / "a.png")  # an odd width: rounding both ways
    rows = run_bench(folder, ["avif", "avif@1/2", "jpeg@1/4"], tmp_path / "out", lpips_model=load_lpips())
    full = {r["setting"]: r for r in rows if r["codec"] == "avif"}
    half = {r["setting"]: r for r in rows if r["codec"] == "avif@1/2"}
    assert half.keys() == full.keys() and {r["codec"] for r in rows} == {"avif", "avif@1/2", "jpeg@1/4"}
    for setting, row in half.items():
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (255 * 192))
        assert row["bytes"] < full[setting]["bytes"]
    rival = codec_named("avif@1/2")
    data = rival.encode(skdata.coffee()[:192, :255], 0)
    assert Image.open(__import__("io").BytesIO(data)).size == (128, 96)
    assert rival.decode(data, (192, 255)).shape == (192, 255, 3)
    write_report(rows, tmp_path / "out", ["avif", "avif@1/2", "jpeg@1/4"], folder, "test")
    assert "avif@1/2" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.parametrize("name", ["avif@2", "avif@1/1", "heic@1/2", "avif@1/x"])
def test_an_unknown_codec_name_says_what_there_is(name):
    from vqcodec.bench import codec_named

    with pytest.raises(ValueError, match="CODEC@1/N"):
        codec_named(name)


def test_rd_curve_of_one_picture_gives_a_row_per_setting_with_the_files_real_size(small_photo):
    import vqcodec

    rows = vqcodec.rd_curve(small_photo, codecs=("vqcodec", "jpeg"), settings={"vqcodec": [1, 2], "jpeg": [10]})
    assert [(r["codec"], r["setting"]) for r in rows] == [("vqcodec", 1), ("vqcodec", 2), ("jpeg", 10)]
    h, w = small_photo.shape[:2]
    for r in rows:
        assert r["bpp"] == 8 * r["bytes"] / (w * h) and 0 < r["lpips"] < 1 and 0 < r["ms_ssim"] <= 1
    assert rows[0]["bytes"] == len(vqcodec.compress(small_photo, quality=1))
    assert rows[1]["bytes"] > rows[0]["bytes"] and rows[1]["psnr"] > rows[0]["psnr"]
