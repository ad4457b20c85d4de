"""Image quality metrics: PSNR on 8-bit RGB and LPIPS (AlexNet, v0.1)."""
from __future__ import annotations

import os

import numpy as np
import torch

LPIPS_WEIGHTS_ENV = "VQCODEC_LPIPS_WEIGHTS"


class MetricUnavailable(RuntimeError):
    """A metric's weights cannot be found; raised instead of substituting another metric."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 RGB arrays of the same shape."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def load_lpips() -> torch.nn.Module:
    """LPIPS alex v0.1, from the safetensors file named by $VQCODEC_LPIPS_WEIGHTS, else through
    the lpips package's own download of the AlexNet backbone."""
    import lpips

    path = os.environ.get(LPIPS_WEIGHTS_ENV)
    if path:
        from safetensors.torch import load_file

        if not os.path.isfile(path):
            raise MetricUnavailable(f"{LPIPS_WEIGHTS_ENV}={path} is not a file")
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
        missing, unexpected = model.load_state_dict(load_file(path), strict=False)
        # The lpips package registers its linear layers twice (lin0 and lins.0); only the aliases may be missing.
        if unexpected or any(not k.startswith("lins.") for k in missing):
            raise MetricUnavailable(f"{path} is not an LPIPS alex v0.1 state dict")
    else:
        try:
            model = lpips.LPIPS(net="alex", version="0.1", verbose=False)
        except Exception as e:  # the backbone download failed: no internet, no cache
            raise MetricUnavailable(
                f"LPIPS needs the AlexNet backbone: set {LPIPS_WEIGHTS_ENV} to "
                f"lpips_alex_v0.1.safetensors or allow the lpips package to download it ({e})") from e
    return model.eval().requires_grad_(False)


def lpips_distance(model: torch.nn.Module, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS between two uint8 RGB arrays (H, W, 3)."""
    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1

    with torch.no_grad():
        return float(model(t(a), t(b)).item())
