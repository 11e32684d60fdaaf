"""Shared fixtures: one embedder per test session (building it costs a few seconds)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def embedder():
    """The default embedder built from the packaged towers (no trained delta)."""
    from detector.embedder import create_embedder

    return create_embedder("effnet-lite0-minilm")
