"""The range coder alone: symbols under integer frequencies come back exactly, cost what their
probabilities say, and a payload that cannot hold what it claims is refused."""
import numpy as np
import pytest

from vqcodec.bitstream import FormatError
from vqcodec.coding import SLACK_BITS, RangeDecoder, RangeEncoder, payload_too_short


def random_stream(seed: int, n: int = 500, K: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """n symbols drawn from their own rows of sharp random integer frequencies (n, K)."""
    rng = np.random.default_rng(seed)
    frequencies = np.floor(rng.pareto(0.5, (n, K)) * 10 + 1)  # heavy-tailed: some symbols dominate
    symbols = np.array([rng.choice(K, p=row / row.sum()) for row in frequencies])
    return symbols, frequencies


def information_bits(symbols: np.ndarray, frequencies: np.ndarray) -> float:
    p = frequencies[np.arange(len(symbols)), symbols] / frequencies.sum(1)
    return float(-np.log2(p).sum())


@pytest.mark.parametrize("seed", range(3))
def test_categorical_and_uniform_symbols_round_trip_in_one_stream(seed):
    symbols, frequencies = random_stream(seed)
    flat = np.random.default_rng(seed).integers(0, 1024, 77)
    encoder = RangeEncoder()
    encoder.uniform(flat, 1024)
    encoder.categorical(symbols, frequencies)
    decoder = RangeDecoder(encoder.payload())
    np.testing.assert_array_equal(decoder.uniform(len(flat), 1024), flat)
    np.testing.assert_array_equal(decoder.categorical(frequencies), symbols)


def test_a_payload_costs_its_information_and_no_more_than_a_few_words_extra():
    symbols, frequencies = random_stream(7, n=4000)
    encoder = RangeEncoder()
    encoder.categorical(symbols, frequencies)
    bits, ideal = 8 * len(encoder.payload()), information_bits(symbols, frequencies)
    assert ideal - SLACK_BITS <= bits <= ideal * 1.01 + 64


def test_uniform_symbols_cost_log2_of_the_alphabet():
    symbols = np.random.default_rng(1).integers(0, 1024, 3200)
    encoder = RangeEncoder()
    encoder.uniform(symbols, 1024)
    assert len(encoder.payload()) <= 3200 * 10 / 8 + 8


def test_a_truncated_payload_is_refused_once_it_has_given_more_than_it_holds():
    symbols, frequencies = random_stream(2, n=2000)
    encoder = RangeEncoder()
    encoder.categorical(symbols, frequencies)
    payload = encoder.payload()
    assert not payload_too_short(payload, information_bits(symbols, frequencies))
    with pytest.raises(FormatError, match="ran out"):
        RangeDecoder(payload[:len(payload) // 4]).categorical(frequencies)


def test_a_uniform_payload_too_short_for_its_count_is_refused_before_decoding():
    with pytest.raises(FormatError, match="too short"):
        RangeDecoder(b"\x01" * 100).uniform(10_000, 1024)
