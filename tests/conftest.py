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
