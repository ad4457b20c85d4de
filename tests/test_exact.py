"""Exact integer arithmetic: the same integers as int64 (or Python's) arithmetic, whatever the float
format that carries them."""
import math

import numpy as np
import pytest
import torch

from vqcodec.exact import clip, div_round, exact_matmul, isqrt, requantize


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("a_max", [127, 1 << 14, 1 << 30])
def test_exact_matmul_is_exact_beyond_the_float_mantissa(dtype, a_max):
    g = torch.Generator().manual_seed(a_max)
    a = torch.randint(-a_max, a_max + 1, (5, 3, 700), generator=g)
    b = torch.randint(-127, 128, (700, 9), generator=g)
    assert torch.equal(exact_matmul(a, b.to(dtype), a_max, 127), a @ b)  # int64 reference
    on_numpy = exact_matmul(a.numpy(), b.to(dtype), a_max, 127)
    assert isinstance(on_numpy, np.ndarray) and np.array_equal(on_numpy, (a @ b).numpy())


def test_isqrt_is_the_floor_of_the_square_root_up_to_2_to_the_52():
    g = torch.Generator().manual_seed(0)
    squares = torch.arange(0, 1 << 26, 9973, dtype=torch.long) ** 2
    v = torch.cat([torch.randint(0, 1 << 52, (20000,), generator=g), squares, squares - 1, squares + 1]).clamp(min=0)
    expected = [math.isqrt(int(x)) for x in v]
    assert [int(r) for r in isqrt(v)] == expected
    assert isqrt(v.numpy()).tolist() == expected


def test_div_round_rounds_halves_up():
    a = torch.tensor([7, 5, -5, -7, 0, 3, -3, 1 << 40])
    b = torch.tensor([2, 2, 2, 2, 3, 6, 6, 3])
    expected = [math.floor(x / y + 0.5) for x, y in zip(a.tolist(), b.tolist())]
    assert div_round(a, b).tolist() == expected
    assert div_round(a.numpy(), b.numpy()).tolist() == expected


def test_requantize_rounds_the_rescaled_value_halves_up_per_channel():
    torch.manual_seed(0)
    x = torch.randint(-10 ** 6, 10 ** 6, (50, 3))
    mult, shift = torch.tensor([3 << 20, 5 << 21, (1 << 23) + 1]), 24
    expected = [[math.floor(v * m / 2 ** shift + 0.5) for v, m in zip(row, mult.tolist())] for row in x.tolist()]
    assert requantize(x, mult, shift).tolist() == expected
    assert requantize(x.numpy(), mult.numpy(), shift).tolist() == expected
    assert requantize(torch.tensor([-3, -1, 1, 3]), torch.tensor(1), 1).tolist() == [-1, 0, 1, 2]


def test_clip_bounds_torch_and_numpy_alike():
    x = torch.tensor([-300, -5, 0, 7, 300])
    assert clip(x, -127, 127).tolist() == clip(x.numpy(), -127, 127).tolist() == [-127, -5, 0, 7, 127]
    assert clip(x.numpy(), None, 6).tolist() == clip(x, None, 6).tolist() == [-300, -5, 0, 6, 6]
