"""The fine grid over a tokenizer: its grids' shapes, a new fine side that changes nothing, and a lasting
state that reads back to the same codes and picture."""
import pytest
import torch

from vqcodec.families import config_dict
from vqcodec.hierarchy import FineConfig, Hierarchy, read_hierarchy
from vqcodec.tokenizer import Tokenizer, TokenizerConfig
from vqcodec.train.state import save_state

TINY = TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=16, depth=3)
FINE = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)


def tiny_hierarchy(seed: int = 0) -> Hierarchy:
    torch.manual_seed(seed)
    return Hierarchy(Tokenizer(TINY), FINE).eval()


def picture(h: int = 16, w: int = 24) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, h, w) * 2 - 1


def trained_fine_side() -> tuple[Hierarchy, torch.Tensor, torch.Tensor]:
    """A hierarchy whose synthesis adds something (as a trained one does), and the grids of picture()."""
    model = tiny_hierarchy()
    for p in model.fine.synthesis.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return (model, *model.encode(picture()))


def test_the_fine_grid_has_four_positions_per_coarse_position_and_keeps_the_coarse_codes():
    model = tiny_hierarchy()
    x = picture()
    coarse, fine = model.encode(x)
    f = TINY.downsample
    assert coarse.shape == (1, FINE.coarse_levels, 16 // f, 24 // f)
    assert fine.shape == (1, FINE.depth, 2 * 16 // f, 2 * 24 // f)
    assert int(fine.max()) < FINE.codebook_size
    assert torch.equal(coarse, model.tok.quantizer.quantize(model.tok.latent(x))[0][:, :FINE.coarse_levels])


def test_a_new_fine_side_adds_nothing_to_the_coarse_picture():
    model = tiny_hierarchy()
    coarse, fine = model.encode(picture())
    alone = model.decode_indices(coarse, fine[:, :0])
    assert torch.equal(model.decode_indices(coarse, fine), alone)
    assert torch.equal(alone, model.tok.decoder(model.tok.quantizer.lookup(coarse)))


def test_a_trained_fine_side_changes_the_picture_with_each_depth():
    model = tiny_hierarchy()
    torch.nn.init.normal_(model.fine.synthesis[-1].weight, std=0.1)
    coarse, fine = model.encode(picture())
    pictures = [model.decode_indices(coarse, fine[:, :d]) for d in range(FINE.depth + 1)]
    assert all(not torch.equal(a, b) for a, b in zip(pictures, pictures[1:]))


def test_a_lasting_state_reads_back_to_the_same_codes_and_picture(tmp_path):
    model = tiny_hierarchy()
    torch.nn.init.normal_(model.fine.synthesis[-1].weight, std=0.1)
    with torch.no_grad():  # values fp16 holds exactly, so the state is the model itself
        for p in model.parameters():
            p.copy_(p.half().float())
    save_state(tmp_path, {"model": model.tok, "fine": model.fine},
               {"step": 7, "model": config_dict(TINY), "fine": FINE.to_dict()})
    again, record = read_hierarchy(tmp_path)
    assert record["step"] == 7 and again.fine.cfg == FINE
    x = picture()
    coarse, fine = model.encode(x)
    assert all(torch.equal(a, b) for a, b in zip(again.encode(x), (coarse, fine)))
    assert torch.equal(again.decode_indices(coarse, fine), model.decode_indices(coarse, fine))


def test_a_state_the_research_script_wrote_before_reads_as_the_same_hierarchy(tmp_path):
    model = tiny_hierarchy()
    old = {"dim": FINE.dim, "depth": FINE.depth, "codes": FINE.codebook_size, "width": FINE.width, "design": "residual"}
    save_state(tmp_path, {"model": model.tok, "fine": model.fine}, {"step": 1, "model": config_dict(TINY), "fine": old})
    assert read_hierarchy(tmp_path)[0].fine.cfg == FineConfig(**{**FINE.to_dict(), "coarse_levels": 3})


def test_a_grown_synthesis_starts_with_the_same_picture_and_then_trains_its_new_blocks():
    from vqcodec.hierarchy import grow_synthesis

    model, coarse, fine = trained_fine_side()
    grown = grow_synthesis(model, 3)
    assert grown.fine.cfg.synthesis_blocks == 3 and len(grown.fine.synthesis) == len(model.fine.synthesis) + 2
    assert torch.equal(grown.decode_indices(coarse, fine), model.decode_indices(coarse, fine))
    assert torch.equal(grown.encode(picture())[1], fine)  # the fine encoder and codebooks are kept
    with torch.no_grad():
        grown.fine.synthesis[2].conv2.weight.add_(0.1)
    assert not torch.equal(grown.decode_indices(coarse, fine), model.decode_indices(coarse, fine))
    assert FineConfig.from_dict(grown.fine.cfg.to_dict()) == grown.fine.cfg
    with pytest.raises(ValueError, match="only grow"):
        grow_synthesis(grown, 2)


def test_a_grown_f4_stage_starts_with_the_same_picture_then_trains_and_is_kept_in_the_config():
    from vqcodec.hierarchy import grow_refiner

    model, coarse, fine = trained_fine_side()
    grown = grow_refiner(model, 6)
    assert grown.fine.cfg.refine_width == 6
    assert torch.equal(grown.decode_indices(coarse, fine), model.decode_indices(coarse, fine))
    z_coarse = grown.tok.quantizer.lookup(coarse)
    z_fine = grown.fine.quantizer.lookup(fine).requires_grad_()
    (grown.decode(z_coarse, z_fine) - picture()).abs().mean().backward()
    assert grown.fine.refine.out[-1].weight.grad.abs().sum() > 0  # the stage learns from the first step
    with torch.no_grad():
        grown.fine.refine.out[-1].bias.add_(0.1)
    assert not torch.equal(grown.decode_indices(coarse, fine), model.decode_indices(coarse, fine))
    assert FineConfig.from_dict(grown.fine.cfg.to_dict()) == grown.fine.cfg
    assert "refine_width" not in FineConfig().to_dict()  # configs without the stage keep their bytes
    assert grow_refiner(grown, 6) is grown
    with pytest.raises(ValueError, match="cannot be resized"):
        grow_refiner(grown, 4)


def test_an_own_decoder_starts_as_the_tokenizers_and_then_moves_the_fine_levels_only(tmp_path):
    from vqcodec.hierarchy import grow_decoder

    model, coarse, fine = trained_fine_side()
    grown = grow_decoder(model)
    assert grown.fine.cfg.own_decoder and grow_decoder(grown) is grown
    assert torch.equal(grown.decode_indices(coarse, fine), model.decode_indices(coarse, fine))
    assert torch.equal(grown.encode(picture())[1], fine)
    z_coarse = grown.tok.quantizer.lookup(coarse)
    (grown.decode(z_coarse, grown.fine.quantizer.lookup(fine)) - picture()).abs().mean().backward()
    assert grown.fine.decoder.last.weight.grad.abs().sum() > 0  # it learns from the fine levels' loss
    with torch.no_grad():  # a trained decoder, in values fp16 holds exactly (the state is then the model)
        for p in grown.parameters():
            p.add_(0.01 * torch.randn_like(p) * (p in set(grown.fine.decoder.parameters())))
            p.copy_(p.half().float())
    coarse_only = fine[:, :0]
    assert torch.equal(grown.decode_indices(coarse, coarse_only), grown.tok.decoder(grown.tok.quantizer.lookup(coarse)))
    assert not torch.equal(grown.decode_indices(coarse, fine), model.decode_indices(coarse, fine))
    save_state(tmp_path, {"model": grown.tok, "fine": grown.fine},
               {"step": 3, "model": config_dict(TINY), "fine": grown.fine.cfg.to_dict()})
    again = read_hierarchy(tmp_path)[0]
    assert again.fine.cfg.own_decoder
    assert torch.equal(again.decode_indices(coarse, fine), grown.decode_indices(coarse, fine))
    assert "own_decoder" not in FineConfig().to_dict()  # configs without one keep their bytes
