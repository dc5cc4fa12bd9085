import numpy as np
import pytest

import rnnfast


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    saved = rnnfast.get_num_threads()
    yield
    rnnfast.set_num_threads(saved)
