"""VQ-GAN tokenizer: CNN encoder, residual codebook quantizer, CNN decoder.

Layout after taming-transformers (ResBlocks with GroupNorm + SiLU, strided downsampling, nearest
upsampling, self-attention at the lowest resolution), sized for a CPU: a pixel-unshuffle stem keeps
the full-resolution work small. The quantizer is residual (RQ-VAE): depth d adds a code from its own
codebook to the sum of the first d-1, so every prefix 1..depth decodes to a picture and the quality
level of a file is the number of depths it carries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TokenizerConfig:
    channels: tuple[int, ...] = (64, 128, 128, 256)  # per resolution, from H/unshuffle down to H/f
    unshuffle: int = 2           # pixel-unshuffle factor of the stem
    code_dim: int = 32           # dimension of the quantized latent
    codebook_size: int = 1024    # K, entries per codebook
    depth: int = 4               # residual depths = quality levels
    beta: float = 0.25           # commitment weight (non-legacy form)
    decoder_blocks: tuple[int, ...] = ()  # ResBlocks per decoder resolution, lowest first; (): one each

    @property
    def downsample(self) -> int:
        """f: pixels per token along each side."""
        return self.unshuffle * 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        """The config as model folders and states keep it. Keys added to the layout later are left out at
        their default, so that the configs written before them keep their bytes (and models their ids)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if k not in _LATER_KEYS or v != _LATER_KEYS[k]}

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerConfig":
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        d["decoder_blocks"] = tuple(d.get("decoder_blocks", ()))
        return cls(**d)


_LATER_KEYS = {"decoder_blocks": ()}
DECODER_KEYS = ("decoder_blocks",)  # the decoder's layout alone: models that differ only here share token grids


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """8-bit pixel values (any integer or float dtype) -> float in [-1, 1], the networks' input range."""
    return pixels.float() / 127.5 - 1


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 pixel values, rounded (values outside the range are clipped first)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte()


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, c // 4), num_channels=c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c_out, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions of the lowest-resolution map."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # (B, HW, C)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch = cfg.channels
        self.stem = nn.Sequential(nn.PixelUnshuffle(cfg.unshuffle),
                                  nn.Conv2d(3 * cfg.unshuffle ** 2, ch[0], 3, padding=1))
        layers: list[nn.Module] = []
        for i in range(len(ch)):
            layers.append(ResBlock(ch[i - 1] if i else ch[0], ch[i]))
            if i < len(ch) - 1:
                layers.append(nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1))
        layers += [AttnBlock(ch[-1]), ResBlock(ch[-1], ch[-1])]
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(_norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], cfg.code_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [-1, 1] -> (B, D, H/f, W/f)
        return self.out(self.body(self.stem(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch = cfg.channels[::-1]
        blocks = cfg.decoder_blocks or (1,) * len(ch)
        if len(blocks) != len(ch) or min(blocks) < 1:
            raise ValueError(f"decoder_blocks {blocks} must give at least one block for each of {len(ch)} resolutions")
        layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, ch[0], 3, padding=1),
                                   ResBlock(ch[0], ch[0]), AttnBlock(ch[0])]
        for i in range(len(ch)):
            layers.append(ResBlock(ch[i - 1] if i else ch[0], ch[i]))
            layers += [ResBlock(ch[i], ch[i]) for _ in range(blocks[i] - 1)]
            if i < len(ch) - 1:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(ch[i], ch[i], 3, padding=1)]
        layers += [_norm(ch[-1]), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        # The last layer: the adaptive GAN weight is computed from gradients at its weight.
        self.last = nn.Conv2d(ch[-1], 3 * cfg.unshuffle ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(cfg.unshuffle)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, h, w) -> (B, 3, h*f, w*f)
        return self.shuffle(self.last(self.body(z)))


class ResidualQuantizer(nn.Module):
    """`depth` codebooks; depth d quantizes what depths < d left of the latent."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.beta = cfg.beta
        self.codebooks = nn.Parameter(torch.randn(cfg.depth, cfg.codebook_size, cfg.code_dim) * 0.1)

    @property
    def depth(self) -> int:
        return self.codebooks.shape[0]

    def nearest(self, r: torch.Tensor, d: int) -> torch.Tensor:  # (N, D) -> (N,) indices
        book = self.codebooks[d]
        dist = (r * r).sum(1, keepdim=True) - 2 * r @ book.t() + (book * book).sum(1)[None]
        return dist.argmin(1)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z: (B, D, h, w) -> indices (B, depth, h, w), per-depth codes (B, depth, D, h, w),
        per-depth residuals before quantization (B, depth, D, h, w). In fp32 under autocast too: the
        nearest code must not depend on the training's precision."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float())

    def _quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, C, h, w = z.shape
        r = z.permute(0, 2, 3, 1).reshape(-1, C)
        idx, codes, residuals = [], [], []
        for d in range(self.depth):
            i = self.nearest(r.detach(), d)
            e = self.codebooks[d][i]
            idx.append(i)
            codes.append(e)
            residuals.append(r)
            r = r - e.detach()
        shape = lambda t: t.reshape(B, h, w, -1).permute(0, 3, 1, 2)  # noqa: E731
        indices = torch.stack([i.reshape(B, h, w) for i in idx], 1)
        return indices, torch.stack([shape(e) for e in codes], 1), torch.stack([shape(x) for x in residuals], 1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, q, h, w) for the first q depths -> summed latent (B, D, h, w)."""
        z = 0
        for d in range(indices.shape[1]):
            z = z + self.codebooks[d][indices[:, d]]
        return z.permute(0, 3, 1, 2)


CNN_PATCH = 64  # token grids larger than this a side go through the CNNs in patches of this many tokens,
CNN_HALO = 8    # each seen with this many tokens of context on every side: memory stays bounded
                # (activations and the attention map of one patch), whatever the image size


def _in_patches(run: Callable[[slice, slice], torch.Tensor], h: int, w: int, scale: int) -> torch.Tensor:
    """Assemble run(rows, cols) -> (B, C, len(rows)*scale, len(cols)*scale) over an h x w token grid:
    in one call when the grid fits a patch, else patch by patch with a halo that is cropped away."""
    if h <= CNN_PATCH and w <= CNN_PATCH:
        return run(slice(0, h), slice(0, w))
    out = None
    for y in range(0, h, CNN_PATCH):
        for x in range(0, w, CNN_PATCH):
            ya, yb = max(0, y - CNN_HALO), min(h, y + CNN_PATCH + CNN_HALO)
            xa, xb = max(0, x - CNN_HALO), min(w, x + CNN_PATCH + CNN_HALO)
            part = run(slice(ya, yb), slice(xa, xb))
            if out is None:
                out = part.new_empty(*part.shape[:2], h * scale, w * scale)
            th, tw = min(CNN_PATCH, h - y), min(CNN_PATCH, w - x)
            out[:, :, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] = \
                part[:, :, (y - ya) * scale:(y - ya + th) * scale, (x - xa) * scale:(x - xa + tw) * scale]
    return out


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = ResidualQuantizer(cfg)
        self.decoder = Decoder(cfg)

    @torch.inference_mode()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) in [-1, 1], H and W multiples of f -> the encoder's latent (B, D, H/f, W/f)."""
        f = self.cfg.downsample

        def encode_part(ys: slice, xs: slice) -> torch.Tensor:
            return self.encoder(x[:, :, ys.start * f:ys.stop * f, xs.start * f:xs.stop * f])

        return _in_patches(encode_part, x.shape[2] // f, x.shape[3] // f, 1)

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, quality: int) -> torch.Tensor:
        """x: (B, 3, H, W) in [-1, 1], H and W multiples of f -> nearest-code indices (B, quality, H/f, W/f)."""
        return self.quantize_latent(self.latent(x), quality)

    @torch.inference_mode()
    def quantize_latent(self, z: torch.Tensor, quality: int) -> torch.Tensor:
        """latent (B, D, h, w) -> nearest-code indices (B, quality, h, w)."""
        # In bands of CNN_PATCH rows: the distance matrix to the codebook stays small on large images.
        return torch.cat([self.quantizer.quantize(z[:, :, y:y + CNN_PATCH])[0][:, :quality]
                          for y in range(0, z.shape[2], CNN_PATCH)], 2)

    @torch.inference_mode()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, q, h, w) -> image (B, 3, h*f, w*f) in [-1, 1]."""
        def decode_part(ys: slice, xs: slice) -> torch.Tensor:
            return self.decoder(self.quantizer.lookup(indices[:, :, ys, xs])).clamp(-1, 1)

        return _in_patches(decode_part, indices.shape[2], indices.shape[3], self.cfg.downsample)

    def forward(self, x: torch.Tensor, quality: torch.Tensor) -> dict:
        """Training pass. quality: (B,) depths kept per sample (depth dropout), 1..depth."""
        z = self.encoder(x)
        indices, codes, residuals = self.quantizer.quantize(z)
        beta = self.quantizer.beta
        vq_loss = (F.mse_loss(codes, residuals.detach()) + beta * F.mse_loss(residuals, codes.detach()))
        keep = (torch.arange(self.quantizer.depth, device=x.device)[None] < quality[:, None]).float()
        z_q = (codes.detach() * keep[:, :, None, None, None]).sum(1)
        z_q = z + (z_q - z).detach()  # straight-through: the decoder's gradient reaches the encoder
        return {"recon": self.decoder(z_q), "indices": indices, "vq_loss": vq_loss,
                "residuals": residuals.detach()}
