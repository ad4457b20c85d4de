"""Exact integer arithmetic on torch tensors: matrix products whose every partial sum a float format
holds exactly (so any summation order, kernel or device gives the same integers), rounding division and
an integer square root. The integer prior (intprior.py) is built from these."""
from __future__ import annotations

import torch

_EXACT_BELOW = {torch.float32: 1 << 24, torch.float64: 1 << 53}


def float32_is_exact(device: torch.device) -> bool:
    """Whether float32 GEMMs on this device run in true float32 (not TF32 or bfloat16 passes)."""
    return (torch.get_float32_matmul_precision() == "highest"
            and not (device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32))


def exact_matmul(a: torch.Tensor, b: torch.Tensor, a_max: int, b_max: int) -> torch.Tensor:
    """a (..., K) int64 with |a| <= a_max, times b (..., K, N) holding integers with |b| <= b_max in
    float32 or float64 -> the exact product, int64 (..., N). Every dtype gives the same integers, so
    float32 work moves to float64 where torch is set to compute float32 products at lower precision."""
    if b.dtype == torch.float32 and not float32_is_exact(b.device):
        b = b.double()
    if a_max * b_max * a.shape[-1] < _EXACT_BELOW[b.dtype]:
        return (a.to(b.dtype) @ b).long()
    high, low = torch.div(a, 128, rounding_mode="floor"), a % 128  # a = 128 high + low, 0 <= low < 128
    return exact_matmul(high, b, a_max // 128 + 1, b_max) * 128 + exact_matmul(low, b, 127, b_max)


def int8_gemm_available() -> bool:
    """Whether this torch build multiplies int8 matrices on the CPU with int32 accumulation."""
    try:
        ones = torch.ones(8, 8, dtype=torch.int8)
        return bool(torch.equal(torch._int_mm(ones, ones), torch.full((8, 8), 8, dtype=torch.int32)))
    except (AttributeError, RuntimeError):
        return False


def int8_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (..., K) int64 with |x| <= 127 times w (K, N) int8 -> the exact product, int64 (..., N), as an
    int8 GEMM with int32 accumulation (exact while K * 127^2 < 2^31; int8_gemm_available says where)."""
    y = torch._int_mm(x.reshape(-1, x.shape[-1]).to(torch.int8), w)
    return y.reshape(*x.shape[:-1], w.shape[1]).long()


def div_round(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """round(a / b) for integer tensors, b > 0, halves rounded up."""
    return torch.div(2 * a + b, 2 * b, rounding_mode="floor")


def requantize(x: torch.Tensor, mult: torch.Tensor, shift: int) -> torch.Tensor:
    """round(x * mult / 2^shift) for int64 tensors, halves rounded up: a rescaling by a fixed-point
    multiplier (per channel where mult is a vector)."""
    return (x * mult + (1 << (shift - 1))) >> shift


def isqrt(v: torch.Tensor) -> torch.Tensor:
    """floor(sqrt(v)) for int64 v in [0, 2^52): a float estimate, then made exact."""
    r = torch.sqrt(v.double()).long()
    r = r - (r * r > v).long()
    return r + ((r + 1) * (r + 1) <= v).long()
