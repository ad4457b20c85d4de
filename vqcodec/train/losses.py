"""The VQ-GAN objective's parts: the reconstruction loss (L1 + LPIPS, optionally a squared error), and the
adversarial part: the discriminators (taming's PatchGAN on pixels, or heads on frozen pretrained
features), hinge loss, adaptive weight."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def reconstruction_loss(rec: torch.Tensor, x: torch.Tensor, perceptual: torch.Tensor, lpips_weight: float = 1.0,
                        mse_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + lpips_weight * LPIPS (+ mse_weight * the squared error, which weighs large errors more: it asks
    for PSNR) of a reconstruction (B, 3, H, W) in [-1, 1] given its LPIPS, and the parts for the log."""
    error = rec - x
    l1 = error.abs().mean()
    loss, parts = l1 + lpips_weight * perceptual, {"l1": l1.item(), "lpips": perceptual.item()}
    if mse_weight:
        squared = error.square().mean()
        loss, parts["mse"] = loss + mse_weight * squared, squared.item()
    return loss, parts


class PatchDiscriminator(nn.Module):
    """taming's NLayerDiscriminator: a real/fake logit per ~70x70 patch."""

    def __init__(self, n_layers: int = 3, ndf: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ndf
        for n in range(1, n_layers + 1):
            c_next = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride, 1, bias=False), nn.BatchNorm2d(c_next), nn.LeakyReLU(0.2)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1, h, w) logits
        return self.net(x)


class FeatureDiscriminator(nn.Module):
    """The projected-GAN idea (Sauer et al. 2021) without its random cross-channel mixing: a small trainable
    head per feature map of a frozen pretrained network gives a real/fake logit per position. The frozen
    features make the discriminator useful after a few hundred steps, where a PatchGAN learning from pixels
    needs thousands. The backbone is not part of this module (nor of its checkpoints): see
    lpips_features."""

    def __init__(self, channels: tuple[int, ...] = (64, 192, 384, 256, 256), width: int = 64):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.heads = nn.ModuleList(
            nn.Sequential(sn(nn.Conv2d(c, width, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(width, width, 3, 1, 1)),
                          nn.LeakyReLU(0.2), sn(nn.Conv2d(width, 1, 1)))
            for c in channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:  # [(B, C_i, H_i, W_i)] -> [(B, 1, H_i, W_i)]
        return [head(f) for head, f in zip(self.heads, features)]


def lpips_features(lpips_model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The five ReLU maps of LPIPS's frozen AlexNet for images in [-1, 1] (B, 3, H, W): what a
    FeatureDiscriminator sees. Gradients reach x; the backbone's weights stay as they are."""
    return list(lpips_model.net(lpips_model.scaling_layer(x)))


def hinge_d_loss(logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss averaged over the discriminator's logit maps (one for a PatchGAN)."""
    return sum(0.5 * (F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean())
               for r, f in zip(logits_real, logits_fake)) / len(logits_real)


def generator_gan_loss(logits_fake: list[torch.Tensor]) -> torch.Tensor:
    return -sum(f.float().mean() for f in logits_fake) / len(logits_fake)


def adaptive_gan_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor,
                        disc_weight: float) -> torch.Tensor:
    """lambda = |grad rec| / (|grad gan| + delta) at the decoder's last layer, clamped, times disc_weight:
    balances the two terms whatever their scales."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    lam = g_rec.norm() / (g_gan.norm() + 1e-4)
    return lam.clamp(0.0, 1e4).detach() * disc_weight
