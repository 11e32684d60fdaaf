"""Score listings: signals -> brand presence -> calibrated risk -> policy decision, with the evidence behind it."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from detector.bundle import ModelBundle
from detector.features import Featurizer, ListingFeatures, OcrReader, brand_infos
from detector.listing import Listing
from detector.policy import decide

__all__ = ["Scorer", "ScoreResult", "BrandResult", "EvidenceItem"]

log = logging.getLogger(__name__)


@dataclass
class BrandResult:
    brand_id: int
    name: str
    confidence: float


@dataclass
class EvidenceItem:
    asset_id: int | None
    brand_id: int
    kind: str  # "authentic", "known_fake" or "brand_name"
    modality: str  # "image" or "text"
    similarity: float
    image_index: int | None = None
    box: list[float] | None = None
    text: str | None = None
    margin: float | None = None  # known fakes: how far the match stands out from the photo's next known fake
    inliers: int | None = None  # known fakes: keypoint matches agreeing on one transform (a re-used photo: many)
    generic: float | None = None  # authentic image matches: the region's cosine to the nearest plain geometric mark


@dataclass
class ScoreResult:
    """The verdict on one listing (the HTTP response body is ``asdict`` of this)."""

    listing_id: str
    risk: float
    decision: str
    brand: BrandResult | None
    evidence: list[EvidenceItem]
    signals: dict[str, Any]
    model_version: str
    index_version: int
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer:
    """Scores listings against a catalog (registry + FAISS indexes) with a loaded model bundle.

    Thread-safe: scoring takes a lock shared with the catalog's writers only for the index search, so a registered
    or deleted asset affects the very next score.
    """

    def __init__(self, bundle: ModelBundle, catalog: Any, ocr: OcrReader | None = None, max_evidence: int = 10,
                 known_fake_report_margin: float | None = None) -> None:
        self.bundle = bundle
        # Always report a known fake that stands out this much (a re-used photo), whatever its brand; the scale of
        # margins depends on the model's fingerprints, so the model's feature config sets it unless given here.
        self.known_fake_report_margin = (bundle.feature_config.known_fake_report_margin
                                         if known_fake_report_margin is None else known_fake_report_margin)
        self.catalog = catalog
        self.max_evidence = max_evidence
        self._lock = threading.RLock()
        self._brands_version: int | None = None
        self.featurizer = Featurizer(bundle.embedder, catalog, {}, bundle.feature_config, ocr=ocr)
        self.refresh_brands()

    def refresh_brands(self) -> None:
        """Reload the brand table when the catalog changed since the last call.

        The text matcher is rebuilt only when the brands themselves changed (names, aliases, sellers, price floors),
        not when an asset was added or deleted.
        """
        version = int(self.catalog.index_version)
        if version == self._brands_version:
            return
        with self._lock:
            brands = brand_infos(self.catalog.registry.list_brands())
            if brands != self.featurizer.brands:
                self.featurizer.set_brands(brands)
            self._brands_version = version

    def score(self, listing: Listing) -> ScoreResult:
        """Score one listing."""
        return self.score_batch([listing])[0]

    def score_batch(self, listings: Sequence[Listing]) -> list[ScoreResult]:
        """Score listings together (one embedding batch for all their photos)."""
        if not listings:
            return []
        self.catalog.reload_if_changed()
        self.refresh_brands()
        index_version = int(self.catalog.index_version)
        features = self.featurizer.featurize(listings)
        t0 = time.perf_counter()
        clf = self.bundle.classifier
        clf.set_brand_confidence(features)
        risks = clf.predict_risk(features)
        classify_s = time.perf_counter() - t0
        results = []
        for lst, lf, risk in zip(listings, features, risks):
            results.append(self._result(lst, lf, float(risk), index_version, classify_s))
        return results

    def _close_fake(self, m: Any) -> bool:
        return m.kind == "known_fake" and (m.margin or 0.0) >= self.known_fake_report_margin

    def _result(self, lst: Listing, lf: ListingFeatures, risk: float, index_version: int, classify_s: float) -> ScoreResult:
        policy = self.bundle.policy
        brands = self.featurizer.brands
        best = lf.best()
        brand = None
        if policy.names(best):
            brand = BrandResult(best.brand_id, brands[best.brand_id].name, round(best.confidence, 4))
        feats = best.features if best is not None else {}
        authorized = bool(brand and feats.get("authorized_seller"))
        decision = decide(risk, policy, authorized_seller=authorized, brand_named=brand is not None)
        # Evidence about the candidate brands, plus every close known fake whatever its brand.
        candidates = {c.brand_id for c in lf.candidates}
        evidence = [
            EvidenceItem(m.asset_id, m.brand_id, m.kind, m.modality, round(m.similarity, 4), m.image_index,
                         list(m.box) if m.box else None, m.text,
                         round(m.margin, 4) if m.margin is not None else None, m.inliers,
                         round(m.generic, 4) if m.generic is not None else None)
            for m in lf.evidence
            if m.brand_id in brands and (m.brand_id in candidates or self._close_fake(m))
        ]
        top = evidence[: self.max_evidence]
        top += [e for e in evidence[self.max_evidence:] if self._close_fake(e)]
        price_ratio = math.exp(feats["price_log_ratio"]) if feats.get("price_known") else None
        signals = {
            "brand_confidence": round(best.confidence, 4) if best else 0.0,
            "candidate_brand_id": best.brand_id if best else None,
            "image_brand_similarity": round(feats.get("img_sim", 0.0), 4),
            "image_brand_margin": round(feats.get("img_margin", 0.0), 4),
            "image_brand_similarity_photos": round(feats.get("img_sim_photos", 0.0), 4),
            "known_fake_similarity": round(lf.context["fake_sim_any"], 4),
            "known_fake_margin": round(lf.context["fake_margin_any"], 4),
            "known_fake_inliers": int(lf.context["fake_inliers_any"]),
            "title_brand_score": round(feats.get("title_score", 0.0), 4),
            "title_obfuscated": bool(feats.get("title_obfuscated")),
            "title_compatibility_mention": bool(feats.get("title_compat")),
            "description_brand_score": round(feats.get("desc_score", 0.0), 4),
            "text_embedding_similarity": round(feats.get("text_emb_sim", 0.0), 4),
            "ocr_text": lf.ocr_text,
            "ocr_brand_score": round(feats.get("ocr_score", 0.0), 4),
            "price_ratio": round(price_ratio, 4) if price_ratio is not None else None,
            "authorized_seller": bool(feats.get("authorized_seller")),
            "replica_terms": lf.replica,
            "n_images": len(lst.images),
        }
        timings = {k: round(v * 1000.0, 2) for k, v in lf.timings.items()}
        timings["classify"] = round(classify_s * 1000.0, 2)
        return ScoreResult(lst.listing_id, round(risk, 6), decision, brand, top, signals, self.bundle.version,
                           index_version, timings)
