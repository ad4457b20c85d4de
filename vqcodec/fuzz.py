"""Structure-aware fuzzing of the decoder: mutate the fields of valid .vqc files (size, grid, quality,
coder, model id, grid CRC, payload), recompute the file CRC so that mutations reach the range coder and
the prior, and check that decoding ends in an image or a documented error, nothing else.

A small random model stands in for the shipped one so that a run of a million inputs fits in CPU hours:
the container, the checks and the coder are the same code whatever the weights.
"""
from __future__ import annotations

import struct
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import bitstream
from .bitstream import FormatError
from .codec import compress, decompress, describe
from .fineprior import FinePrior, FinePriorConfig
from .hierarchy import FineConfig, Hierarchy
from .prior import PriorConfig, PriorModel
from .tokenizer import Tokenizer, TokenizerConfig
from .zoo import Model, export_model, load_model

FUZZ_TOKENIZER = TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=64, depth=3)
FUZZ_PRIOR = PriorConfig(codebook_size=64, depth=3, window=4, n_layer=1, n_head=2, n_embd=16)
FUZZ_FINE = FineConfig(dim=4, depth=2, codebook_size=16, width=8, coarse_levels=2)
FUZZ_FINE_PRIOR = FinePriorConfig(coarse_codebook_size=64, coarse_levels=2, codebook_size=16, depth=2, width=8,
                                  layers=1)
FUZZ_MAX_PIXELS = 1 << 16   # keeps a mutated size from costing more than a small picture's decode


def fuzz_model(folder: Path | None = None, seed: int = 0, hierarchy: bool = False) -> Model:
    """A small randomly initialised model (f = 4, K = 64, 3 levels, 4 x 4 window), exported and loaded
    as any model folder is; hierarchy: a hierarchy's model instead (2 coarse levels, then 2 fine ones of
    16 codes)."""
    from .train.quantize import calibration_tiles, quantize_fine_prior, quantize_prior

    torch.manual_seed(seed)
    folder = Path(folder or tempfile.mkdtemp(prefix="vqcodec-fuzz-model-"))
    prior = PriorModel(FUZZ_PRIOR).eval()
    rng = np.random.default_rng(seed)
    grids = [rng.integers(0, FUZZ_PRIOR.codebook_size, (FUZZ_PRIOR.depth, 8, 8)) for _ in range(8)]
    tensors = quantize_prior(prior, calibration_tiles(grids, FUZZ_PRIOR.window, 32))
    if not hierarchy:
        export_model(folder, Tokenizer(FUZZ_TOKENIZER), FUZZ_PRIOR, tensors, {"default_quality": 1})
        return load_model(folder)
    tree = Hierarchy(Tokenizer(FUZZ_TOKENIZER), FUZZ_FINE)
    torch.nn.init.normal_(tree.fine.synthesis[-1].weight, std=0.1)  # a fine side that changes the picture
    fine_prior = FinePrior(FUZZ_FINE_PRIOR).eval()
    coarse = torch.from_numpy(rng.integers(0, 64, (8, 2, 4, 4)))
    fine = torch.from_numpy(rng.integers(0, 16, (8, 2, 8, 8)))
    export_model(folder, tree.tok, FUZZ_PRIOR, tensors, {"default_quality": 1}, tree.fine,
                 (FUZZ_FINE_PRIOR, quantize_fine_prior(fine_prior, coarse, fine)))
    return load_model(folder)


def seed_files(model: Model, seed: int = 0) -> list[bytes]:
    """Valid files of the model: a few small pictures at every level, with each coder."""
    rng = np.random.default_rng(seed)
    files = []
    for width, height in ((8, 8), (13, 7), (24, 16), (40, 33)):
        picture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for quality in range(1, model.levels + 1):
            for coder in ("prior", "uniform"):
                files.append(compress(picture, quality, model, coder=coder))
    return files


HEADER = bitstream.HEADER


def _fields(data: bytes) -> list:
    return list(HEADER.unpack(data[:HEADER.size]))


def _pack(fields: list, payload: bytes, fix_crc: bool) -> bytes:
    body = HEADER.pack(*fields) + payload
    crc = zlib.crc32(body) if fix_crc else 0xDEADBEEF
    return body + struct.pack(">I", crc)


def _size(rng: np.random.Generator) -> int:
    """A side length - 1, mostly small, sometimes anywhere in 0..65535."""
    return int(rng.integers(0, 64)) if rng.random() < 0.8 else int(rng.integers(0, 65536))


def mutate(data: bytes, rng: np.random.Generator, downsample: int) -> bytes:
    """One to four structure-aware edits of a .vqc file; the file CRC is recomputed nine times in ten."""
    fields, payload = _fields(data), bytearray(data[HEADER.size:-4])
    # fields: magic, version, width-1, height-1, model id, flags, grid h, grid w, grid crc
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(0, 11))
        if kind == 0:      # a new picture size with the grid it needs
            fields[2], fields[3] = _size(rng), _size(rng)
            fields[6], fields[7] = -(-(fields[3] + 1) // downsample), -(-(fields[2] + 1) // downsample)
        elif kind == 1:    # a grid that does not fit the size
            fields[6 + int(rng.integers(0, 2))] = _size(rng)
        elif kind == 2:    # quality nibble, coder bits, reserved bits
            fields[5] = int(rng.integers(0, 256))
        elif kind == 3:    # the quality alone
            fields[5] = fields[5] & 0xF0 | int(rng.integers(0, 16))
        elif kind == 4:
            fields[8] = int(rng.integers(0, 1 << 32))
        elif kind == 5:
            fields[4] = rng.bytes(4) if rng.random() < 0.5 else fields[4]
            fields[1] = int(rng.integers(0, 4)) if rng.random() < 0.2 else fields[1]
        elif kind == 6 and payload:  # bit flips
            for _ in range(int(rng.integers(1, 4))):
                k = int(rng.integers(0, len(payload)))
                payload[k] ^= 1 << int(rng.integers(0, 8))
        elif kind == 7:    # truncate
            del payload[int(rng.integers(0, len(payload) + 1)):]
        elif kind == 8:    # extend
            payload += rng.bytes(int(rng.integers(1, 64)))
        elif kind == 9 and payload:  # overwrite a run of bytes
            k = int(rng.integers(0, len(payload)))
            n = int(rng.integers(1, 9))
            payload[k:k + n] = rng.bytes(n) if rng.random() < 0.5 else bytes(n)
        elif kind == 10:   # a payload of random bytes
            payload = bytearray(rng.bytes(int(rng.integers(0, 200))))
    out = _pack(fields, bytes(payload), fix_crc=rng.random() < 0.9)
    if rng.random() < 0.02:
        out = out[:int(rng.integers(0, len(out) + 1))]
    return out


@dataclass
class Outcome:
    """How the decoder ended on one input: 'image', or the documented error's class and reason."""
    kind: str
    documented: bool


def decode_once(data: bytes, model: Model, max_pixels: int | None = FUZZ_MAX_PIXELS) -> Outcome:
    """Run describe() and decompress() on the input; classify how they end."""
    try:
        describe(data, max_pixels)
    except FormatError as e:
        described = f"{type(e).__name__}: {_reason(e)}"
    except Exception as e:  # anything else is a finding
        return Outcome(f"describe raised {type(e).__name__}: {e}", False)
    else:
        described = "ok"
    try:
        decompress(data, model, max_pixels=max_pixels)
    except FormatError as e:
        return Outcome(f"{type(e).__name__}: {_reason(e)}", True)
    except Exception as e:
        return Outcome(f"decompress raised {type(e).__name__}: {e}", False)
    return Outcome("image" if described == "ok" else f"image, but describe said {described}", described == "ok")


def _reason(e: Exception) -> str:
    """An error message without its numbers: outcome classes stay few."""
    def variable(word: str) -> bool:  # numbers, and model ids (8 hex digits)
        return any(c.isdigit() for c in word) or len(word.strip(",.")) == 8 and all(
            c in "0123456789abcdef" for c in word.strip(",."))

    return " ".join(w for w in str(e).split()[:8] if not variable(w))


@dataclass
class FuzzReport:
    inputs: int = 0
    outcomes: Counter = field(default_factory=Counter)
    findings: list[tuple[bytes, str]] = field(default_factory=list)
    slowest: tuple[float, bytes] = (0.0, b"")


def fuzz(model: Model, inputs: int, seed: int = 0, progress: bool = False) -> FuzzReport:
    """Decode `inputs` mutated files; findings are the inputs that ended outside the documented errors."""
    import time

    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    seeds = seed_files(model, seed)
    report = FuzzReport()
    for _ in tqdm(range(inputs), desc="fuzzing", disable=not progress, mininterval=5):
        data = mutate(seeds[int(rng.integers(0, len(seeds)))], rng, model.downsample)
        t0 = time.perf_counter()
        outcome = decode_once(data, model)
        elapsed = time.perf_counter() - t0
        report.inputs += 1
        report.outcomes[outcome.kind] += 1
        if not outcome.documented:
            report.findings.append((data, outcome.kind))
        if elapsed > report.slowest[0]:
            report.slowest = (elapsed, data)
    return report
