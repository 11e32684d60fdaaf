"""Helpers shared by test modules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from detector.embedder import Embedder


def with_query_subgrids(embedder: Embedder, fractions: Sequence[float]) -> Embedder:
    """The same model and weights with ``fingerprints.query_subgrids`` set (stored fingerprints are unchanged)."""
    config = embedder.config
    config = dataclasses.replace(config, fingerprints=dataclasses.replace(config.fingerprints,
                                                                           query_subgrids=tuple(fractions)))
    return Embedder(embedder.model, embedder.preprocess, embedder.tokenizer, config, version=embedder.version,
                    fingerprint_whitening=embedder.fingerprint_whitening)
