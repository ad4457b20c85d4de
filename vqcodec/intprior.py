"""Integer-exact inference of the transformer prior: the same symbol frequencies, bit for bit, on any
machine, whether the sequence is evaluated in one parallel pass or position by position.

A range decoder must see exactly the distribution the encoder used. Float results depend on the order
of summation (BLAS kernel, thread count, device, a full pass versus a cached step), so coding uses
this integer twin of `PriorModel` instead, in which every value is an integer and every operation exact:

- matrix products take int8-range operands and run as float32 (or float64) GEMMs: every partial sum
  is an integer below 2^24 (2^53), which the format holds exactly, so any summation order gives the
  same integer; an operand too wide for that bound is split into 7-bit limbs. On a CPU the linear
  layers run as int8 GEMMs with int32 accumulation instead (exact too, and ~4x less weight traffic);
- everything else is int64 array arithmetic, exact and independent of order: LayerNorm with an
  integer square root, requantization by an integer multiplier and a right shift, GELU and exp by
  lookup tables that were computed once at export and ship with the weights (no libm in the result).

The arrays are torch tensors (on any device), or numpy arrays in the twin `on_host()` gives: the same
integers for a fraction of torch's per-operation overhead, which is most of the decoder's position-by-
position walk on a CPU (its GEMMs stay torch's).

Units: the residual stream holds x * 2^resid_bits; GEMM inputs are int8 with per-site scales folded
into the multipliers; attention scores are in 1/ATTN_UNIT nats, logits in 1/LOGIT_UNIT nats.
`vqcodec/train/quantize.py` makes the tensors from a float prior; bitstreams/FORMAT.md refers here.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .exact import Ints, clip, div_round, exact_matmul, int8_matmul, isqrt, namespace, requantize
from .prior import PriorConfig

ACT_MAX = 127          # GEMM operands are int8-range
ATTN_UNIT = 32         # attention scores in units of 1/32 nat
EXP_ONE = 1 << 14      # exp(0) in the attention table
LOGIT_UNIT = 64        # logits in units of 1/64 nat
FREQ_ONE = 1 << 20     # exp(0) in the logit table: the most likely symbol's frequency
GELU_HALF = 2048       # the GELU table covers input indices -2048 .. 2047
LN_SHIFT = 12          # fractional bits of the LayerNorm gamma and beta multipliers
MASKED = -(1 << 40)    # attention score of a future position in the parallel pass

def logit_frequencies(logits: Ints, table: Ints) -> Ints:
    """Integer logits (..., K) in 1/LOGIT_UNIT nats -> symbol frequencies (..., K), integers >= 1: exp of
    each logit less the largest, through the exp table stored with the weights."""
    return table[clip(namespace(logits).amax(logits, axis=-1, keepdims=True) - logits, None, len(table) - 1)]


class IntPrior:
    """The integer twin of a PriorModel, built from the tensors quantize.py writes (prior_int8.safetensors).
    Same interface for coding: new_caches / step / frequencies, plus the one-pass `forward`."""

    def __init__(self, cfg: PriorConfig, tensors: dict[str, torch.Tensor], accumulate: torch.dtype | None = None):
        """accumulate: the dtype the linear layers' GEMMs accumulate in: torch.float32 (the default),
        torch.float64 or torch.int32 (int8 GEMMs, CPU only, where this torch offers them). Every choice
        gives the same integers; float32 is the fast one on most CPUs (torch's int8 GEMM was 16 times
        slower than its float32 GEMM on a 2-core AMD EPYC, eval/results/gemm_ab.md)."""
        self.cfg = cfg
        self.t = {k: v.long() for k, v in tensors.items()}  # torch tensors here, numpy arrays on_host()
        self.shift = {k[:-len(".shift")]: int(v) for k, v in self.t.items() if k.endswith(".shift")}
        self.xp = torch
        self._set_gemm_weights(accumulate or torch.float32)

    def _set_gemm_weights(self, accumulate: torch.dtype) -> None:
        """The linear layers' weights, transposed to (K, N) once, in the GEMM operand dtype; the output
        head's as (depth, K, N), one contiguous matrix per depth."""
        self.accumulate = accumulate
        operand = torch.int8 if accumulate == torch.int32 else accumulate
        self.w = {k[:-len(".weight")]: v.t().to(operand).contiguous() for k, v in self.t.items()
                  if k.endswith(".weight")}
        C, K = self.w["head.out"].shape[0], self.cfg.codebook_size
        self.w["head.out"] = self.w["head.out"].reshape(C, -1, K).transpose(0, 1).contiguous()

    def to(self, device: str | torch.device) -> "IntPrior":
        if self.xp is np:
            raise ValueError("a prior on_host() stays on the host; move the prior it came from")
        self.t = {k: v.to(device) for k, v in self.t.items()}
        if self.accumulate == torch.int32 and self.device.type != "cpu":
            self._set_gemm_weights(torch.float32)  # torch's int8 GEMM elsewhere has shape limits
        else:
            self.w = {k: v.to(device) for k, v in self.w.items()}
        return self

    def on_host(self) -> "IntPrior":
        """This CPU prior's twin on numpy arrays (sharing its weights): the same integers, each small
        operation several times cheaper. Its inputs and outputs are numpy arrays."""
        if self.device.type != "cpu":
            raise ValueError(f"only a CPU prior has a host twin; this one is on {self.device}")
        twin = copy.copy(self)
        twin.t, twin.xp = {k: v.numpy() for k, v in self.t.items()}, np
        return twin

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.xp is np else self.t["start"].device

    def asarray(self, a: np.ndarray) -> Ints:
        """A numpy array as this prior's kind of array, on its device."""
        return a if self.xp is np else torch.from_numpy(a).to(self.device)

    # --- integer building blocks -------------------------------------------------------------------
    def requant(self, x: Ints, name: str) -> Ints:
        """round(x * mult / 2^shift) with the site's (per-channel) multiplier."""
        return requantize(x, self.t[name + ".mult"], self.shift[name])

    def gemm(self, x: Ints, w: torch.Tensor) -> Ints:
        """int8-range x (..., K) times a weight matrix (K, N) of self.w -> exact int64 (..., N)."""
        if w.dtype == torch.int8:  # int32 accumulation: K * 127^2 stays far below 2^31
            return int8_matmul(x, w)
        return exact_matmul(x, w, ACT_MAX, ACT_MAX)

    def linear(self, x: Ints, name: str) -> Ints:
        """int8-range x (..., K) -> exact accumulator (..., N), bias included."""
        return self.gemm(x, self.w[name]) + self.t[name + ".bias"]

    def layer_norm(self, x: Ints, name: str, to_int8: bool = True) -> Ints:
        """x (..., C) in residual units -> LayerNorm(x) in the site's output units (int8, or residual units)."""
        C = x.shape[-1]
        d = x - x.sum(axis=-1, keepdims=True) // C
        var = (d * d).sum(axis=-1, keepdims=True) // C
        sigma = isqrt(var + self.t["eps"])
        y = div_round(d * self.t[name + ".gamma"] + self.t[name + ".beta"] * sigma, sigma << LN_SHIFT)
        return clip(y, -ACT_MAX, ACT_MAX) if to_int8 else y

    def gelu(self, acc: Ints, name: str) -> Ints:
        """fc1 accumulator -> int8-range GELU output through the site's table."""
        index = clip(self.requant(acc, name), -GELU_HALF, GELU_HALF - 1) + GELU_HALF
        return self.t[name + ".gelu"][index]

    def mlp(self, x: Ints, ln: str, fc1: str, fc2: str) -> Ints:
        """Residual-unit update LayerNorm -> fc1 -> GELU -> fc2."""
        return self.requant(self.linear(self.gelu(self.linear(self.layer_norm(x, ln), fc1), fc1), fc2), fc2)

    def attention(self, x: Ints, i: int, cache: list | None) -> Ints:
        """x (B, T, C) residual units -> the attention update (B, T, C). With a cache (a list, empty at
        the start of a tile), x holds the next position (T = 1) and sees all cached ones; without, the
        pass is causal over x."""
        p, B, T, C = f"blocks.{i}.attn.", *x.shape
        H, xp = self.cfg.n_head, self.xp
        qkv = clip(self.requant(self.linear(self.layer_norm(x, f"blocks.{i}.ln1"), p + "qkv"), p + "qkv"), -ACT_MAX, ACT_MAX)
        q, k, v = (qkv[..., j * C:(j + 1) * C].reshape(B, T, H, C // H).swapaxes(1, 2) for j in range(3))
        # Keys and values are GEMM operands (torch tensors either way). Values are weighted by
        # int16-range attention weights: float64 keeps that product in one GEMM.
        if xp is np:
            k, v = torch.from_numpy(k), torch.from_numpy(v)
        k, v = k.to(torch.float64 if self.accumulate == torch.float64 else torch.float32), v.double()
        if cache is not None:
            if not cache:  # room for a whole tile, filled position by position
                n = self.cfg.window ** 2
                cache += [k.new_empty(B, H, n, C // H), v.new_empty(B, H, n, C // H), 0]
            n = cache[2] + T
            cache[0][:, :, cache[2]:n], cache[1][:, :, cache[2]:n] = k, v
            k, v, cache[2] = cache[0][:, :, :n], cache[1][:, :, :n], n
        scores = self.requant(exact_matmul(q, k.transpose(2, 3), ACT_MAX, ACT_MAX), p + "score")  # (B, H, T, S)
        future = None
        if T > 1:
            steps = self.asarray(np.arange(T))
            future = steps[:, None] < steps[None]
            scores = xp.where(future, MASKED, scores)
        table = self.t["exp_attn"]
        weights = table[clip(xp.amax(scores, axis=-1, keepdims=True) - scores, None, len(table) - 1)]
        if future is not None:
            weights = xp.where(future, 0, weights)
        num = exact_matmul(weights, v, EXP_ONE, ACT_MAX)                                    # (B, H, T, hd)
        shift = self.shift[p + "out"]
        y = div_round(num * self.t[p + "out.mult"], weights.sum(axis=-1, keepdims=True) << shift)
        y = clip(y, -ACT_MAX, ACT_MAX).swapaxes(1, 2).reshape(B, T, C)
        return self.requant(self.linear(y, p + "proj"), p + "proj")

    # --- the prior ---------------------------------------------------------------------------------
    def embed_codes(self, codes: Ints) -> Ints:
        """codes (..., q) -> summed depth-specific embeddings (..., C), residual units."""
        offsets = self.asarray(np.arange(codes.shape[-1]) * self.cfg.codebook_size)
        return self.t["code_emb"][codes + offsets].sum(axis=-2)

    def positions(self, t: Ints, tile_w: Ints, quality: int) -> Ints:
        return self.t["row_emb"][t // tile_w] + self.t["col_emb"][t % tile_w] + self.t["quality_emb"][quality - 1]

    def spatial(self, x: Ints, caches: list | None = None) -> Ints:
        """(B, T, C) -> final spatial state (B, T, C), residual units."""
        for i in range(self.cfg.n_layer):
            x = x + self.attention(x, i, caches[i] if caches is not None else None)
            x = x + self.mlp(x, f"blocks.{i}.ln2", f"blocks.{i}.mlp.0", f"blocks.{i}.mlp.2")
        return self.layer_norm(x, "ln_f", to_int8=False)

    def logits(self, h: Ints, known: Ints, d: int) -> Ints:
        """Integer logits (..., K) in 1/LOGIT_UNIT nats for depth d, from the spatial state h (..., C)
        and the codes known (..., d) at depths < d."""
        u = h + self.t["head.depth_emb"][d]
        if d:
            u = u + self.embed_codes(known)
        u = u + self.mlp(u, "head.block.0", "head.block.1", "head.block.3")
        K = self.cfg.codebook_size
        rows = slice(d * K, (d + 1) * K)
        acc = self.gemm(self.layer_norm(u, "head.ln"), self.w["head.out"][d])
        return requantize(acc + self.t["head.out.bias"][rows], self.t["head.out.mult"][rows], self.shift["head.out"])

    def frequencies(self, h: Ints, known: Ints, d: int) -> Ints:
        """Symbol frequencies (..., K), integers >= 1: exp of the logits through the stored table."""
        return logit_frequencies(self.logits(h, known, d), self.t["exp_logit"])

    def new_caches(self) -> list:
        return [[] for _ in range(self.cfg.n_layer)]

    def step(self, prev_codes: Ints | None, t: Ints, tile_w: Ints, quality: int, caches: list) -> Ints:
        """One position for B tiles (as PriorModel.step): tile b is tile_w[b] wide, at position t[b];
        prev_codes (B, q) or None at the start -> spatial state (B, C)."""
        if prev_codes is None:
            x = self.xp.broadcast_to(self.t["start"], (len(tile_w), self.cfg.n_embd))
        else:
            x = self.embed_codes(prev_codes)
        return self.spatial((x + self.positions(t, tile_w, quality))[:, None], caches)[:, 0]

    def forward(self, codes: Ints, lengths: Ints, tile_w: Ints) -> Ints:
        """One causal pass over B tiles: codes (B, T, q) in raster order, tile b having lengths[b] <= T
        positions (later ones are padding) in rows tile_w[b] wide -> frequencies (B, T, q, K), equal
        bit for bit to what `step` and `frequencies` give position by position."""
        B, T, quality = codes.shape
        xp = self.xp
        x = xp.concatenate([xp.broadcast_to(self.t["start"], (B, 1, self.cfg.n_embd)), self.embed_codes(codes[:, :-1])], 1)
        t = xp.minimum(self.asarray(np.arange(T))[None], lengths[:, None] - 1)
        h = self.spatial(x + self.positions(t, tile_w[:, None], quality))
        return xp.stack([self.frequencies(h, codes[..., :d], d) for d in range(quality)], 2)
