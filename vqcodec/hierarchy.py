"""A finer grid over the f16 tokenizer (VQ-VAE-2's two-level hierarchy, as a residual transform coder).

The f16 tokenizer gives its picture from the codes of its first `coarse_levels` depths. The fine side
codes what that picture misses on an f8 grid (four positions per f16 position): a small fine encoder
reads the f16 encoder's f8 features and the picture's 8x8 blocks of both the original and the f16
picture, and its latent goes through residual codebooks of its own. A small synthesis turns the fine
codes back into 8x8 blocks of detail that are added to the f16 picture (and, where the config asks for
one, an f4 stage corrects those blocks across their edges). The f16 tokenizer is frozen
under it: its grids, its prior and its files stay valid. A fine side may have its own f16 decoder (a copy
of the tokenizer's that trains with it), whose picture of the coarse codes the detail is then added to:
the coarse levels alone still decode through the tokenizer's.

Shapes: an image (B, 3, H, W) with H, W multiples of 16 has a coarse grid (B, coarse_levels, H/16, W/16)
and a fine grid (B, fine depth, H/8, W/8).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .families import read_tokenizer, state_tensors
from . import tokenizer as tokenizer_module
from .tokenizer import Decoder, ResBlock, ResidualQuantizer, Tokenizer, TokenizerConfig, _in_patches, _norm


@dataclass
class FineConfig:
    dim: int = 16              # the fine latent's channels
    depth: int = 3             # fine residual codebooks
    codebook_size: int = 256
    width: int = 128           # channels of the fine encoder and synthesis
    coarse_levels: int = 3     # f16 depths under every fine code
    synthesis_blocks: int = 1  # ResBlocks of the synthesis
    refine_width: int = 0      # channels of the synthesis's f4 stage (BlockRefiner); 0: none
    own_decoder: bool = False  # the picture under the detail from the fine side's own f16 decoder

    def to_dict(self) -> dict:
        """The config as folders keep it: keys added later are left out at their default, so that the
        configs written before them keep their bytes (and models their ids)."""
        return {k: v for k, v in asdict(self).items() if k not in _LATER_KEYS or v != _LATER_KEYS[k]}

    @classmethod
    def from_dict(cls, d: dict) -> "FineConfig":
        return cls(**d)


_LATER_KEYS = {"refine_width": 0, "own_decoder": False}


def encoder_f8_stage(encoder: nn.Module) -> int:
    """Index in the encoder body of its last strided conv: the map just before it is at f8."""
    strided = [i for i, layer in enumerate(encoder.body) if isinstance(layer, nn.Conv2d) and layer.stride == (2, 2)]
    return strided[-1]


class BlockRefiner(nn.Module):
    """The synthesis's f4 stage: from the synthesis's features at f8 and the f16 picture, a correction at
    4x4-pixel resolution, so that detail can cross the edges of the 8x8 blocks the synthesis draws. Its
    last convolution starts at zero: a stage grown on a trained synthesis starts out changing nothing.
    Features (B, width, 2h, 2w) and picture (B, 3, 16h, 16w) -> correction (B, 3, 16h, 16w)."""

    def __init__(self, width: int, channels: int, f: int):
        super().__init__()
        self.f = f // 2                            # pixels per f4 position along a side
        blocks = 3 * self.f ** 2
        self.up = nn.Sequential(nn.Conv2d(width, 4 * channels, 1), nn.PixelShuffle(2))
        self.read = nn.Conv2d(channels + blocks, channels, 3, padding=1)
        self.block = ResBlock(channels, channels)
        self.out = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, blocks, 1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, features: torch.Tensor, x_coarse: torch.Tensor) -> torch.Tensor:
        h = self.read(torch.cat([self.up(features), F.pixel_unshuffle(x_coarse, self.f)], 1))
        return F.pixel_shuffle(self.out(self.block(h)), self.f)


class FineCoder(nn.Module):
    """The f8 side: fine encoder, its residual codebooks, and the synthesis of detail from its latent."""

    def __init__(self, tok: Tokenizer, cfg: FineConfig):
        super().__init__()
        self.cfg = cfg
        self.f = tok.cfg.downsample // 2           # pixels per fine position along a side
        blocks = 3 * self.f ** 2                   # an f x f RGB block as channels
        self.read = nn.Conv2d(tok.cfg.channels[-2] + 2 * blocks, cfg.width, 3, padding=1)
        self.block = ResBlock(cfg.width, cfg.width)
        self.out = nn.Sequential(_norm(cfg.width), nn.SiLU(), nn.Conv2d(cfg.width, cfg.dim, 1))
        self.quantizer = ResidualQuantizer(TokenizerConfig(code_dim=cfg.dim, depth=cfg.depth,
                                                           codebook_size=cfg.codebook_size))
        self.synthesis = nn.Sequential(nn.Conv2d(cfg.dim + blocks, cfg.width, 3, padding=1),
                                       *[ResBlock(cfg.width, cfg.width) for _ in range(cfg.synthesis_blocks)],
                                       _norm(cfg.width), nn.SiLU(), nn.Conv2d(cfg.width, blocks, 1))
        nn.init.zeros_(self.synthesis[-1].weight)  # a new fine side starts out adding nothing
        nn.init.zeros_(self.synthesis[-1].bias)
        self.refine = BlockRefiner(cfg.width, cfg.refine_width, self.f) if cfg.refine_width else None
        self.decoder = Decoder(tok.cfg) if cfg.own_decoder else None

    def latent(self, features: torch.Tensor, x: torch.Tensor, x_coarse: torch.Tensor) -> torch.Tensor:
        """f8 features (B, C8, 2h, 2w), picture (B, 3, 16h, 16w) and the f16 picture of the coarse codes
        -> fine latent (B, dim, 2h, 2w)."""
        seen = [F.pixel_unshuffle(x - x_coarse, self.f), F.pixel_unshuffle(x_coarse, self.f)]
        return self.out(self.block(self.read(torch.cat([features, *seen], 1))))

    def add_detail(self, z_fine: torch.Tensor, x_coarse: torch.Tensor) -> torch.Tensor:
        """The f16 picture (B, 3, 16h, 16w) plus the detail the fine latent (B, dim, 2h, 2w) says it misses."""
        features = self.synthesis[:-1](torch.cat([z_fine, F.pixel_unshuffle(x_coarse, self.f)], 1))
        x = x_coarse + F.pixel_shuffle(self.synthesis[-1](features), self.f)
        return x if self.refine is None else x + self.refine(features, x_coarse)


class Hierarchy(nn.Module):
    """The frozen f16 tokenizer and the fine side over it."""

    def __init__(self, tok: Tokenizer, cfg: FineConfig):
        super().__init__()
        self.tok = tok
        self.fine = FineCoder(tok, cfg)
        self.enc_split = encoder_f8_stage(tok.encoder)

    @torch.no_grad()
    def coarse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the f16 encoder's f8 features (B, C8, 2h, 2w), its latent (B, D, h, w)); a large picture goes
        through the encoder in patches, as the f16 tokenizer's own."""
        enc, f = self.tok.encoder, self.tok.cfg.downsample
        h, w = x.shape[2] // f, x.shape[3] // f
        features = _in_patches(lambda ys, xs: enc.body[:self.enc_split](enc.stem(x[(..., *_at(ys, xs, f))])), h, w, 2)
        return features, _in_patches(lambda ys, xs: enc.out(enc.body[self.enc_split:](features[(..., *_at(ys, xs, 2))])),
                                     h, w, 1)

    def coarse_picture(self, z_coarse: torch.Tensor) -> torch.Tensor:
        """The picture (B, 3, 16h, 16w) of f16 codes (B, D, h, w) that the fine detail is added to: from
        the fine side's own decoder where it has one, else from the tokenizer's."""
        return (self.fine.decoder or self.tok.decoder)(z_coarse)

    def fine_latent(self, features: torch.Tensor, x: torch.Tensor,
                    z_coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the fine latent, the coarse picture of z_coarse it was read against)."""
        with torch.no_grad():
            x_coarse = self.coarse_picture(z_coarse)
        return self.fine.latent(features, x, x_coarse), x_coarse

    def decode(self, z_coarse: torch.Tensor, z_fine: torch.Tensor | None,
               x_coarse: torch.Tensor | None = None) -> torch.Tensor:
        """The picture of f16 codes (B, D, h, w) and, if given, a fine latent (x_coarse: its
        coarse_picture(z_coarse), where the caller has it already)."""
        if z_fine is None:
            return self.tok.decoder(z_coarse)
        return self.fine.add_detail(z_fine, self.coarse_picture(z_coarse) if x_coarse is None else x_coarse)

    @torch.no_grad()
    def fine_indices(self, features: torch.Tensor, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """The nearest fine codes (B, fine depth, 2h, 2w), depth by depth, for a picture x with the
        encoder's f8 features, over the coarse indices (B, coarse_levels, h, w) it is stored with."""
        f = self.tok.cfg.downsample

        def latent_part(ys: slice, xs: slice) -> torch.Tensor:
            z_coarse = self.tok.quantizer.lookup(coarse[..., ys, xs])
            return self.fine_latent(features[(..., *_at(ys, xs, 2))], x[(..., *_at(ys, xs, f))], z_coarse)[0]

        z_fine = _in_patches(latent_part, *coarse.shape[2:], 2)
        band = 2 * tokenizer_module.CNN_PATCH  # rows at a time: the distance matrix to the codebook stays small
        return torch.cat([self.fine.quantizer.quantize(z_fine[:, :, y:y + band])[0]
                          for y in range(0, z_fine.shape[2], band)], 2)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Picture (B, 3, 16h, 16w) -> (coarse indices (B, coarse_levels, h, w), fine indices
        (B, fine depth, 2h, 2w)): the nearest codes, depth by depth."""
        features, z = self.coarse(x)
        coarse = self.tok.quantizer.quantize(z)[0][:, :self.fine.cfg.coarse_levels]
        return coarse, self.fine_indices(features, x, coarse)

    @torch.no_grad()
    def decode_indices(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """(coarse (B, coarse_levels, h, w), fine indices of the first depths (B, q, 2h, 2w)) -> picture,
        in patches where the grid is large."""
        def decode_part(ys: slice, xs: slice) -> torch.Tensor:
            z_fine = self.fine.quantizer.lookup(fine[(..., *_at(ys, xs, 2))]) if fine.shape[1] else None
            return self.decode(self.tok.quantizer.lookup(coarse[..., ys, xs]), z_fine)

        return _in_patches(decode_part, *coarse.shape[2:], self.tok.cfg.downsample)


def grow_synthesis(model: Hierarchy, blocks: int) -> Hierarchy:
    """The hierarchy with `blocks` ResBlocks in its fine synthesis, sharing model's tokenizer: the added
    blocks follow the existing ones and start as identities (their last convolution at zero), so the
    pictures do not change until they train."""
    have = model.fine.cfg.synthesis_blocks
    if blocks < have:
        raise ValueError(f"the synthesis has {have} ResBlocks already; it can only grow")
    grown = Hierarchy(model.tok, replace(model.fine.cfg, synthesis_blocks=blocks))
    moved = {}
    for key, value in model.fine.state_dict().items():
        part = key.split(".")
        if part[0] == "synthesis" and int(part[1]) > have:  # the layers after the blocks move down
            part[1] = str(int(part[1]) + blocks - have)
        moved[".".join(part)] = value
    missing = grown.fine.load_state_dict(moved, strict=False).missing_keys
    assert all(k.split(".")[1] in {str(i) for i in range(have + 1, blocks + 1)} for k in missing), missing
    for block in grown.fine.synthesis[have + 1:blocks + 1]:
        nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(block.conv2.bias)
    return grown.to(model.fine.quantizer.codebooks.device)


def grow_refiner(model: Hierarchy, channels: int) -> Hierarchy:
    """The hierarchy with an f4 stage of `channels` channels in its fine synthesis (BlockRefiner), sharing
    model's tokenizer; the stage starts at zero, so the pictures do not change until it trains."""
    have = model.fine.cfg.refine_width
    if have == channels:
        return model
    if have:
        raise ValueError(f"the synthesis has an f4 stage of {have} channels already; it cannot be resized")
    grown = Hierarchy(model.tok, replace(model.fine.cfg, refine_width=channels))
    missing = grown.fine.load_state_dict(model.fine.state_dict(), strict=False).missing_keys
    assert all(k.startswith("refine.") for k in missing), missing
    return grown.to(model.fine.quantizer.codebooks.device)


def grow_decoder(model: Hierarchy) -> Hierarchy:
    """The hierarchy whose fine side has its own f16 decoder, a copy of its tokenizer's (sharing model's
    tokenizer), so the pictures do not change until it trains."""
    if model.fine.decoder is not None:
        return model
    grown = Hierarchy(model.tok, replace(model.fine.cfg, own_decoder=True))
    missing = grown.fine.load_state_dict(model.fine.state_dict(), strict=False).missing_keys
    assert all(k.startswith("decoder.") for k in missing), missing
    grown.fine.decoder.load_state_dict(model.tok.decoder.state_dict())
    return grown.to(model.fine.quantizer.codebooks.device)


def _at(ys: slice, xs: slice, scale: int) -> tuple[slice, slice]:
    """Token-grid rows and columns -> those of a map with `scale` positions per token along a side."""
    return slice(ys.start * scale, ys.stop * scale), slice(xs.start * scale, xs.stop * scale)


def _fine_layout(layout: dict) -> dict:
    """A state's fine config; the states eval/research/f8_probe.py wrote before this module existed name
    the codebook size "codes" and the design (then always "residual" for states) and leave coarse_levels
    at 3."""
    if "codes" not in layout:
        return layout
    if layout.get("design", "residual") != "residual":
        raise ValueError(f"a fine side of design {layout['design']!r} is not a hierarchy this vqcodec reads")
    return {"dim": layout["dim"], "depth": layout["depth"], "codebook_size": layout["codes"],
            "width": layout["width"], "coarse_levels": 3}


def read_hierarchy(folder: str | Path) -> tuple[Hierarchy, dict]:
    """The hierarchy in a lasting state (state.json naming the modules "model", the f16 tokenizer, and
    "fine", with the fine side's config under "fine"), in float32 and eval mode, and the state's record."""
    tok, record = read_tokenizer(folder)
    model = Hierarchy(tok, FineConfig.from_dict(_fine_layout(record["fine"])))
    model.fine.load_state_dict({k: v.float() for k, v in state_tensors(Path(folder), record, "fine").items()})
    return model.eval(), record
