"""Metrics agree with scikit-image's reference implementations on real images."""

from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vqcodec.metrics import MetricUnavailable, _gaussian_window, _ssim_terms, load_lpips, lpips_distance, ms_ssim, psnr


@pytest.fixture(scope="module")
def pair():
    a = skdata.astronaut()
    b = np.clip(a.astype(int) + np.random.default_rng(0).normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_scikit_image(pair):
    a, b = pair
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
    assert psnr(a, a) == float("inf")


def test_single_scale_ssim_matches_scikit_image(pair):
    a, b = pair
    ref = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    ssim, _ = _ssim_terms(a.astype(float), b.astype(float), _gaussian_window())
    assert ssim.mean() == pytest.approx(ref, abs=1e-9)


def test_ms_ssim_orders_distortions(pair):
    a, b = pair
    worse = np.clip(a.astype(int) + np.random.default_rng(1).normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0)
    assert 1.0 > ms_ssim(a, b) > ms_ssim(a, worse) > 0


def test_lpips_of_identical_images_is_zero(pair):
    try:
        model = load_lpips()
    except MetricUnavailable as e:
        pytest.skip(f"LPIPS weights unavailable offline: {e}")
    a, b = pair
    assert lpips_distance(model, a, a) == pytest.approx(0.0, abs=1e-6)
    assert lpips_distance(model, a, b) > 0.01


@pytest.mark.filterwarnings("error")
def test_lpips_loads_and_reads_pillow_arrays_without_warnings(pair):
    from PIL import Image

    try:
        model = load_lpips()
    except MetricUnavailable as e:
        pytest.skip(f"LPIPS weights unavailable offline: {e}")
    a, b = (np.asarray(Image.fromarray(x)) for x in pair)  # read-only, as Pillow hands them out
    assert not a.flags.writeable
    assert lpips_distance(model, a, b) > 0.01


def test_lpips_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VQCODEC_LPIPS_WEIGHTS", str(tmp_path / "missing.safetensors"))
    with pytest.raises(MetricUnavailable, match="VQCODEC_LPIPS_WEIGHTS"):
        load_lpips()


def test_lpips_works_out_of_the_box_with_the_packaged_weights(monkeypatch, pair):
    monkeypatch.delenv("VQCODEC_LPIPS_WEIGHTS", raising=False)
    a, b = pair
    assert lpips_distance(load_lpips(), a, b) > 0.01


def test_lpips_measures_what_the_full_precision_weights_measure(monkeypatch, pair):
    weights = Path(__file__).parent.parent.parent / "shared" / "weights" / "lpips_alex_v0.1.safetensors"
    if not weights.is_file():
        pytest.skip("the fp32 LPIPS weights are not beside this checkout")
    monkeypatch.delenv("VQCODEC_LPIPS_WEIGHTS", raising=False)
    packaged = load_lpips()
    monkeypatch.setenv("VQCODEC_LPIPS_WEIGHTS", str(weights))
    a, b = pair
    assert lpips_distance(packaged, a, b) == pytest.approx(lpips_distance(load_lpips(), a, b), abs=1e-4)


def test_an_install_without_the_packaged_weights_says_how_to_get_lpips(monkeypatch, tmp_path):
    from vqcodec import metrics

    monkeypatch.delenv("VQCODEC_LPIPS_WEIGHTS", raising=False)
    monkeypatch.setattr(metrics, "PACKAGED_LPIPS", tmp_path / "missing.safetensors")
    with pytest.raises(MetricUnavailable, match="VQCODEC_LPIPS_WEIGHTS"):
        load_lpips()


def test_lpips_never_unpickles_or_downloads(monkeypatch):
    import pickle

    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("LPIPS loading reached a pickle loader or a download")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load"),
                         (torch.hub, "load_state_dict_from_url")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.delenv("VQCODEC_LPIPS_WEIGHTS", raising=False)
    assert isinstance(load_lpips(), torch.nn.Module)  # the packaged weights
    weights = Path(__file__).parent.parent.parent / "shared" / "weights" / "lpips_alex_v0.1.safetensors"
    if not weights.is_file():
        pytest.skip("the LPIPS weights are not beside this checkout")
    monkeypatch.setenv("VQCODEC_LPIPS_WEIGHTS", str(weights))
    assert isinstance(load_lpips(), torch.nn.Module)


def kodak_or_skimage_pairs():
    """Pictures at Kodak's scale (all five MS-SSIM scales, even sides at every scale) with JPEG damage:
    Kodak where it is beside this checkout, else scikit-image's photographs cropped to multiples of 16.
    (At odd sizes the two implementations drop pixels differently.)"""
    import io

    from PIL import Image

    kodak = sorted((Path(__file__).parent.parent.parent / "shared" / "data" / "kodak").glob("*.png"))[:6]
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in kodak] or \
        [a[:a.shape[0] // 16 * 16, :a.shape[1] // 16 * 16]  # even at every scale, as Kodak's sizes are
         for a in (skdata.astronaut(), skdata.chelsea(), skdata.coffee())]
    for a in originals:
        for quality in (5, 30):
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "JPEG", quality=quality)
            yield a, np.asarray(Image.open(buf).convert("RGB"))


def test_ms_ssim_equals_pytorch_msssim_on_kodak_sized_pictures():
    import torch
    from pytorch_msssim import ms_ssim as reference

    def t(x):
        return torch.tensor(x).permute(2, 0, 1)[None].double()

    for a, b in kodak_or_skimage_pairs():
        assert ms_ssim(a, b) == pytest.approx(reference(t(a), t(b), data_range=255).item(), abs=1e-4)
