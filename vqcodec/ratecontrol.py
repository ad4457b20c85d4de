"""Rate control: the best file that is no larger than a byte budget.

A model offers a few quality levels (residual depths), roughly doubling the file from one to the next at
the low end; within a level the encoder's trade-off rd_lambda (search.py) shrinks the file by up to a
third as it grows, at a cost in closeness to the latent. The candidates at a level are the rd_lambdas of
LADDER whose grids stay closer to the latent than the level below would be (so a higher level always
wins over a lower one); the chosen file is the highest level with a candidate that fits, at the smallest
rd_lambda that fits there.

One parallel pass of the prior per level examined gives every candidate's bits (search.Choice.bits, in
the greedy grid's context: on Kodak 1-5 % below the real payload, on small pictures either way), so the
search pays for a pass at each level it examines and for a real encoding only of the candidates predicted
to fit. It examines the first level (the model's default), then the level its bits predict for the
budget (each further depth costing about what the last one did), and the levels between: two or three
passes on Kodak. The result depends
only on the picture, the model and the budget: the same inputs give the same bytes.
"""
from __future__ import annotations

import math
from typing import Callable

from .bitstream import HEADER, TRAILER
from .defaults import DEFAULT_RD_LAMBDA
from .search import Choice

LADDER = tuple(DEFAULT_RD_LAMBDA * 2 ** (k / 2) for k in range(17))   # 0.1 … 25.6, steps of sqrt(2)
SLACK = 1.03   # until a file of the level was measured, one predicted this much over the budget is still tried


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
        encode: Callable[[Choice], bytes], first: int = 1) -> tuple[Choice, bytes]:
    """The best file within max_bytes. candidates(q): level q's admitted choices (computed once per level
    by the caller); encode(choice): the file's bytes; first: the level to examine first. Raises
    TargetTooSmall."""
    def smallest(q: int) -> float:
        return min(predicted_bytes(c) for c in candidates(q))

    def fits(nbytes: float) -> bool:
        return nbytes <= max_bytes * SLACK

    def guess_above(q: int) -> int:
        """The highest level predicted to fit from level q's bits: each further depth costs what q's last
        one did, and shrinks as far as q's candidates do."""
        plain = candidates(q)[0]
        shrink, g = smallest(q) / predicted_bytes(plain), q
        while g < levels and fits(shrink * (predicted_bytes(plain) + (g + 1 - q) * plain.depth_bits[-1] / 8)):
            g += 1
        return g

    q = min(first, levels)
    if fits(smallest(q)):
        while (g := guess_above(q)) > q:     # try the guess, then the levels between it and q
            reached = next((h for h in range(g, q, -1) if fits(smallest(h))), None)
            if reached is None:
                break
            q = reached
    else:
        q = next((h for h in range(q - 1, 1, -1) if fits(smallest(h))), 1)
    for q in range(q, 0, -1):
        underestimate = None             # real / predicted, learnt from the files that did not fit
        for choice in candidates(q):
            if underestimate is None and predicted_bytes(choice) > max_bytes * SLACK or \
                    underestimate is not None and predicted_bytes(choice) * underestimate > max_bytes:
                continue
            data = encode(choice)
            if len(data) <= max_bytes:
                return choice, data
            underestimate = max(underestimate or 0.0, len(data) / predicted_bytes(choice))
    raise TargetTooSmall(max_bytes, len(encode(candidates(1)[-1])))
