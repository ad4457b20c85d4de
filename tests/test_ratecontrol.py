"""Rate control: the best file within a byte budget, over the levels and the rd_lambda ladder."""
import numpy as np
import pytest

import vqcodec
from vqcodec.codec import compress_to_size
from vqcodec.ratecontrol import LADDER, TargetTooSmall, admitted, budget, fit
from vqcodec.search import Choice


def choice(q: int, rd_lambda: float, nbytes: float, sq_error: float = 0.0) -> Choice:
    """A candidate predicted at nbytes (bits are what the prediction reads)."""
    return Choice(rd_lambda, np.zeros((q, 1, 1), np.int64), sq_error, ((nbytes - 25) * 8 / q,) * q)


def ladder(sizes: dict[int, list[float]]):
    """candidates(q) and encode(choice) for made-up levels whose files are 3 % larger than predicted."""
    table = {q: [choice(q, LADDER[i], n) for i, n in enumerate(ns)] for q, ns in sizes.items()}
    calls = []

    def encode(c: Choice) -> bytes:
        calls.append((c.grid.shape[0], c.rd_lambda))
        return bytes(int((c.bits / 8 + 25) * 1.03))

    return (lambda q: table[q]), encode, calls


def test_fit_takes_the_highest_level_that_fits_at_its_smallest_fitting_rd_lambda():
    candidates, encode, _ = ladder({1: [1000, 900, 800], 2: [2300, 2000, 1700], 3: [3500, 3000, 2600]})
    for first in (1, 2, 3):
        chosen, data = fit(2100, 3, candidates, encode, first=first)
        assert (chosen.grid.shape[0], chosen.rd_lambda) == (2, LADDER[1]) and len(data) <= 2100
        chosen, data = fit(1100, 3, candidates, encode, first=first)
        assert (chosen.grid.shape[0], chosen.rd_lambda) == (1, LADDER[0]) and len(data) <= 1100
        chosen, data = fit(9000, 3, candidates, encode, first=first)
        assert (chosen.grid.shape[0], chosen.rd_lambda) == (3, LADDER[0])


def test_fit_comes_down_when_its_guess_overshoots():
    # level 1's bits predict level 3 within 3,000 bytes (each depth as dear as the last), but it takes
    # 4,000: level 2 is examined next; its own bits then predict levels 3 and 4, which do not fit either
    candidates, encode, calls = ladder({1: [1000], 2: [1500], 3: [4000], 4: [4500]})
    chosen, _ = fit(3000, 4, candidates, encode, first=1)
    assert chosen.grid.shape[0] == 2 and calls == [(2, LADDER[0])]


def test_fit_moves_on_when_the_real_file_is_larger_than_predicted():
    candidates, encode, calls = ladder({1: [1000, 1005, 900]})
    chosen, data = fit(1000, 1, candidates, encode)  # 1000 predicted, 1030 real: too large
    assert len(data) <= 1000 and chosen.rd_lambda == LADDER[2]
    assert calls == [(1, LADDER[0]), (1, LADDER[2])]  # 1005 is skipped: 3 % too little was learnt


def test_fit_refuses_a_budget_below_the_smallest_file_and_says_how_small_it_can_go():
    candidates, encode, _ = ladder({1: [1000, 900, 800], 2: [2300, 2000, 1700]})
    with pytest.raises(TargetTooSmall, match="smallest this model writes for this picture is 824 bytes") as e:
        fit(700, 2, candidates, encode)
    assert isinstance(e.value, ValueError) and e.value.smallest == 824


def test_a_level_admits_rd_lambdas_only_while_it_stays_closer_than_the_level_below():
    choices = [choice(2, LADDER[i], 1000, sq_error=e) for i, e in enumerate([50.0, 80.0, 120.0, 90.0])]
    assert [c.sq_error for c in admitted(choices, floor=100.0)] == [50.0, 80.0, 90.0]
    assert len(admitted(choices, floor=10.0)) == 1  # the default rd_lambda always stays


@pytest.mark.parametrize("kwargs, message", [
    ({"max_bytes": 100, "target_bpp": 0.1}, "not both"), ({"max_bytes": 0}, "positive integer"),
    ({"max_bytes": 2.5}, "positive integer"), ({"target_bpp": -1.0}, "positive number"),
    ({"target_bpp": float("nan")}, "positive number")])
def test_invalid_budgets_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        budget(640, 480, **kwargs)


def test_target_bpp_is_a_byte_budget_over_the_whole_file():
    assert budget(768, 512, target_bpp=0.05) == 2457  # floor(0.05 * 768 * 512 / 8)
    assert budget(768, 512) is None


def test_a_sized_file_fits_is_deterministic_and_is_what_compress_writes_at_its_settings(model, small_photo):
    plain = {q: len(vqcodec.compress(small_photo, quality=q, model=model)) for q in (1, 3)}
    for limit in (plain[1], (plain[1] + plain[3]) // 2, plain[3]):
        sized = compress_to_size(small_photo, max_bytes=limit, model=model)
        assert len(sized.data) <= limit
        assert sized.data == vqcodec.compress(small_photo, max_bytes=limit, model=model)
        assert sized.data == vqcodec.compress(small_photo, quality=sized.quality, model=model,
                                              rd_lambda=sized.rd_lambda)
        assert vqcodec.describe(sized.data)["quality"] == sized.quality
        if limit == plain[3]:
            assert sized.quality >= 3  # a level's own file fits its own size


def test_a_budget_below_the_smallest_file_is_refused(model, small_photo):
    with pytest.raises(TargetTooSmall, match="smallest this model writes"):
        vqcodec.compress(small_photo, max_bytes=30, model=model)


def test_a_budget_does_not_go_with_a_quality_or_rd_lambda(model, small_photo):
    for extra in ({"quality": 2}, {"rd_lambda": 1.0}, {"coder": "uniform"}):
        with pytest.raises(ValueError, match="choose the quality and rd_lambda themselves"):
            vqcodec.compress(small_photo, max_bytes=2000, model=model, **extra)
