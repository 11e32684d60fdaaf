"""The trained models on top of the signals: brand presence per candidate and calibrated infringement risk.

Both are fitted by ``training`` on features from :mod:`detector.features`; this module only loads and predicts.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import sklearn

from detector.features import CANDIDATE_FEATURES, RISK_FEATURES, ListingFeatures, candidate_matrix, risk_vector

__all__ = ["RiskClassifier", "ClassifierVersionError"]


class ClassifierVersionError(RuntimeError):
    """The saved classifier was built with an incompatible scikit-learn or feature layout."""


@dataclass
class RiskClassifier:
    """Brand-presence model + calibrated risk model.

    ``brand_model`` and ``risk_model`` are fitted scikit-learn estimators with ``predict_proba``; the feature
    orders are saved with them and checked at load, so a model trained on another layout is refused.
    """

    brand_model: Any
    risk_model: Any
    candidate_features: tuple[str, ...] = CANDIDATE_FEATURES
    risk_features: tuple[str, ...] = RISK_FEATURES

    def set_brand_confidence(self, features: Sequence[ListingFeatures]) -> None:
        """Fill ``Candidate.confidence`` of every listing in place (P(the brand's mark is present))."""
        x, keys = candidate_matrix(features)
        if not keys:
            return
        proba = self.brand_model.predict_proba(x)[:, 1]
        by_key = dict(zip(keys, proba))
        for i, lf in enumerate(features):
            for c in lf.candidates:
                c.confidence = float(by_key[(i, c.brand_id)])

    def predict_risk(self, features: Sequence[ListingFeatures]) -> np.ndarray:
        """Calibrated P(counterfeit) per listing (brand confidences must be set first)."""
        if not features:
            return np.zeros(0, np.float32)
        x = np.stack([risk_vector(lf) for lf in features])
        return self.risk_model.predict_proba(x)[:, 1].astype(np.float32)

    def save(self, directory: str | Path) -> None:
        """Write ``classifier.pkl`` and ``classifier.json`` (versions and feature layout) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "classifier.pkl", "wb") as f:
            pickle.dump({"brand_model": self.brand_model, "risk_model": self.risk_model}, f)
        meta = {
            "sklearn": sklearn.__version__,
            "candidate_features": list(self.candidate_features),
            "risk_features": list(self.risk_features),
            "brand_model": type(self.brand_model).__name__,
            "risk_model": type(self.risk_model).__name__,
        }
        (directory / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "RiskClassifier":
        """Load from a model directory, refusing another scikit-learn minor version or feature layout."""
        directory = Path(directory)
        meta = json.loads((directory / "classifier.json").read_text())
        if meta["sklearn"].split(".")[:2] != sklearn.__version__.split(".")[:2]:
            raise ClassifierVersionError(
                f"classifier saved with scikit-learn {meta['sklearn']}, running {sklearn.__version__}; retrain it")
        if tuple(meta["candidate_features"]) != CANDIDATE_FEATURES or tuple(meta["risk_features"]) != RISK_FEATURES:
            raise ClassifierVersionError("classifier feature layout differs from this code's; retrain it")
        with open(directory / "classifier.pkl", "rb") as f:
            models = pickle.load(f)
        return cls(models["brand_model"], models["risk_model"])
