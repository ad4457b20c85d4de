"""Image quality metrics: PSNR and MS-SSIM on 8-bit RGB, LPIPS (AlexNet, v0.1)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where LPIPS is used: PSNR and MS-SSIM do without it
    import torch

LPIPS_WEIGHTS_ENV = "VQCODEC_LPIPS_WEIGHTS"
# LPIPS alex v0.1 as vqcodec ships it (eval/gpu/pack_lpips.py; licences beside it)
PACKAGED_LPIPS = Path(__file__).parent / "weights" / "lpips" / "alex_v0.1.safetensors"


class MetricUnavailable(RuntimeError):
    """A metric's weights cannot be found; raised instead of substituting another metric."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 RGB arrays of the same shape."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The 1-D Gaussian (size,); the 2-D window is its outer product, applied separably."""
    g = np.exp(-((np.arange(size, dtype=np.float64) - size // 2) ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(t: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of (H, W, C) keeping only windows fully inside the image."""
    from scipy.ndimage import correlate1d

    r = len(window) // 2
    t = correlate1d(correlate1d(t, window, axis=0, mode="constant"), window, axis=1, mode="constant")
    return t[r:t.shape[0] - r, r:t.shape[1] - r]


def _ssim_terms(x: np.ndarray, y: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure term over valid windows, per channel: (C,), (C,)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _filter_valid(x, window), _filter_valid(y, window)
    sxx = _filter_valid(x * x, window) - mx ** 2
    syy = _filter_valid(y * y, window) - my ** 2
    sxy = _filter_valid(x * y, window) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * cs
    return ssim.mean((0, 1)), cs.mean((0, 1))


def _downsample(t: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (H, W, C), dropping an odd last row or column."""
    h, w = t.shape[0] // 2 * 2, t.shape[1] // 2 * 2
    t = t[:h, :w]
    return (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]) / 4


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang, Simoncelli & Bovik 2003) between two uint8 RGB arrays: 5 scales, 11x11
    Gaussian window (sigma 1.5), computed per channel and averaged. Scales whose image is smaller than
    the window are dropped and the remaining weights renormalised (images under ~176 px a side)."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    window = _gaussian_window()
    weights, values = [], []
    for scale, w in enumerate(MS_SSIM_WEIGHTS):
        if min(x.shape[:2]) < len(window):
            break
        ssim, cs = _ssim_terms(x, y, window)
        last = scale == len(MS_SSIM_WEIGHTS) - 1 or min(x.shape[:2]) // 2 < len(window)
        values.append(np.maximum(ssim if last else cs, 0))
        weights.append(w)
        x, y = _downsample(x), _downsample(y)
    if not values:
        raise ValueError("MS-SSIM needs images of at least 11 x 11 pixels")
    wt = np.array(weights) / sum(weights)
    return float(np.prod(np.stack(values) ** wt[:, None], 0).mean())


def load_lpips() -> "torch.nn.Module":
    """LPIPS alex v0.1 (backbone and linear layers) from the safetensors file named by
    $VQCODEC_LPIPS_WEIGHTS, else from the copy vqcodec ships. Nothing is downloaded or unpickled: the
    lpips package's own loaders (torchvision's hub cache, its bundled .pth files) read pickles, so they
    are never called."""
    import lpips
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.environ.get(LPIPS_WEIGHTS_ENV) or str(PACKAGED_LPIPS)
    if not os.environ.get(LPIPS_WEIGHTS_ENV) and not PACKAGED_LPIPS.is_file():
        raise MetricUnavailable(f"LPIPS needs its weights: this install lacks {PACKAGED_LPIPS}; set "
                                f"{LPIPS_WEIGHTS_ENV} to the path of lpips_alex_v0.1.safetensors (README: LPIPS)")
    if not os.path.isfile(path):
        raise MetricUnavailable(f"{LPIPS_WEIGHTS_ENV}={path} is not a file")
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as e:
        raise MetricUnavailable(f"{path} is not a safetensors file ({e})") from None
    with warnings.catch_warnings():  # torchvision's deprecation notes on how lpips asks for an untrained AlexNet
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.")
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The lpips package registers its linear layers twice (lin0 and lins.0); only the aliases may be missing.
    if unexpected or any(not k.startswith("lins.") for k in missing):
        raise MetricUnavailable(f"{path} is not an LPIPS alex v0.1 state dict")
    return model.eval().requires_grad_(False)


def lpips_distance(model: "torch.nn.Module", a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS between two uint8 RGB arrays (H, W, 3)."""
    import torch

    from .tokenizer import to_unit_range

    def t(x: np.ndarray) -> torch.Tensor:
        return to_unit_range(torch.tensor(x).permute(2, 0, 1)[None])

    with torch.no_grad():
        return float(model(t(a), t(b)).item())
