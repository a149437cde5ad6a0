"""Fixtures shared by the model-level tests: the default GPU and two official shapes."""

import pytest
from shapes import LLAMA_8B, LLAMA_70B

from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import model_from_config


@pytest.fixture(scope="session")
def h100():
    return get_gpu("h100-sxm")


@pytest.fixture(scope="session")
def l8():
    return model_from_config(LLAMA_8B, "llama-3.1-8b")


@pytest.fixture(scope="session")
def l70():
    return model_from_config(LLAMA_70B, "llama-3.1-70b")
