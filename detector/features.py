"""Signals of a listing, computed by the same code for training and serving (no training/serving skew).

Pipeline for a batch of listings: embed every photo once (region embeddings from one backbone pass) -> search the
authentic-asset index per region and the known-fake index per photo -> read text in the photos (OCR) -> match
title, description and OCR text to registered brands (confusables + fuzzy + text embedding) -> per candidate brand a
row of evidence features, and per listing the context features (price ratio to the floor, authorised seller,
replica wording).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image

from detector.dataclass_config import build_config
from detector.listing import Listing
from detector.plain_marks import plain_mark_bank, plain_mark_similarity
from detector.text import BrandTextMatcher, TextMatch, mention_context, replica_terms
from detector.verify import KeypointVerifier

__all__ = [
    "FeatureConfig",
    "BrandInfo",
    "brand_infos",
    "Candidate",
    "ListingFeatures",
    "Featurizer",
    "CANDIDATE_FEATURES",
    "RISK_FEATURES",
    "risk_vector",
]

log = logging.getLogger(__name__)

# Evidence that a brand's mark is present (input of the brand-presence model).
CANDIDATE_FEATURES = (
    "img_sim",  # best region-to-authentic-asset cosine for this brand
    "img_margin",  # img_sim minus the best other brand's img_sim
    "img_top1",  # 1 when this brand is the image top-1
    "img_generic",  # that best region's cosine to the nearest plain geometric mark (0 unless plain_marks is on)
    "fake_sim",  # photo-to-known-fake fingerprint cosine of this brand's most distinctive known-fake hit
    "fake_margin",  # how far that hit stands out from the photo's next known fake (a re-used photo stands out)
    "fake_inliers",  # keypoint matches of that hit that agree on one similarity transform (detector.verify)
    "title_score",  # obfuscation-robust fuzzy match of the brand in the title (0..1)
    "title_obfuscated",  # the title spells the brand in a disguised way
    "title_compat",  # the brand is mentioned as "for X" / "compatible with X"
    "desc_score",  # fuzzy match in the description
    "ocr_score",  # fuzzy match in the text read from the photos
    "text_emb_sim",  # title embedding vs the brand's names, aliases and asset titles
)

# Listing-level signals for the infringement classifier (the best candidate's evidence plus context).
RISK_FEATURES = (
    "brand_conf",
    *CANDIDATE_FEATURES,
    "fake_sim_any",  # best known-fake similarity of any brand: a re-uploaded fake photo
    "fake_margin_any",  # best known-fake margin of any brand
    "fake_inliers_any",  # most geometrically verified keypoint matches with any known fake
    "replica_terms",  # count of replica wording terms in title + description
    "ocr_replica_terms",  # count of replica wording terms read in the photos
    "price_log_ratio",  # log(price / brand floor), 0 when unknown
    "price_known",  # 1 when price and floor are known in the same currency
    "authorized_seller",  # the seller is on the brand's authorised list
    "n_images",
)


@dataclass
class FeatureConfig:
    """How signals are computed; stored in the model directory so training and serving agree."""

    image_k: int = 16  # neighbours per region in the authentic index
    fake_k: int = 5  # neighbours per photo in the known-fake index
    text_k: int = 8  # neighbours of the title embedding in the text index
    max_candidates: int = 6  # candidate brands kept per listing
    fuzzy_cutoff: float = 0.75  # minimum fuzzy score for a text match to name a candidate
    ocr: bool = True  # read text in photos (PP-OCRv4 via rapidocr)
    ocr_min_confidence: float = 0.6  # drop OCR lines below this recognition confidence
    ocr_max_side: int = 480  # text detection input side cap (no upscaling: 0.07 s instead of 0.3 s per photo)
    # Evidence shown: a known fake that stands out this much from the photo's next one is reported whatever its brand
    # (a re-used photo). Whitened fingerprints, validation re-uploads of two datasets: re-used photos 0.98 / 0.96
    # reported, fresh shots of the same product 8 % / 7 % (0.2: 0.88 / 0.89 and 3 % / 2 %).
    known_fake_report_margin: float = 0.15
    # Known-fake hits per photo checked by keypoint matching (detector.verify: is the photo a re-used fake photo?);
    # 0 turns it off (models trained before it have no such feature).
    fake_verify_k: int = 0
    # Score each image match's region against plain geometric marks (detector.plain_marks: a ring, stripes, dots);
    # off, img_generic is 0 (models trained before it never saw it).
    plain_marks: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "FeatureConfig":
        return build_config(cls, d, "feature config")


@dataclass(frozen=True)
class BrandInfo:
    """What scoring needs to know of a registered brand."""

    brand_id: int
    name: str
    aliases: tuple[str, ...] = ()
    authorized_sellers: tuple[str, ...] = ()
    min_price: float | None = None
    currency: str = "USD"


def brand_infos(records: Sequence[Any]) -> dict[int, BrandInfo]:
    """``BrandInfo`` by id from registry brand records (objects with id, name, aliases, ... attributes)."""
    return {
        r.id: BrandInfo(r.id, r.name, tuple(r.aliases or ()), tuple(r.authorized_sellers or ()), r.min_price,
                        r.currency or "USD")
        for r in records
    }


@dataclass
class Match:
    """One piece of evidence: an asset or text entry close to the listing."""

    asset_id: int | None
    brand_id: int
    kind: str  # "authentic" or "known_fake" (an asset), or "brand_name" (a registered name or alias)
    modality: str  # "image" or "text"
    similarity: float  # cosine for embeddings and fingerprints, fuzzy-match score for names
    margin: float | None = None  # known fakes: similarity minus the photo's next known fake's (distinctiveness)
    generic: float | None = None  # authentic image matches: the region's cosine to the nearest plain geometric mark
    inliers: int | None = None  # known fakes: geometrically verified keypoint matches (None: not verified)
    image_index: int | None = None  # which listing photo
    box: tuple[float, float, float, float] | None = None  # matched region of that photo (fractions)
    text: str | None = None
    source: str | None = None  # brand names: where the name was found ("title", "description", or "ocr": photos)


@dataclass
class Candidate:
    """A brand that may be present in the listing, with its evidence features."""

    brand_id: int
    features: dict[str, float]
    confidence: float = 0.0  # P(brand present), set by the brand model


@dataclass
class ListingFeatures:
    """All signals of one listing."""

    listing_id: str
    candidates: list[Candidate]
    context: dict[str, float]  # listing-level features
    evidence: list[Match] = field(default_factory=list)
    replica: list[str] = field(default_factory=list)
    ocr_text: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def best(self) -> Candidate | None:
        """The most confident candidate brand."""
        return max(self.candidates, key=lambda c: c.confidence, default=None)


def risk_vector(lf: ListingFeatures, names: Sequence[str] = RISK_FEATURES) -> np.ndarray:
    """The classifier input of a listing, in ``names`` order (zeros where no brand is a candidate)."""
    best = lf.best()
    values = dict(lf.context)
    if best is not None:
        values.update(best.features)
        values["brand_conf"] = best.confidence
    return np.array([float(values.get(name, 0.0)) for name in names], dtype=np.float32)


class CatalogLike(Protocol):
    """What the featurizer needs from ``indexes.catalog.Catalog``."""

    def search_images(self, vectors: np.ndarray, kind: str, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def search_texts(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def lookup_asset_brands(self, asset_ids: np.ndarray) -> np.ndarray: ...
    def brand_of_text_entry(self, entry_id: int) -> int | None: ...
    def asset_images(self, asset_ids: Sequence[int]) -> dict[int, Image.Image]: ...


class OcrReader:
    """Reads text lines in a photo with PP-OCRv4 (rapidocr-onnxruntime; models ship inside the wheel)."""

    def __init__(self, min_confidence: float = 0.6, max_side: int = 480) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR(det_limit_side_len=max_side, det_limit_type="max")
        self.min_confidence = min_confidence

    def read(self, image: Image.Image) -> list[str]:
        result, _ = self._engine(np.asarray(image.convert("RGB")), use_cls=False)
        return [text for _, text, conf in (result or []) if float(conf) >= self.min_confidence]


def best_over_views(sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge search results ``(N, V, k)`` of each query's ``V`` views into ``(N, k)``: each id once, at its best
    similarity over the views, best first; empty slots hold id -1 and sim ``-inf`` (as the index pads)."""
    n, n_views, k = ids.shape
    if n_views == 1:
        return sims[:, 0], ids[:, 0]
    flat_sims, flat_ids = sims.reshape(n, -1), ids.reshape(n, -1)
    out_sims = np.full((n, k), -np.inf, dtype=np.float32)
    out_ids = np.full((n, k), -1, dtype=ids.dtype)
    for row in range(n):
        order = np.argsort(-flat_sims[row], kind="stable")
        ranked = flat_ids[row, order]
        _, first = np.unique(ranked, return_index=True)  # an id's first place in best-first order is its best
        keep = order[np.sort(first)]
        keep = keep[flat_ids[row, keep] >= 0][:k]
        out_sims[row, : len(keep)] = flat_sims[row, keep]
        out_ids[row, : len(keep)] = flat_ids[row, keep]
    return out_sims, out_ids


class Featurizer:
    """Computes :class:`ListingFeatures` for batches of listings against the current catalog."""

    def __init__(
        self,
        embedder: Any,
        catalog: CatalogLike,
        brands: dict[int, BrandInfo],
        config: FeatureConfig | None = None,
        ocr: OcrReader | None = None,
    ) -> None:
        self.embedder = embedder
        self.catalog = catalog
        self.config = config or FeatureConfig()
        self.ocr = ocr if ocr is not None or not self.config.ocr else OcrReader(self.config.ocr_min_confidence, self.config.ocr_max_side)
        self.verifier = KeypointVerifier() if self.config.fake_verify_k > 0 else None
        self.plain_marks = plain_mark_bank(embedder) if self.config.plain_marks else None
        self.set_brands(brands)

    def set_brands(self, brands: dict[int, BrandInfo]) -> None:
        """Replace the brand table (call after brands change); rebuilds the text matcher."""
        self.brands = dict(brands)
        self.matcher = BrandTextMatcher([(b.brand_id, [b.name, *b.aliases]) for b in self.brands.values()])

    def featurize(self, listings: Sequence[Listing]) -> list[ListingFeatures]:
        """Signals for each listing, computed in one batch (one backbone pass per photo)."""
        t0 = time.perf_counter()
        photos = [im for lst in listings for im in lst.images]
        owner = [i for i, lst in enumerate(listings) for _ in lst.images]  # listing of each photo
        local = [j for lst in listings for j in range(len(lst.images))]  # its index within the listing
        regions, fingerprints = self.embedder.embed_query_regions(photos) if photos else (None, None)
        titles = [lst.title or " " for lst in listings]
        title_vecs = self.embedder.embed_texts(titles)
        t_embed = time.perf_counter()

        per_listing_img: list[dict[int, tuple[float, Match]]] = [dict() for _ in listings]
        per_listing_fake: list[dict[int, tuple[float, Match]]] = [dict() for _ in listings]
        per_listing_photo: list[dict[int, dict[int, float]]] = [dict() for _ in listings]  # photo -> brand -> cos
        if regions is not None:
            self._image_evidence(regions, owner, local, per_listing_img, per_listing_photo)
            self._fake_evidence(fingerprints, owner, local, per_listing_fake, photos)
        text_hits = self._text_evidence(title_vecs)
        t_search = time.perf_counter()

        ocr_texts = [""] * len(listings)
        if self.ocr is not None:
            for photo, i in zip(photos, owner):
                lines = self.ocr.read(photo)
                if lines:
                    ocr_texts[i] = (ocr_texts[i] + " " + " ".join(lines)).strip()
        t_ocr = time.perf_counter()

        out = []
        for i, lst in enumerate(listings):
            lf = self._assemble(lst, per_listing_img[i], per_listing_photo[i], per_listing_fake[i], text_hits[i],
                                ocr_texts[i])
            out.append(lf)
        t_end = time.perf_counter()
        timings = {"embed": t_embed - t0, "search": t_search - t_embed, "ocr": t_ocr - t_search, "text": t_end - t_ocr}
        for lf in out:
            lf.timings = timings
        return out

    # --- evidence gathering -------------------------------------------------------------------------------------

    def _image_evidence(
        self, regions: np.ndarray, owner: list[int], local: list[int], acc: list[dict], per_photo: list[dict]
    ) -> None:
        """Per listing and brand the best region over all photos (``acc``), and per listing photo each brand's best
        region cosine there (``per_photo``: photo -> {brand: cosine})."""
        n_photos, n_regions, dim = regions.shape
        flat = regions.reshape(-1, dim)
        sims, ids = self.catalog.search_images(flat, "authentic", self.config.image_k)
        boxes = self.embedder.boxes
        for photo, brand, sim, asset_id, row in self._best_per_brand(sims, ids, n_regions, range(n_photos)):
            listing = owner[photo]
            per_photo[listing].setdefault(local[photo], {})[brand] = sim
            held = acc[listing].get(brand)
            if held is None or sim > held[0]:
                region = row - photo * n_regions
                acc[listing][brand] = (sim, Match(asset_id, brand, "authentic", "image", sim,
                                                  generic=None if self.plain_marks is None else
                                                  float(plain_mark_similarity(flat[row], self.plain_marks)),
                                                  image_index=local[photo],
                                                  box=tuple(float(v) for v in boxes[region])))

    def _fake_evidence(self, fingerprints: np.ndarray, owner: list[int], local: list[int], acc: list[dict],
                       photos: Sequence[Image.Image]) -> None:
        """Per listing and brand, the known fake that stands out most from each photo's other known-fake hits.

        ``fingerprints`` are ``(photos, views, dim)`` (:meth:`Embedder.embed_query_regions`); a photo's similarity
        to a known fake is the best over its views. Whole-photo similarity alone cannot tell a re-used photo from
        another photo of the same product on a similar background (both score high); a re-used photo's own known
        fake stands clear of the next hit. With ``fake_verify_k`` each photo's first hits are also matched keypoint
        by keypoint (:class:`detector.verify.KeypointVerifier`), and a brand's hit is the one with the most verified
        matches first.
        """
        sims, ids = best_over_views(*self.catalog.search_images(fingerprints, "known_fake", self.config.fake_k))
        brands = self.catalog.lookup_asset_brands(ids)
        valid_rows = [np.flatnonzero((ids[row] >= 0) & (brands[row] >= 0)) for row in range(ids.shape[0])]
        inliers = self._verify_fakes(photos, ids, valid_rows)
        for row, valid in enumerate(valid_rows):  # hits best first, as the index returns them
            for rank, j in enumerate(valid):
                sim = float(sims[row, j])
                # The top hit's margin is over the runner-up, every other hit's is over the top hit (<= 0); a hit
                # alone in the index has nothing to stand out from.
                nearest = sims[row, valid[1]] if rank == 0 and len(valid) > 1 else sims[row, valid[0]]
                margin = sim - float(nearest) if len(valid) > 1 else 0.0
                verified = inliers.get((row, int(ids[row, j])))
                listing, brand = owner[row], int(brands[row, j])
                held = acc[listing].get(brand)
                key = (-1 if verified is None else verified, margin, sim)
                if held is None or key > (-1 if held[1].inliers is None else held[1].inliers, held[1].margin, held[0]):
                    acc[listing][brand] = (sim, Match(int(ids[row, j]), brand, "known_fake", "image", sim,
                                                      margin=margin, image_index=local[row], inliers=verified))

    def _verify_fakes(self, photos: Sequence[Image.Image], ids: np.ndarray,
                      valid_rows: Sequence[np.ndarray]) -> dict[tuple[int, int], int]:
        """Verified keypoint matches ``{(photo, asset_id): inliers}`` of each photo's first ``fake_verify_k`` hits."""
        if self.verifier is None:
            return {}
        wanted = {row: [int(ids[row, j]) for j in valid[: self.config.fake_verify_k]]
                  for row, valid in enumerate(valid_rows)}
        stored = self.verifier.stored_keypoints([a for hits in wanted.values() for a in hits],
                                                self.catalog.asset_images)
        out = {}
        for row, hits in wanted.items():
            hits = [a for a in hits if a in stored]
            for asset_id, n in zip(hits, self.verifier.verify(photos[row], [stored[a] for a in hits])):
                out[row, asset_id] = n
        return out

    def _best_per_brand(self, sims: np.ndarray, ids: np.ndarray, rows_per_photo: int, owner: Sequence[int]):
        """For search results ``(rows, k)``, yield the best hit per (owner, brand): owner, brand, sim, id, row, where
        ``owner`` maps each photo (``rows_per_photo`` rows) to its group."""
        brands = self.catalog.lookup_asset_brands(ids)
        rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)
        keep = (ids >= 0) & (brands >= 0)
        rows, brands, hit_sims, hit_ids = rows[keep], brands[keep], sims[keep], ids[keep]
        listings = np.asarray(owner, dtype=np.int64)[rows // rows_per_photo]
        order = np.lexsort((-hit_sims, brands, listings))  # by listing, brand, then best similarity first
        first = np.ones(len(order), dtype=bool)
        key_l, key_b = listings[order], brands[order]
        first[1:] = (key_l[1:] != key_l[:-1]) | (key_b[1:] != key_b[:-1])
        for j in order[first]:
            yield int(listings[j]), int(brands[j]), float(hit_sims[j]), int(hit_ids[j]), int(rows[j])

    def _text_evidence(self, title_vecs: np.ndarray) -> list[dict[int, float]]:
        sims, ids = self.catalog.search_texts(title_vecs, self.config.text_k)
        out: list[dict[int, float]] = []
        for row in range(sims.shape[0]):
            hits: dict[int, float] = {}
            for sim, entry_id in zip(sims[row], ids[row]):
                if entry_id < 0:
                    continue
                brand = self.catalog.brand_of_text_entry(int(entry_id))
                if brand is not None and sim > hits.get(brand, -1.0):
                    hits[brand] = float(sim)
            out.append(hits)
        return out

    # --- per listing ----------------------------------------------------------------------------------------------

    def _assemble(
        self,
        lst: Listing,
        img: dict[int, tuple[float, Match]],
        per_photo: dict[int, dict[int, float]],  # photo -> brand -> best region cosine there
        fake: dict[int, tuple[float, Match]],
        text_emb: dict[int, float],
        ocr_text: str,
    ) -> ListingFeatures:
        cfg = self.config
        title_matches = self._text_matches(lst.title, 3)
        desc_matches = self._text_matches(lst.description, 2)
        ocr_matches = self._text_matches(ocr_text, 2)

        ranked_img = sorted(img.items(), key=lambda kv: -kv[1][0])
        floor = ranked_img[-1][1][0] if ranked_img else 0.0  # an unseen brand is at most as close as the k-th hit
        # Per photo, likewise: a brand absent from a photo's hits is at most as close there as its weakest hit.
        photo_floors = [(by_brand, min(by_brand.values())) for by_brand in per_photo.values()]
        names = []
        names += [b for b, _ in ranked_img[:3]]
        names += [b for b, _ in sorted(fake.items(), key=lambda kv: (-kv[1][1].margin, -kv[1][0]))[:2]]
        for matches in (title_matches, desc_matches, ocr_matches):
            names += [b for b, m in matches.items() if m.score >= cfg.fuzzy_cutoff]
        names += [b for b, _ in sorted(text_emb.items(), key=lambda kv: -kv[1])[:2]]
        candidates_ids = [b for b in dict.fromkeys(names) if b in self.brands][: cfg.max_candidates]

        replica = replica_terms(f"{lst.title} {lst.description}")
        ocr_replica = replica_terms(ocr_text) if ocr_text else []
        context = {
            "fake_sim_any": max((v[0] for v in fake.values()), default=0.0),
            "fake_margin_any": max((v[1].margin for v in fake.values()), default=0.0),
            "fake_inliers_any": float(max((v[1].inliers or 0 for v in fake.values()), default=0)),
            "replica_terms": float(len(replica)),
            "ocr_replica_terms": float(len(ocr_replica)),
            "n_images": float(len(lst.images)),
            "price_log_ratio": 0.0,
            "price_known": 0.0,
            "authorized_seller": 0.0,
        }
        candidates = []
        for b in candidates_ids:
            img_sim = img[b][0] if b in img else floor
            other = max((s for bb, (s, _) in img.items() if bb != b), default=floor)
            tm = title_matches.get(b)
            feats = {
                "img_sim": img_sim,
                "img_margin": img_sim - other,
                "img_top1": float(bool(ranked_img) and ranked_img[0][0] == b),
                "img_generic": (img[b][1].generic or 0.0) if b in img else 0.0,
                # The brand's best region cosine averaged over the photos: reported, not a classifier input (as one
                # it moved the brand threshold more than it separated look-alikes; docs/results.md, "Cross-photo consistency").
                "img_sim_photos": float(np.mean([p.get(b, f) for p, f in photo_floors])) if photo_floors else floor,
                "fake_sim": fake[b][0] if b in fake else 0.0,
                "fake_margin": fake[b][1].margin if b in fake else 0.0,
                "fake_inliers": float(fake[b][1].inliers or 0) if b in fake else 0.0,
                "title_score": tm.score if tm else 0.0,
                "title_obfuscated": float(bool(tm and tm.obfuscated)),
                "title_compat": float(bool(tm and mention_context(lst.title, tm.span))),
                "desc_score": desc_matches[b].score if b in desc_matches else 0.0,
                "ocr_score": ocr_matches[b].score if b in ocr_matches else 0.0,
                "text_emb_sim": text_emb.get(b, 0.0),
            }
            feats.update(self._context_for_brand(lst, self.brands[b]))
            candidates.append(Candidate(b, feats))

        evidence = [m for _, m in img.values()] + [m for _, m in fake.values()]
        for source, matches in (("title", title_matches), ("description", desc_matches), ("ocr", ocr_matches)):
            evidence += [Match(None, b, "brand_name", "text", float(m.score), text=f"{source}: {m.matched_text}",
                               source=source)
                         for b, m in matches.items() if b in self.brands and m.score >= cfg.fuzzy_cutoff]
        evidence.sort(key=lambda m: -m.similarity)
        return ListingFeatures(lst.listing_id, candidates, context, evidence, replica + ocr_replica, ocr_text)

    def _text_matches(self, text: str, top_k: int) -> dict[int, TextMatch]:
        """Brands named in ``text``; a common word that is also a brand's name ("Black") names no brand."""
        if not text:
            return {}
        return {m.brand_id: m for m in self.matcher.match(text, top_k=top_k) if not m.generic}

    @staticmethod
    def _context_for_brand(lst: Listing, brand: BrandInfo) -> dict[str, float]:
        out = {"price_log_ratio": 0.0, "price_known": 0.0, "authorized_seller": 0.0}
        same_currency = (lst.currency or brand.currency or "USD").upper() == (brand.currency or "USD").upper()
        if lst.price is not None and brand.min_price and lst.price > 0 and same_currency:
            out["price_log_ratio"] = float(np.clip(math.log(lst.price / brand.min_price), -5.0, 5.0))
            out["price_known"] = 1.0
        elif lst.price is not None and lst.price <= 0 and brand.min_price:
            out["price_log_ratio"], out["price_known"] = -5.0, 1.0
        sellers = {s.casefold() for s in brand.authorized_sellers}
        out["authorized_seller"] = float(bool(lst.seller_id) and lst.seller_id.casefold() in sellers)
        return out


def candidate_matrix(
    features: Sequence[ListingFeatures], names: Sequence[str] = CANDIDATE_FEATURES
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stack every candidate's evidence row (``names`` order) with its (listing, brand) key."""
    rows, keys = [], []
    for i, lf in enumerate(features):
        for c in lf.candidates:
            rows.append([float(c.features[name]) for name in names])
            keys.append((i, c.brand_id))
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(names)), keys


def as_dict(lf: ListingFeatures) -> dict[str, Any]:
    """JSON-friendly view (for logs, the registry and reports)."""
    return dataclasses.asdict(lf)
