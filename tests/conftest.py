"""Shared fixtures."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny problems run fastest on one thread (and the machine is shared): use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
