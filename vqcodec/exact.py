"""Exact integer arithmetic on integer arrays, torch tensors or numpy arrays alike: matrix products
whose every partial sum a float format holds exactly (so any summation order, kernel or device gives the
same integers), rounding division and an integer square root. The integer prior (intprior.py) is built
from these. Numpy arrays cost a fraction of a torch tensor's per-operation overhead, which dominates
small arrays; their products still run as torch GEMMs, on the CPU."""
from __future__ import annotations

from types import ModuleType
from typing import TypeVar

import numpy as np
import torch

Ints = TypeVar("Ints", torch.Tensor, np.ndarray)  # int64 arrays of either kind

_EXACT_BELOW = {torch.float32: 1 << 24, torch.float64: 1 << 53}


def float32_is_exact(device: torch.device) -> bool:
    """Whether float32 GEMMs on this device run in true float32 (not TF32 or bfloat16 passes)."""
    return (torch.get_float32_matmul_precision() == "highest"
            and not (device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32))


def namespace(x: torch.Tensor | np.ndarray) -> ModuleType:
    """The module whose functions take x: numpy or torch (those used here agree in name and meaning)."""
    return np if isinstance(x, np.ndarray) else torch


def clip(x: Ints, low: int | None, high: int | None) -> Ints:
    """x limited to [low, high] (None: no bound); numpy's own clip costs several times two ufuncs."""
    if not isinstance(x, np.ndarray):
        return x.clamp(low, high)
    x = x if low is None else np.maximum(x, low)
    return x if high is None else np.minimum(x, high)


def exact_matmul(a: Ints, b: torch.Tensor, a_max: int, b_max: int) -> Ints:
    """a (..., K) int64 with |a| <= a_max, times b (..., K, N) holding integers with |b| <= b_max in
    float32 or float64 -> the exact product, int64 (..., N), of a's kind (a numpy a needs a CPU b).
    Every dtype gives the same integers, so float32 work moves to float64 where torch is set to compute
    float32 products at lower precision."""
    if b.dtype == torch.float32 and not float32_is_exact(b.device):
        b = b.double()
    if a_max * b_max * a.shape[-1] < _EXACT_BELOW[b.dtype]:
        if isinstance(a, np.ndarray):
            return (torch.from_numpy(a.astype(np.float32 if b.dtype == torch.float32 else np.float64)) @ b
                    ).numpy().astype(np.int64)
        return (a.to(b.dtype) @ b).long()
    high, low = a // 128, a % 128  # a = 128 high + low, 0 <= low < 128
    return exact_matmul(high, b, a_max // 128 + 1, b_max) * 128 + exact_matmul(low, b, 127, b_max)


def int8_gemm_available() -> bool:
    """Whether this torch build multiplies int8 matrices on the CPU with int32 accumulation."""
    try:
        ones = torch.ones(8, 8, dtype=torch.int8)
        return bool(torch.equal(torch._int_mm(ones, ones), torch.full((8, 8), 8, dtype=torch.int32)))
    except (AttributeError, RuntimeError):
        return False


def int8_matmul(x: Ints, w: torch.Tensor) -> Ints:
    """x (..., K) int64 with |x| <= 127 times w (K, N) int8 -> the exact product, int64 (..., N) of x's
    kind, as an int8 GEMM with int32 accumulation (exact while K * 127^2 < 2^31; int8_gemm_available
    says where)."""
    if isinstance(x, np.ndarray):
        return int8_matmul(torch.from_numpy(x), w).numpy()
    y = torch._int_mm(x.reshape(-1, x.shape[-1]).to(torch.int8), w)
    return y.reshape(*x.shape[:-1], w.shape[1]).long()


def div_round(a: Ints, b: Ints) -> Ints:
    """round(a / b) for integer arrays, b > 0, halves rounded up."""
    return (2 * a + b) // (2 * b)


def requantize(x: Ints, mult: Ints, shift: int) -> Ints:
    """round(x * mult / 2^shift) for int64 arrays, halves rounded up: a rescaling by a fixed-point
    multiplier (per channel where mult is a vector)."""
    return (x * mult + (1 << (shift - 1))) >> shift


def isqrt(v: Ints) -> Ints:
    """floor(sqrt(v)) for int64 v in [0, 2^52): a float estimate, then made exact."""
    xp = namespace(v)
    r = np.sqrt(v).astype(np.int64) if xp is np else torch.sqrt(v.double()).long()
    r = xp.where(r * r > v, r - 1, r)
    return xp.where((r + 1) * (r + 1) <= v, r + 1, r)
