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
    names they were fitted on are saved with them and used at prediction, so a classifier trained before a feature
    was added keeps working; one that needs a feature this code does not compute is refused at load.
    """

    brand_model: Any
    risk_model: Any
    candidate_features: tuple[str, ...] = CANDIDATE_FEATURES
    risk_features: tuple[str, ...] = RISK_FEATURES

    def set_brand_confidence(self, features: Sequence[ListingFeatures]) -> None:
        """Fill ``Candidate.confidence`` of every listing in place (P(the brand's mark is present))."""
        x, keys = candidate_matrix(features, self.candidate_features)
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
        x = np.stack([risk_vector(lf, self.risk_features) for lf in features])
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
        """Load from a model directory, refusing another scikit-learn minor version or features this code lacks."""
        directory = Path(directory)
        meta = json.loads((directory / "classifier.json").read_text())
        if meta["sklearn"].split(".")[:2] != sklearn.__version__.split(".")[:2]:
            raise ClassifierVersionError(
                f"classifier saved with scikit-learn {meta['sklearn']}, running {sklearn.__version__}; retrain it")
        candidate, risk = tuple(meta["candidate_features"]), tuple(meta["risk_features"])
        unknown = sorted({*candidate} - {*CANDIDATE_FEATURES} | {*risk} - {*RISK_FEATURES})
        if unknown:
            raise ClassifierVersionError(f"classifier uses features this code does not compute ({', '.join(unknown)});"
                                         " retrain it")
        with open(directory / "classifier.pkl", "rb") as f:
            models = pickle.load(f)
        return cls(models["brand_model"], models["risk_model"], candidate, risk)
