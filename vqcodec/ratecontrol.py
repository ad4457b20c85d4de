"""Rate control: the best file that is no larger than a byte budget.

A model offers a few quality levels (residual depths), roughly doubling the file from one to the next at
the low end; within a level the encoder's trade-off rd_lambda (search.py) shrinks the file by up to a
third as it grows, at a cost in closeness to the latent. The candidates at a level are the rd_lambdas of
LADDER whose grids stay closer to the latent than the level below would be (so a higher level always
wins over a lower one); the chosen file is the highest level with a candidate that fits, at the smallest
rd_lambda that fits there.

One parallel pass of the prior per level examined gives every candidate's bits (search.Choice.bits, in
the greedy grid's context: on Kodak 1-5 % below the real payload, on small pictures either way), so the
search pays for a pass at each level it bisects through and for a real encoding only of the candidates
predicted to fit. The result depends
only on the picture, the model and the budget: the same inputs give the same bytes.
"""
from __future__ import annotations

import math
from typing import Callable

from .bitstream import HEADER, TRAILER
from .defaults import DEFAULT_RD_LAMBDA
from .search import Choice

LADDER = tuple(DEFAULT_RD_LAMBDA * 2 ** (k / 2) for k in range(17))   # 0.1 … 25.6, steps of sqrt(2)
SLACK = 1.03   # a candidate predicted this much over the budget is still encoded: predictions err both ways


class TargetTooSmall(ValueError):
    """No file the model writes for this picture fits the byte budget."""

    def __init__(self, max_bytes: int, smallest: int):
        self.max_bytes, self.smallest = max_bytes, smallest
        super().__init__(f"no file fits in {max_bytes} bytes: the smallest this model writes for this picture "
                         f"is {smallest} bytes (quality 1)")


def budget(width: int, height: int, max_bytes: int | None = None, target_bpp: float | None = None) -> int | None:
    """The byte budget that max_bytes or target_bpp (bits per pixel of the whole file) set for a picture,
    or None when neither is given; ValueError for both, or for a value that is not a positive number."""
    if max_bytes is not None and target_bpp is not None:
        raise ValueError("give max_bytes or target_bpp, not both")
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        return max_bytes
    if target_bpp is not None:
        if isinstance(target_bpp, bool) or not isinstance(target_bpp, (int, float)) \
                or not 0 < target_bpp < math.inf:
            raise ValueError(f"target_bpp must be a positive number, got {target_bpp!r}")
        return max(1, math.floor(target_bpp * width * height / 8))
    return None


def admitted(choices: list[Choice], floor: float) -> list[Choice]:
    """A level's candidates, smallest rd_lambda first: the default always, the others while their grids
    stay closer to the latent than floor (the level below's squared error)."""
    return [c for i, c in enumerate(choices) if i == 0 or c.sq_error <= floor]


def predicted_bytes(choice: Choice) -> float:
    return choice.bits / 8 + HEADER.size + TRAILER.size


def fit(max_bytes: int, levels: int, candidates: Callable[[int], list[Choice]],
        encode: Callable[[Choice], bytes]) -> tuple[Choice, bytes]:
    """The best file within max_bytes. candidates(q): level q's admitted choices (computed once per level
    by the caller); encode(choice): the file's bytes. Raises TargetTooSmall."""
    def reachable(q: int) -> bool:
        return min(predicted_bytes(c) for c in candidates(q)) <= max_bytes

    lo, hi = 1, levels
    while lo < hi:                       # the highest level whose smallest candidate is predicted to fit
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if reachable(mid) else (lo, mid - 1)
    for q in range(lo, 0, -1):
        underestimate = 1.0              # real / predicted, learnt from the files that did not fit
        for choice in candidates(q):
            if predicted_bytes(choice) * underestimate > max_bytes * SLACK:
                continue
            data = encode(choice)
            if len(data) <= max_bytes:
                return choice, data
            underestimate = max(underestimate, len(data) / predicted_bytes(choice))
    raise TargetTooSmall(max_bytes, len(encode(candidates(1)[-1])))
