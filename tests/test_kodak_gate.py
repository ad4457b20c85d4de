"""eval/kodak_gate.py decides whether a model ships: a level passes only when PSNR and LPIPS are both no
worse than the shipped model's curve at the same bpp and one of them is better by the margin."""
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("kodak_gate", Path(__file__).parent.parent / "eval" / "kodak_gate.py")
kodak_gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kodak_gate)

BASELINE = [{"quality": 1, "bpp": 0.02, "psnr": 21.0, "ms_ssim": 0.73, "lpips": 0.34},
            {"quality": 2, "bpp": 0.08, "psnr": 22.0, "ms_ssim": 0.79, "lpips": 0.28}]


def level(bpp, psnr, lpips):
    return {"quality": 1, "bpp": bpp, "psnr": psnr, "ms_ssim": 0.75, "lpips": lpips}


def test_the_baseline_is_read_at_the_candidates_rate_in_log_bpp():
    value, how = kodak_gate.at_rate(BASELINE, 0.04, "psnr")  # halfway in log-bpp between 0.02 and 0.08
    assert (value, how) == (pytest.approx(21.5), "interpolated")
    assert kodak_gate.at_rate(BASELINE, 0.01, "lpips") == (0.34, "its lowest")
    assert kodak_gate.at_rate(BASELINE, 0.2, "lpips") == (0.28, "its highest")


@pytest.mark.parametrize("psnr, lpips, passes", [
    (21.5, 0.30, True),     # LPIPS better by more than 0.01 at equal PSNR
    (21.8, 0.31, True),     # PSNR better by 0.3 dB
    (21.6, 0.305, False),   # better in both, by less than either margin
    (21.4, 0.25, False),    # far better LPIPS does not buy back worse PSNR
    (23.0, 0.312, False),   # nor the reverse
])
def test_a_level_passes_only_with_both_metrics_no_worse_and_one_by_the_margin(psnr, lpips, passes):
    # the baseline at 0.04 bpp: PSNR 21.5, LPIPS 0.31
    assert kodak_gate.gate([level(0.04, psnr, lpips)], BASELINE)[0]["passes"] is passes


@pytest.mark.parametrize("ms_ssim, passes", [(0.755, False), (0.76, True), (0.77, True)])
def test_the_strict_gate_also_needs_ms_ssim_no_worse(ms_ssim, passes):
    # the baseline at 0.04 bpp: MS-SSIM 0.76; PSNR and LPIPS pass on their own
    candidate = dict(level(0.04, 21.5, 0.29), ms_ssim=ms_ssim)
    assert kodak_gate.gate([candidate], BASELINE)[0]["passes"] is True
    assert kodak_gate.gate([candidate], BASELINE, strict=True)[0]["passes"] is passes
