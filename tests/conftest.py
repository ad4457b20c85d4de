import numpy as np
import pytest
from skimage import data as skdata

import vqcodec


@pytest.fixture(scope="session")
def model():
    return vqcodec.load_model()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return skdata.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="session")
def small_photo(astronaut) -> np.ndarray:
    """A 96 x 128 crop with face and background: fast to code, still a real photo."""
    return np.ascontiguousarray(astronaut[40:136, 150:278])


@pytest.fixture
def folder(tmp_path, small_photo):
    """A folder of two pictures (one in a subfolder) and a file that is not a picture."""
    from PIL import Image

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(small_photo).save(src / "a.png")
    Image.fromarray(small_photo[::-1]).save(src / "sub" / "b.jpg")
    (src / "notes.txt").write_text("not an image")
    return src


@pytest.fixture(scope="session")
def random_prior():
    """make(seed, K, depth, window): a random float prior with sharp distributions, quantized like a
    trained one (calibrated on random tiles)."""
    import torch

    from vqcodec.intprior import IntPrior
    from vqcodec.prior import PriorConfig, PriorModel
    from vqcodec.train.quantize import quantize_prior

    def make(seed: int, K: int, depth: int, window: int) -> IntPrior:
        torch.manual_seed(seed)
        cfg = PriorConfig(codebook_size=K, depth=depth, window=window, n_layer=2, n_head=2, n_embd=32)
        prior = PriorModel(cfg)
        with torch.no_grad():  # sharpen the random logits so that the distributions are far from uniform
            prior.head.out.weight.mul_(50)
        calibration = torch.randint(0, K, (16, window, window, depth))
        return IntPrior(cfg, quantize_prior(prior, calibration))

    return make
