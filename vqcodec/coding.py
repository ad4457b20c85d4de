"""Range coding with constriction: symbols with integer frequencies (or uniform), nothing of the model.

The decoder guards the work a file can cause: a range coder's output holds at least the information of
what it coded, less a few bits, so a decoder that has read more information than its payload holds is
decoding data that is not there, and stops; constriction's checks of its own state become FormatError.
"""
from __future__ import annotations

import constriction
import numpy as np

from .bitstream import FormatError

CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
# The encoder stores its words without trailing zero bytes (at most a word's worth, as measured): the
# slack a payload may fall short of the information it codes.
SLACK_BITS = 96
MAX_SYMBOL_BITS = 24  # constriction gives every symbol at least 2^-24 of the range (perfect=False)


def payload_too_short(payload: bytes, information_bits: float) -> bool:
    """Whether a payload of this many bytes cannot hold this much information."""
    return information_bits > 8 * len(payload) + SLACK_BITS


class RangeEncoder:
    """Symbols in, payload bytes out."""

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()

    def uniform(self, symbols: np.ndarray, alphabet: int) -> None:
        """Every symbol costs log2(alphabet) bits."""
        self._coder.encode(symbols.astype(np.int32), constriction.stream.model.Uniform(alphabet))

    def categorical(self, symbols: np.ndarray, frequencies: np.ndarray) -> None:
        """symbols (n,) under their rows of integer frequencies (n, K), as float64."""
        self._coder.encode(symbols.astype(np.int32), CATEGORICAL, frequencies)

    def payload(self) -> bytes:
        # The range decoder reads missing words as zeros, so trailing zero bytes need not be stored.
        return self._coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


class RangeDecoder:
    """Payload bytes in, symbols out; raises FormatError as soon as the payload proves too short or
    invalid, so that the work before a refusal grows with the payload, not with what a header claims."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        words = np.frombuffer(payload + b"\0" * (-len(payload) % 4), dtype="<u4").astype(np.uint32)
        self._coder = constriction.stream.queue.RangeDecoder(words)
        self.information = 0.0  # bits decoded so far

    def _decode(self, *args) -> np.ndarray:
        try:
            return self._coder.decode(*args).astype(np.int64)
        except (AssertionError, ValueError, RuntimeError) as e:  # constriction's check of its own state
            raise FormatError(f"the payload is not a valid range-coder stream for this model ({e})") from None

    def uniform(self, count: int, alphabet: int) -> np.ndarray:
        if payload_too_short(self.payload, count * np.log2(alphabet)):
            raise FormatError(f"payload of {len(self.payload)} bytes is too short for {count} symbols")
        return self._decode(constriction.stream.model.Uniform(alphabet), count)

    def categorical(self, frequencies: np.ndarray) -> np.ndarray:
        """One symbol per row of integer frequencies (n, K), as float64."""
        symbols = self._decode(CATEGORICAL, frequencies)
        p = frequencies[np.arange(len(symbols)), symbols] / frequencies.sum(1)
        self.information += float(np.minimum(-np.log2(p), MAX_SYMBOL_BITS).sum())
        if payload_too_short(self.payload, self.information):
            raise FormatError(f"payload of {len(self.payload)} bytes ran out before the grid was decoded: "
                              "the file is truncated or damaged")
        return symbols
