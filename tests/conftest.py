"""Shared fixtures: one embedder per test session (building it costs a few seconds)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Keep the BentoML model store of test runs out of the user's ~/bentoml.
os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="bentoml-home-"))
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def embedder():
    """The default embedder built from the packaged towers (no trained delta)."""
    from detector.embedder import create_embedder

    return create_embedder("effnet-lite0-minilm")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """A 40-brand listing dataset rendered from real simple-icons logos (seconds to make)."""
    from training.data import DataConfig, generate_dataset

    out = tmp_path_factory.mktemp("data") / "b40"
    return generate_dataset(out, DataConfig(n_brands=40, listings_per_brand=6, seed=0), progress=False)


@pytest.fixture(scope="session")
def default_bundle():
    """The shipped default model."""
    from detector.bundle import load_model

    return load_model("default")


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the tests that check the registry's PostgreSQL support (see tests/postgres.py).

    Skipped, with the reason in pytest's summary, only where PostgreSQL is not installed at all.
    """
    from tests.postgres import find_pg_bin, postgres_server

    if find_pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (initdb not found): PostgreSQL registry tests not run")
    with postgres_server() as server:
        yield server
