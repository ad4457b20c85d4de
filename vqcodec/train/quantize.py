"""Post-training quantization: a float prior (the transformer, or the fine grid's CNN) -> the integer tensors of
vqcodec/intprior.py (intfineprior.py).

Weights become int8 with one scale per output channel; activations that feed a matrix product become
int8 with one scale per site, taken from the largest magnitude seen on calibration tiles of training
token grids (never the benchmark images); the residual stream becomes fixed point with as many
fractional bits as keep it below 2^20. Scales are folded into integer multipliers, so the integer
prior itself stores no floats. Lookup tables (exp, GELU) are computed here, once, so that inference
never calls a platform's libm.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..fineprior import FinePrior
from ..intprior import ACT_MAX, ATTN_UNIT, EXP_ONE, FREQ_ONE, GELU_HALF, LN_SHIFT, LOGIT_UNIT
from ..prior import PriorModel

RESID_LIMIT = 1 << 20   # the residual stream's largest calibration magnitude maps below this
MULT_BITS = 24          # requantization multipliers lie in [2^23, 2^24)


@torch.no_grad()
def activation_ranges(prior: PriorModel, tiles: torch.Tensor, batch: int = 32) -> dict[str, float]:
    """Largest |value| at every site the integer prior quantizes, over tiles (N, w, w, depth) coded
    at every quality level."""
    ranges: dict[str, float] = defaultdict(float)
    C = prior.cfg.n_embd

    def note(key: str, t: torch.Tensor) -> None:
        ranges[key] = max(ranges[key], t.abs().max().item())

    def watch(name: str, module: nn.Module):
        def hook(_, inputs, output):
            if isinstance(module, nn.LayerNorm):
                note("resid", inputs[0])
                note("resid" if name == "ln_f" else name, output)
            elif name.endswith("attn.qkv"):
                for part, y in zip("qkv", output.split(C, -1)):
                    note(f"{name}.{part}", y)
            elif name.endswith("attn.proj"):
                note(f"{name}.in", inputs[0])
            elif isinstance(module, nn.GELU):
                note(f"{name}.in", inputs[0])
                note(f"{name}.out", output)
        return module.register_forward_hook(hook)

    hooks = [watch(n, m) for n, m in prior.named_modules()
             if isinstance(m, (nn.LayerNorm, nn.GELU)) or n.endswith(("attn.qkv", "attn.proj"))]
    prior.eval()
    try:
        for quality in tqdm(range(1, prior.cfg.depth + 1), desc="calibrating"):
            for i in range(0, len(tiles), batch):
                prior(tiles[i:i + batch, ..., :quality])
    finally:
        for h in hooks:
            h.remove()
    return dict(ranges)


def multiplier(out: dict, name: str, ratio: torch.Tensor) -> None:
    """ratio (float64, per channel or one) -> integer mult and a shared shift, ratio ~ mult / 2^shift."""
    shift = MULT_BITS - 1 - math.floor(math.log2(ratio.max().item()))
    if shift < 1:
        raise ValueError(f"requantization ratio of {name} too large ({ratio.max().item():.3g})")
    out[f"{name}.mult"] = torch.round(ratio * 2.0 ** shift).long()
    out[f"{name}.shift"] = torch.tensor(shift)


def linear_weights(out: dict, name: str, weight: torch.Tensor, bias: torch.Tensor, s_in: float,
                   s_out: float | torch.Tensor) -> None:
    """A linear map (N, K) + (N,) from int8 inputs at scale s_in to outputs at scale s_out: int8 weights
    with one scale per output channel, the bias in accumulator units, and the requantization multiplier."""
    w = weight.double()
    s_w = w.abs().amax(1).clamp(min=1e-12) / ACT_MAX
    out[f"{name}.weight"] = torch.round(w / s_w[:, None]).to(torch.int8)
    out[f"{name}.bias"] = torch.round(bias.double() / (s_in * s_w)).long()
    multiplier(out, name, s_in * s_w / s_out)


def _linear(out: dict, name: str, layer: nn.Linear, s_in: float, s_out: float | torch.Tensor) -> None:
    linear_weights(out, name, layer.weight, layer.bias, s_in, s_out)


def _layer_norm(out: dict, name: str, layer: nn.LayerNorm, s_out: float) -> None:
    out[f"{name}.gamma"] = torch.round(layer.weight.double() / s_out * 2 ** LN_SHIFT).long()
    out[f"{name}.beta"] = torch.round(layer.bias.double() / s_out * 2 ** LN_SHIFT).long()


def _gelu_table(s_in: float, s_out: float) -> torch.Tensor:
    x = torch.arange(-GELU_HALF, GELU_HALF, dtype=torch.float64) * s_in
    return torch.round(0.5 * x * (1 + torch.erf(x / math.sqrt(2))) / s_out).clamp(-ACT_MAX, ACT_MAX).long()


def exp_table(one: int, unit: int, floor: int) -> torch.Tensor:
    """round(one * exp(-i / unit)) for i = 0, 1, ... while it stays >= floor, then floor itself."""
    values = []
    while (v := round(one * math.exp(-len(values) / unit))) > floor:
        values.append(v)
    return torch.tensor(values + [floor])


def quantize_prior(prior: PriorModel, tiles: torch.Tensor) -> dict[str, torch.Tensor]:
    """The integer prior's tensors (intprior.IntPrior) for a float prior, calibrated on tiles
    (N, window, window, depth) of training token grids."""
    r = activation_ranges(prior, tiles)
    cfg, out = prior.cfg, {}
    bits = math.floor(math.log2(RESID_LIMIT / r["resid"]))
    resid = 2.0 ** -bits
    out["resid_bits"] = torch.tensor(bits)
    out["eps"] = torch.tensor(round(prior.ln_f.eps * 4.0 ** bits))
    params = dict(prior.named_parameters())
    for name in ("code_emb.weight", "start", "row_emb.weight", "col_emb.weight", "quality_emb.weight",
                 "head.depth_emb.weight"):
        out[name.removesuffix(".weight")] = torch.round(params[name].double() / resid).to(torch.int32)
    modules = dict(prior.named_modules())
    scale = {k: v / ACT_MAX for k, v in r.items()}  # int8 scales of the sites that feed GEMMs
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        s_q, s_k, s_v = (scale[f"{p}attn.qkv.{c}"] for c in "qkv")
        s_o = scale[f"{p}attn.proj.in"]
        _layer_norm(out, p + "ln1", modules[p + "ln1"], scale[p + "ln1"])
        per_channel = torch.cat([torch.full((cfg.n_embd,), s, dtype=torch.float64) for s in (s_q, s_k, s_v)])
        _linear(out, p + "attn.qkv", modules[p + "attn.qkv"], scale[p + "ln1"], per_channel)
        hd = cfg.n_embd // cfg.n_head
        multiplier(out, p + "attn.score", torch.tensor([s_q * s_k / math.sqrt(hd) * ATTN_UNIT], dtype=torch.float64))
        multiplier(out, p + "attn.out", torch.tensor([s_v / s_o], dtype=torch.float64))
        _linear(out, p + "attn.proj", modules[p + "attn.proj"], s_o, resid)
        _layer_norm(out, p + "ln2", modules[p + "ln2"], scale[p + "ln2"])
        _mlp(out, modules, r, scale[p + "ln2"], p + "mlp.0", p + "mlp.1", p + "mlp.2", resid)
    _layer_norm(out, "ln_f", prior.ln_f, resid)
    _layer_norm(out, "head.block.0", modules["head.block.0"], scale["head.block.0"])
    _mlp(out, modules, r, scale["head.block.0"], "head.block.1", "head.block.2", "head.block.3", resid)
    _layer_norm(out, "head.ln", prior.head.ln, scale["head.ln"])
    _linear(out, "head.out", prior.head.out, scale["head.ln"], 1.0 / LOGIT_UNIT)
    out["exp_attn"] = exp_table(EXP_ONE, ATTN_UNIT, 0)
    out["exp_logit"] = exp_table(FREQ_ONE, LOGIT_UNIT, 1)
    return {k: v.contiguous() for k, v in out.items()}


def _mlp(out: dict, modules: dict, r: dict, s_in: float, fc1: str, gelu: str, fc2: str, resid: float) -> None:
    s_gelu_in = r[f"{gelu}.in"] / (GELU_HALF - 1)
    s_gelu_out = r[f"{gelu}.out"] / ACT_MAX
    _linear(out, fc1, modules[fc1], s_in, s_gelu_in)
    out[f"{fc1}.gelu"] = _gelu_table(s_gelu_in, s_gelu_out)
    _linear(out, fc2, modules[fc2], s_gelu_out, resid)


def calibration_tiles(grids: list[np.ndarray], window: int, n: int, seed: int = 0) -> torch.Tensor:
    """n random full window x window tiles (n, window, window, depth) from full-depth grids (depth, h, w)."""
    rng = np.random.default_rng(seed)
    usable = [g for g in grids if g.shape[1] >= window and g.shape[2] >= window]
    tiles = []
    for _ in range(n):
        g = usable[rng.integers(len(usable))]
        y, x = rng.integers(g.shape[1] - window + 1), rng.integers(g.shape[2] - window + 1)
        tiles.append(g[:, y:y + window, x:x + window].transpose(1, 2, 0))
    return torch.from_numpy(np.stack(tiles).astype(np.int64))


FINE_TABLES = ("coarse_emb", "phase_emb", "below_emb", "anchor_emb", "pass_emb")


@torch.no_grad()
def fine_activation_ranges(prior: FinePrior, coarse: torch.Tensor, fine: torch.Tensor) -> dict[str, float]:
    """Largest magnitude of the context and of each layer's ReLU output, over calibration grids
    (coarse (N, L, h, w), fine (N, depth, 2h, 2w)) in every depth's two passes."""
    ranges: dict[str, float] = defaultdict(float)
    for d in range(prior.cfg.depth):
        for second in (False, True):
            x = prior.context(coarse, fine, d, second)
            ranges["context"] = max(ranges["context"], x.abs().max().item())
            ranges["ctx"] = max(ranges["ctx"], x.clamp(min=0).max().item())
            for i, conv in enumerate(prior.convs):
                x = conv(F.relu(x))
                ranges[f"convs.{i}"] = max(ranges[f"convs.{i}"], x.clamp(min=0).max().item())
    return dict(ranges)


def quantize_fine_prior(prior: FinePrior, coarse: torch.Tensor, fine: torch.Tensor) -> dict[str, torch.Tensor]:
    """The integer fine prior's tensors (intfineprior.IntFinePrior) for a float one, calibrated on grids
    of training pictures (coarse (N, L, h, w), fine (N, depth, 2h, 2w)), never the benchmark's."""
    r = fine_activation_ranges(prior, coarse, fine)
    out: dict[str, torch.Tensor] = {}
    s_ctx = r["context"] / RESID_LIMIT
    for name in FINE_TABLES:
        out[name] = torch.round(getattr(prior, name).weight.double() / s_ctx).to(torch.int32)
    scale = {k: max(v, 1e-12) / ACT_MAX for k, v in r.items()}
    multiplier(out, "ctx", torch.tensor([s_ctx / scale["ctx"]], dtype=torch.float64))
    s_in = scale["ctx"]
    for i, conv in enumerate(prior.convs):
        linear_weights(out, f"convs.{i}", conv.weight.reshape(conv.out_channels, -1), conv.bias, s_in,
                       scale[f"convs.{i}"])
        s_in = scale[f"convs.{i}"]
    linear_weights(out, "out", prior.out.weight.reshape(prior.out.out_channels, -1), prior.out.bias, s_in,
                   1.0 / LOGIT_UNIT)
    out["exp_logit"] = exp_table(FREQ_ONE, LOGIT_UNIT, 1)
    return {k: v.contiguous() for k, v in out.items()}
