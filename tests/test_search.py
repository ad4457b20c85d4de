"""The encoder's search for codes (vqcodec/search.py) on codebooks small enough to check by hand."""
import torch

from vqcodec.search import beam_search

# Two depths of 1-D codes. For z = 0, greedy takes 0.6 at depth 0 (nearer than -1.0), then -0.55 at
# depth 1: error 0.05^2. The path -1.0, +1.0 sums to exactly 0, but only a beam finds it.
CODEBOOKS = torch.tensor([[[0.6], [-1.0], [5.0]],
                          [[-0.55], [1.0], [9.0]]])
Z = torch.zeros(1, 1)


def test_a_beam_finds_a_closer_path_than_greedy_quantization():
    assert beam_search(Z, CODEBOOKS, None, 0.0, width=1).tolist() == [[0, 0]]   # greedy
    assert beam_search(Z, CODEBOOKS, None, 0.0, width=2).tolist() == [[1, 1]]


def test_the_rate_term_prefers_cheap_codes_only_when_a_bit_is_worth_enough():
    bits = torch.tensor([[[1.0, 1.0, 1.0],       # depth 0: all codes cost the same
                          [9.0, 0.1, 1.0]]])     # depth 1: +1.0 is cheap, -0.55 dear
    # Path (0.6, -0.55): error 0.0025, 10 bits; path (-1.0, 1.0): error 0, 1.1 bits -> wins at any lambda
    assert beam_search(Z, CODEBOOKS, bits, 0.01, width=2).tolist() == [[1, 1]]
    bits = torch.tensor([[[1.0, 1.0, 1.0],
                          [0.1, 9.0, 1.0]]])     # now the closest path is the dear one
    assert beam_search(Z, CODEBOOKS, bits, 1e-4, width=2).tolist() == [[1, 1]]   # bits nearly free
    # At lambda 0.01: (-1.0, 1.0) costs 0 + 0.01 * 10 = 0.1; (0.6, -0.55) costs 0.0025 + 0.01 * 1.1 = 0.0135
    assert beam_search(Z, CODEBOOKS, bits, 0.01, width=2).tolist() == [[0, 0]]


def test_positions_are_searched_independently():
    z = torch.tensor([[0.0], [-0.45]])
    out = beam_search(z, CODEBOOKS, None, 0.0, width=3)
    for n in range(2):
        alone = beam_search(z[n:n + 1], CODEBOOKS, None, 0.0, width=3)
        assert out[n].tolist() == alone[0].tolist()
