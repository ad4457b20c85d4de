"""The fine grid's prior reads only what a decoder knows at each pass: the coarse grid, the fine depths
below, and in a depth's second pass that depth's anchors."""
import torch

from vqcodec.fineprior import FinePrior, FinePriorConfig, anchors

CFG = FinePriorConfig(coarse_codebook_size=16, coarse_levels=2, codebook_size=8, depth=3, width=16, layers=2)


def grids(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 16, (2, 2, 5, 4), generator=g), torch.randint(0, 8, (2, 3, 10, 8), generator=g)


def test_a_depths_first_pass_reads_neither_that_depth_nor_those_above():
    torch.manual_seed(0)
    prior = FinePrior(CFG)
    coarse, fine = grids()
    changed = fine.clone()
    changed[:, 1:] = (changed[:, 1:] + 3) % 8
    assert torch.equal(prior(coarse, fine, 1, False), prior(coarse, changed, 1, False))
    assert not torch.equal(prior(coarse, fine, 2, False), prior(coarse, changed, 2, False))


def test_a_depths_second_pass_reads_its_anchors_and_not_the_rest():
    torch.manual_seed(0)
    prior = FinePrior(CFG)
    coarse, fine = grids()
    first = anchors(10, 8)
    rest, anchor = fine.clone(), fine.clone()
    rest[:, 1][:, ~first] = (rest[:, 1][:, ~first] + 1) % 8
    anchor[:, 1][:, first] = (anchor[:, 1][:, first] + 1) % 8
    assert torch.equal(prior(coarse, fine, 1, True), prior(coarse, rest, 1, True))
    assert not torch.equal(prior(coarse, fine, 1, True), prior(coarse, anchor, 1, True))


def test_each_fine_position_reads_the_codes_of_its_own_coarse_position():
    torch.manual_seed(0)
    prior = FinePrior(CFG)
    coarse, fine = grids()
    changed = coarse.clone()
    changed[:, 0, 2, 1] = (changed[:, 0, 2, 1] + 1) % 16
    moved = (prior.context(coarse, fine, 0, False) != prior.context(changed, fine, 0, False)).any(1)[0]
    expected = torch.zeros(10, 8, dtype=torch.bool)
    expected[4:6, 2:4] = True  # the four fine positions of coarse position (2, 1)
    assert torch.equal(moved, expected)


def test_bits_per_index_fall_as_the_prior_learns_a_grid():
    torch.manual_seed(0)
    prior = FinePrior(CFG)
    coarse, _ = grids()
    fine = (coarse[:, :1].repeat_interleave(2, 2).repeat_interleave(2, 3) % 8).repeat(1, 3, 1, 1)
    before = prior.bits(coarse, fine)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    for _ in range(30):
        loss = prior.bits(coarse, fine).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = prior.bits(coarse, fine)
    assert before.shape == (3,) and (after < before / 2).all()
