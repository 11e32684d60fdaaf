"""Fit the brand-presence and calibrated risk models on features from ``detector.features``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.stats import beta
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GroupKFold, cross_val_predict

from detector.classifier import RiskClassifier
from detector.features import ListingFeatures, candidate_matrix, risk_vector
from detector.policy import PolicyConfig
from training.data import source_listing_id

__all__ = ["ClassifierConfig", "LabelledFeatures", "fit_classifier", "choose_thresholds", "unregistered_confidences",
           "text_named_rows", "text_named_brandless_confidences",
           "best_confidences", "best_authorized", "listing_ids", "subset_features",
           "AuthenticTrials", "OutOfFold", "out_of_fold_trials"]

log = logging.getLogger(__name__)


@dataclass
class ClassifierConfig:
    """Hyper-parameters of the two gradient-boosted models."""

    max_iter: int = 200  # boosting rounds
    learning_rate: float = 0.08
    max_leaf_nodes: int = 15
    l2_regularization: float = 1.0
    min_samples_leaf: int = 20
    folds: int = 5  # out-of-fold brand confidences feed the risk model, so it never sees over-confident ones
    seed: int = 0


@dataclass
class LabelledFeatures:
    """Features of listings with their labels."""

    features: list[ListingFeatures]
    labels: list[str]  # counterfeit / authentic / unbranded
    brand_ids: list[int | None]  # the registered brand whose mark is shown, if any
    groups: list[str]  # grouping key for folds (the brand slug, or the listing id when none)
    records: list[dict] = field(default_factory=list)  # the dataset rows (for metrics by generator kind)


def subset_features(data: LabelledFeatures, pick: Sequence[int]) -> LabelledFeatures:
    """The listings ``pick`` of ``data``, in that order."""
    return LabelledFeatures([data.features[i] for i in pick], [data.labels[i] for i in pick],
                            [data.brand_ids[i] for i in pick], [data.groups[i] for i in pick],
                            [data.records[i] for i in pick] if data.records else [])


def _model(cfg: ClassifierConfig) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=cfg.max_iter, learning_rate=cfg.learning_rate, max_leaf_nodes=cfg.max_leaf_nodes,
        l2_regularization=cfg.l2_regularization, min_samples_leaf=cfg.min_samples_leaf, random_state=cfg.seed,
    )


def _candidate_labels(data: LabelledFeatures) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    x, keys = candidate_matrix(data.features)
    y = np.array([int(data.brand_ids[i] is not None and data.brand_ids[i] == b) for i, b in keys], dtype=np.int64)
    return x, y, keys


def fit_classifier(train: LabelledFeatures, calibration: LabelledFeatures, cfg: ClassifierConfig) -> RiskClassifier:
    """Fit brand presence on train candidates, risk on train listings, sigmoid calibration on ``calibration``.

    Sigmoid (Platt) rather than isotonic calibration: isotonic maps many listings to the same risk (ties at 1.0), which
    leaves no threshold between them and makes recall at a low false-positive rate meaningless.

    Brand confidences used to train the risk model are out-of-fold (grouped by brand), so the risk model learns how
    much to trust a confidence it will really see at serving time.
    """
    x, y, keys = _candidate_labels(train)
    if len(set(y.tolist())) < 2:
        raise ValueError("brand model needs both present and absent candidates in the training data")
    groups = np.array([train.groups[i] for i, _ in keys])
    brand_model = _model(cfg).fit(x, y)
    n_groups = len(set(groups.tolist()))
    folds = min(cfg.folds, n_groups)
    if folds >= 2:
        oof = cross_val_predict(_model(cfg), x, y, groups=groups, cv=GroupKFold(folds), method="predict_proba")[:, 1]
    else:
        oof = brand_model.predict_proba(x)[:, 1]
    conf = dict(zip(keys, oof))
    for i, lf in enumerate(train.features):
        for c in lf.candidates:
            c.confidence = float(conf[(i, c.brand_id)])

    xr = np.stack([risk_vector(lf) for lf in train.features])
    yr = np.array([lab == "counterfeit" for lab in train.labels], dtype=np.int64)
    risk_raw = _model(cfg).fit(xr, yr)

    clf = RiskClassifier(brand_model, risk_raw)
    clf.set_brand_confidence(calibration.features)
    xc = np.stack([risk_vector(lf) for lf in calibration.features])
    yc = np.array([lab == "counterfeit" for lab in calibration.labels], dtype=np.int64)
    if len(set(yc.tolist())) == 2 and len(yc) >= 30:
        clf.risk_model = CalibratedClassifierCV(FrozenEstimator(risk_raw), method="sigmoid").fit(xc, yc)
    else:  # too little held-back data (tiny runs): calibrate by cross-validation on the training listings
        log.warning("calibration set has %d listings / %d classes: calibrating by 3-fold CV on train instead",
                    len(yc), len(set(yc.tolist())))
        clf.risk_model = CalibratedClassifierCV(_model(cfg), method="sigmoid", cv=3).fit(xr, yr)
    # Leave training features with the final model's confidences, as serving will compute them.
    clf.set_brand_confidence(train.features)
    return clf


@dataclass
class AuthenticTrials:
    """Authentic listings beyond validation, each scored by a classifier that never saw its brand, as more trials of
    the authentic-blocked cap (``choose_thresholds``): what the policy needs to tell whether each could be blocked."""

    risks: np.ndarray
    brand_conf: np.ndarray  # best brand confidence
    authorized: np.ndarray  # whether the best brand lists the seller
    text_named: np.ndarray  # whether the listing's own text names its best brand
    ids: list[str]  # source listing (``listing_ids``)


@dataclass
class OutOfFold:
    """Training listings scored by classifiers that never saw their brand (``out_of_fold_trials``): more trials of
    the policy's bounds than validation alone holds."""

    authentic: AuthenticTrials  # for the authentic-blocked cap
    unregistered: np.ndarray  # best brand confidence of each unregistered-logo listing (``unregistered_confidences``)
    text_brandless: np.ndarray  # of each brand-less listing whose text names its best candidate


def out_of_fold_trials(train: LabelledFeatures, calibration: LabelledFeatures, cfg: ClassifierConfig,
                       policy: PolicyConfig) -> OutOfFold:
    """Score the training listings out of fold: they are split by brand (``train.groups``: the brand, or the
    unregistered logo) into ``cfg.folds`` folds, and a classifier fitted on the others (``fit_classifier``,
    calibrated on ``calibration``) scores each fold. Their risks and brand confidences are what a model that never
    saw those brands gives them, like a new brand's listings at serving time, so they can join validation's
    listings as trials of the policy's bounds (cross-fitting). With ``policy.text_brand_threshold`` set, unregistered
    logos whose text names their best candidate are left out of ``unregistered``, as ``train`` does for validation.

    Leaves the brand confidences of ``train`` set by the last fold's model: fit the final classifier afterwards.
    """
    groups = np.array(train.groups)
    folds = min(cfg.folds, len(set(groups.tolist())))
    if folds < 2:
        raise ValueError("out-of-fold scoring needs training listings of at least two brands")
    # row positions stand in for listing ids only in data without records: keep them apart from validation's
    ids = listing_ids(train) if train.records else [f"train-{i}" for i in range(len(train.labels))]
    split = policy.text_brand_threshold is not None
    marked = "unregistered_logo" in _kinds(train)
    unregistered, brandless = [], []
    authentic: dict[str, list] = {"risks": [], "brand_conf": [], "authorized": [], "text_named": []}
    authentic_ids: list[str] = []
    for fit_rows, held_rows in GroupKFold(folds).split(groups, groups=groups):
        clf = fit_classifier(subset_features(train, fit_rows), calibration, cfg)
        part = subset_features(train, held_rows)
        clf.set_brand_confidence(part.features)
        named = text_named_rows(part, policy)
        unregistered.append(unregistered_confidences(part, skip=named if split else None, marked=marked))
        brandless.append(text_named_brandless_confidences(part, named))
        rows = [j for j, lab in enumerate(part.labels) if lab == "authentic"]
        held = subset_features(part, rows)
        authentic["risks"].append(clf.predict_risk(held.features) if rows else np.zeros(0))
        authentic["brand_conf"].append(best_confidences(held))
        authentic["authorized"].append(best_authorized(held).astype(bool))
        authentic["text_named"].append(named[rows])
        authentic_ids += [ids[held_rows[j]] for j in rows]
    trials = AuthenticTrials(**{k: np.concatenate(v) for k, v in authentic.items()}, ids=authentic_ids)
    return OutOfFold(trials, np.concatenate(unregistered), np.concatenate(brandless))


def _threshold_for_precision(scores: np.ndarray, positive: np.ndarray, target: float, min_support: int = 5) -> float:
    """Lowest threshold whose precision on (scores >= t) is at least ``target``; 1.0 when none reaches it."""
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.float64)
    tp = np.cumsum(p)
    n = np.arange(1, len(s) + 1)
    precision = tp / n
    best = 1.0
    for idx in range(len(s)):
        # only cut between distinct scores
        if idx + 1 < len(s) and s[idx + 1] == s[idx]:
            continue
        if n[idx] >= min_support and precision[idx] >= target:
            best = float(s[idx])
    return best


def _threshold_for_rate(scores: np.ndarray, max_rate: float) -> float:
    """Lowest threshold that puts at most ``max_rate`` of ``scores`` at or above it (0.0 when there are none)."""
    if len(scores) == 0:
        return 0.0
    allowed = int(np.floor(max_rate * len(scores) + 1e-9))
    ranked = np.sort(scores)[::-1]
    if allowed >= len(ranked):
        return 0.0
    return _just_above(ranked[allowed])  # the first score that must stay below


def _just_above(score: float) -> float:
    """The smallest threshold above ``score`` in the 6 decimals a policy file keeps."""
    return float(np.ceil(np.nextafter(score, np.inf) * 1e6) / 1e6)


def listing_ids(data: LabelledFeatures) -> list[str]:
    """Each row's source listing: its listing id, or for a photo-only / text-only copy the listing it was made from
    (the copy shares its photos or its text); the row's position when the data has no records."""
    if not data.records:
        return [str(i) for i in range(len(data.labels))]
    return [source_listing_id(r) if "listing_id" in r else str(i) for i, r in enumerate(data.records)]


def _max_by(values: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """Highest value for each key, keys in first-seen order."""
    best: dict[str, float] = {}
    for key, value in zip(keys, values):
        best[key] = max(best.get(key, -np.inf), float(value))
    return np.fromiter(best.values(), dtype=np.float64, count=len(best))


def _kinds(data: LabelledFeatures) -> list[str | None]:
    """Each listing's generator kind (``meta.kind``; None without records)."""
    return [(r.get("meta") or {}).get("kind") for r in data.records] if data.records else [None] * len(data.labels)


def unregistered_confidences(data: LabelledFeatures, skip: np.ndarray | None = None,
                             marked: bool | None = None) -> np.ndarray:
    """Best brand confidence of each listing showing an unregistered brand's logo (brand confidences must be set).

    Listings are recognised by their record's ``meta.kind == "unregistered_logo"`` (generated data); data without
    such records (e.g. only moderators' verdicts) falls back to every unbranded listing. ``marked`` says which of the
    two ``data`` is when it is part of a larger set (a fold that happens to hold no unregistered logo is still
    generated data); None tells from ``data`` itself. A listing that appears more
    than once (a companion marketplace draws the same listings again, a photo-only copy reuses its photos) is one
    trial of the attribution bound, at its highest confidence (see ``listing_ids``).

    ``skip`` (a flag per row) leaves rows out: those whose best candidate the listing's text names when the policy
    reports such candidates at a threshold of their own (``text_named_rows``).
    """
    kinds = _kinds(data)
    pick = [i for i, k in enumerate(kinds) if k == "unregistered_logo"]
    if not (marked if marked is not None else pick):
        pick = [i for i, lab in enumerate(data.labels) if lab == "unbranded"]
    if skip is not None:
        pick = [i for i in pick if not skip[i]]
    ids = listing_ids(data)
    return _max_by(best_confidences(data)[pick], [ids[i] for i in pick])


def text_named_rows(data: LabelledFeatures, policy: PolicyConfig) -> np.ndarray:
    """Whether each listing's best candidate is named in its own title, description or photo text (brand
    confidences must be set; see ``PolicyConfig.named_in_text``)."""
    return np.array([bool(lf.best() and policy.named_in_text(lf.best().features)) for lf in data.features], dtype=bool)


def text_named_brandless_confidences(data: LabelledFeatures, text_named: np.ndarray) -> np.ndarray:
    """Best brand confidence of each brand-less listing whose text names its best candidate ("compatible with X",
    a brand's name in an unbranded product's description): what the text brand threshold must not report. One
    trial per source listing, as in ``unregistered_confidences``."""
    pick = [i for i, lab in enumerate(data.labels) if lab == "unbranded" and text_named[i]]
    ids = listing_ids(data)
    return _max_by(best_confidences(data)[pick], [ids[i] for i in pick])


def best_confidences(data: LabelledFeatures) -> np.ndarray:
    """Each listing's best brand confidence, 0 where no brand is a candidate (brand confidences must be set)."""
    return np.array([lf.best().confidence if lf.best() else 0.0 for lf in data.features], dtype=np.float64)


def best_authorized(data: LabelledFeatures) -> np.ndarray:
    """Whether each listing's best brand candidate lists its seller as authorised (what the policy never blocks once
    that brand is named)."""
    return np.array([bool(lf.best() and lf.best().features.get("authorized_seller")) for lf in data.features])


def attribution_upper_bound(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen as ``k`` of ``n`` (1.0 when ``n`` is 0)."""
    if n == 0 or k >= n:
        return 1.0
    return float(beta.ppf(confidence, k + 1, n - k))


def _allowed_count(n: int, max_rate: float, confidence: float) -> int:
    """Most events of ``n`` whose one-sided upper bound at ``confidence`` stays within ``max_rate`` (0 when even
    none proves it: too few trials, and zero is the best the data supports)."""
    allowed = 0
    while allowed + 1 < n and attribution_upper_bound(allowed + 1, n, confidence) <= max_rate:
        allowed += 1
    return allowed


def _brand_threshold(conf_unregistered: np.ndarray, max_rate: float, confidence: float) -> tuple[float, dict[str, Any]]:
    """Lowest brand threshold (0.5 to 0.99) whose attribution rate is at most ``max_rate`` with ``confidence``.

    ``k`` attributions out of ``n`` are allowed while the upper bound stays within ``max_rate``; when even zero does
    not prove it (too few listings), zero attributions is the best the data supports.
    """
    n = len(conf_unregistered)
    allowed = _allowed_count(n, max_rate, confidence)
    t = _threshold_for_rate(conf_unregistered, allowed / n) if n else 0.0
    t = min(max(t, 0.5), 0.99)
    attributed = int((conf_unregistered >= t).sum())
    return t, {"n": n, "allowed": allowed, "attributed": attributed,
               "upper_bound": round(attribution_upper_bound(attributed, n, confidence), 4)}


def _binding_listing(authentic_risks: np.ndarray, keys: Sequence[str], allowed: int, by_precision: float,
                     capped: float, counterfeit_risks: np.ndarray) -> dict[str, Any]:
    """When the authentic cap, not the target precision, sets the block threshold: the authentic listing that sets
    it (the highest-risk one that must stay unblocked), the next one's risk, and how many counterfeit rows lie
    between the two, i.e. would be blocked were that one listing not in validation. The cut is an order statistic of
    a few hundred listings, so one listing can move it a long way: this says how far."""
    if capped <= by_precision or allowed >= len(authentic_risks):
        return {"set_by": "precision"}
    order = np.argsort(-authentic_risks, kind="stable")
    binding = order[allowed]
    following = authentic_risks[order[allowed + 1]] if allowed + 1 < len(order) else -np.inf
    without = max(by_precision, _just_above(following) if np.isfinite(following) else 0.0)  # the next one's cut
    between = (counterfeit_risks >= without) & (counterfeit_risks < min(capped, 1.0)) & np.isfinite(counterfeit_risks)
    return {"set_by": "authentic_cap", "listing": keys[binding], "risk": round(float(authentic_risks[binding]), 6),
            "next_risk": round(float(following), 6) if np.isfinite(following) else None,
            "counterfeits_held_back": int(between.sum())}


def _blockable(base: PolicyConfig, n: int, brand_conf: np.ndarray | None, authorized: np.ndarray | None,
               text_named: np.ndarray | None, brand_t: float, text_t: float | None) -> np.ndarray:
    """Whether the policy could block each of ``n`` listings, with candidates reported at ``brand_t`` (``text_t``
    for those named in the listing's text); see ``choose_thresholds``."""
    thresholds = np.full(n, brand_t) if text_t is None else np.where(np.asarray(text_named, dtype=bool), text_t,
                                                                     brand_t)
    named = np.ones(n, bool) if brand_conf is None else np.asarray(brand_conf) >= thresholds
    sellers = np.zeros(n, bool) if authorized is None else np.asarray(authorized, dtype=bool)
    # the seller counts as authorised only for a named brand, as in training.metrics.decisions_for
    return np.array([base.can_block(bool(a and m), bool(m)) for a, m in zip(sellers, named)], dtype=bool)


def choose_thresholds(
    risks: np.ndarray,
    labels: Sequence[str],
    brand_conf_unregistered: np.ndarray,
    base: PolicyConfig,
    report: dict[str, Any] | None = None,
    brand_conf: np.ndarray | None = None,
    authorized: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    text_named: np.ndarray | None = None,
    brand_conf_text_brandless: np.ndarray | None = None,
    more_authentic: AuthenticTrials | None = None,
) -> PolicyConfig:
    """Pick review / block thresholds for the policy's targets and the brand-confidence threshold.

    The block threshold is the lowest one that reaches the target block precision *and* blocks at most
    ``base.max_authentic_blocked`` of the authentic listings: precision alone lets a few authentic sellers be
    blocked whenever counterfeits are plentiful. With ``base.authentic_blocked_confidence`` that share must hold as
    a one-sided Clopper-Pearson bound, as for unregistered logos: with fewer than ~1,000 authentic validation
    listings no blocked one is allowed.

    The brand threshold is the smallest one (0.5 to 0.99) at which the share of ``brand_conf_unregistered``
    (best brand confidence of validation listings showing an unregistered brand's logo) attributed to a registered
    brand is at most ``base.max_unregistered_attribution``, as a one-sided Clopper-Pearson bound at
    ``base.attribution_confidence``: with ~100 such listings the observed rate alone would be noise.
    ``report``, when given, receives how the brand threshold was reached.

    With ``base.block_needs_brand`` only listings that name a brand can be blocked, so the block threshold is chosen
    among those: ``brand_conf`` (each listing's best brand confidence) must then be given. Likewise, with
    ``base.never_block_authorized``, ``authorized`` (whether each listing's best brand lists its seller, see
    ``best_authorized``; needs ``brand_conf``) leaves out the listings the policy never blocks once that brand is
    named: the thresholds are chosen among the listings ``training.metrics.decisions_for`` could block.

    ``ids`` (each row's source listing, see ``listing_ids``) makes a listing seen more than once (drawn again by a
    companion marketplace, or copied photo-only or text-only) count once in the authentic-blocked bound, at its
    highest risk, as ``unregistered_confidences`` does for the brand threshold: they are not independent trials.

    With ``base.text_brand_threshold`` set, candidates named in the listing's own text are reported at a threshold of
    their own, chosen the same way from ``brand_conf_text_brandless`` (brand-less listings whose text names their
    best candidate, see ``text_named_brandless_confidences``); ``text_named`` (per listing, ``text_named_rows``) and
    ``brand_conf`` are then needed, and ``brand_conf_unregistered`` should leave text-named rows out: each wrong name
    is bounded by the threshold that reports it.

    ``more_authentic`` (``out_of_fold_trials``) adds authentic listings scored by a classifier that never saw
    them as more trials of the authentic-blocked bound, judged blockable by the same rules at the brand thresholds
    chosen here: with ~230 validation listings alone the block threshold is the riskiest one's risk, which one
    listing moves a long way, and no blocked one can be allowed.
    """
    positive = np.array([lab == "counterfeit" for lab in labels])
    authentic = np.array([lab == "authentic" for lab in labels])
    brand_t, brand_report = _brand_threshold(np.asarray(brand_conf_unregistered, dtype=np.float64),
                                             base.max_unregistered_attribution, base.attribution_confidence)
    split = base.text_brand_threshold is not None
    if (base.block_needs_brand or authorized is not None or split) and (brand_conf is None
                                                                       or len(brand_conf) != len(risks)):
        raise ValueError("a policy with block_needs_brand or a text brand threshold (or authorised sellers given) "
                         "needs each listing's brand confidence")
    text_t, text_report = None, None
    if split:
        if text_named is None or len(text_named) != len(risks) or brand_conf_text_brandless is None:
            raise ValueError("a policy with a text brand threshold needs text_named (per listing) and "
                             "brand_conf_text_brandless")
        text_t, text_report = _brand_threshold(np.asarray(brand_conf_text_brandless, dtype=np.float64),
                                               base.max_unregistered_attribution, base.attribution_confidence)
    block_risks = np.where(_blockable(base, len(risks), brand_conf, authorized, text_named, brand_t, text_t),
                           risks, -np.inf)
    block = _threshold_for_precision(block_risks, positive, base.target_block_precision)
    keys = [str(i) for i in range(len(risks))] if ids is None else list(ids)
    if len(keys) != len(risks):
        raise ValueError(f"{len(keys)} listing ids for {len(risks)} risks")
    authentic_keys = [k for k, a in zip(keys, authentic) if a]
    authentic_block_risks = block_risks[authentic]
    if more_authentic is not None:
        if set(more_authentic.ids) & set(keys):
            raise ValueError("more_authentic holds validation listings: each listing is one trial")
        more = more_authentic
        authentic_keys += more.ids
        more_blockable = _blockable(base, len(more.risks), more.brand_conf, more.authorized, more.text_named,
                                    brand_t, text_t)
        authentic_block_risks = np.concatenate([authentic_block_risks, np.where(more_blockable, more.risks, -np.inf)])
    authentic_risks = _max_by(authentic_block_risks, authentic_keys)
    n_authentic, authentic_cap = len(authentic_risks), base.max_authentic_blocked
    if base.authentic_blocked_confidence is not None and n_authentic:
        authentic_cap = _allowed_count(n_authentic, authentic_cap, base.authentic_blocked_confidence) / n_authentic
    capped = _threshold_for_rate(authentic_risks, authentic_cap)
    by_precision, block = block, min(1.0, max(block, capped, 0.0))
    review = min(_threshold_for_precision(risks, positive, base.target_review_precision), block)
    if report is not None:
        allowed = int(np.floor(authentic_cap * n_authentic + 1e-9))
        report.update(brand_report, brand_threshold=round(brand_t, 6), authentic_blocked={
            "n": n_authentic, "allowed": allowed,
            **({"n_out_of_fold": len(set(more_authentic.ids))} if more_authentic is not None else {}),
            **_binding_listing(authentic_risks, list(dict.fromkeys(authentic_keys)), allowed, by_precision, capped,
                               block_risks[positive])})
        if split:
            report["text_brand_threshold"] = {**text_report, "threshold": round(text_t, 6)}
    return PolicyConfig.from_dict({**base.to_dict(), "review_threshold": round(review, 6),
                                   "block_threshold": round(block, 6), "brand_threshold": round(brand_t, 6),
                                   "text_brand_threshold": round(text_t, 6) if split else None})
