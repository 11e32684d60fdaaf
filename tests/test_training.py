"""Training smoke run through main(argv), held-out guard, and evaluation checked against independent counts."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil

import numpy as np
import pytest

from detector.bundle import load_model
from detector.features import Candidate, ListingFeatures, Match
from detector.policy import PolicyConfig
from training import evaluate as evaluate_mod
from training import train as train_mod
from training.classifier import (LabelledFeatures, _threshold_for_precision, attribution_upper_bound, choose_thresholds,
                                 unregistered_confidences)
from training.data import (load_dataset, photo_only_copies, photo_only_copy, source_listing_id, text_only_copies,
                           text_only_copy)
from training.metrics import image_top_brand, photo_top_brand
from training.pipeline import load_features
from training.splits import is_heldout_brand, split_hash


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train_mod.main(["--config", "quick", "--data", str(small_dataset), "--out", str(out), "--no-progress"]) == 0
    return out / "model"


@pytest.fixture(scope="module")
def evaluated(trained, small_dataset, tmp_path_factory):
    """One evaluation of the trained model on the test split (metrics, predictions, report and saved features),
    read by the tests below that check what an evaluation writes; none of them writes into it."""
    out = tmp_path_factory.mktemp("eval") / "eval"
    assert evaluate_mod.main(["--model", str(trained), "--data", str(small_dataset), "--out", str(out),
                              "--no-progress"]) == 0
    return out


def test_training_writes_a_self_describing_model_dir(trained, small_dataset):
    meta = json.loads((trained / "model.json").read_text())
    for key in ("version", "embedder_config", "feature_config", "library_versions", "data", "metrics", "train_config"):
        assert key in meta
    dataset = load_dataset(small_dataset)
    assert meta["data"]["split_hashes"]["train"] == split_hash(dataset.listings_for("train"))
    val = dataset.listings_for("val")
    # the quick config also trains and tunes on photo-only copies of a fifth of the listings that show a logo
    assert meta["metrics"]["val"]["n_listings"] == len(val) + len(photo_only_copies(val, 0.2, seed=0))
    assert meta["data"]["photo_only_copies"]["val"] == len(photo_only_copies(val, 0.2, seed=0))
    assert meta["data"]["text_only_copies"] == {"train": 0, "val": 0}  # the quick config makes none
    assert meta["metrics"]["val"]["brand_named_photo_only"] is not None
    policy = json.loads((trained / "policy.json").read_text())
    assert 0 <= policy["review_threshold"] <= policy["block_threshold"] <= 1
    # thresholds are chosen on the whole validation split, so its own caps hold on all of it
    val_metrics = meta["metrics"]["val"]
    assert val_metrics["n_by_label"]["authentic"] > 0
    assert val_metrics["authentic_blocked_rate"] <= policy["max_authentic_blocked"]
    bundle = load_model(trained)
    assert bundle.version == meta["version"]
    # Known-fake fingerprints are whitened, fitted on training photos only (quick config: 64 directions).
    assert meta["fingerprint_whitening"]["dim"] == bundle.embedder.fingerprint_dim == 64
    assert meta["fingerprint_whitening"]["raw_dim"] == bundle.embedder.raw_fingerprint_dim


def test_training_data_never_holds_held_out_brands(small_dataset):
    dataset = load_dataset(small_dataset)
    for rec in dataset.listings_for("train") + dataset.listings_for("val"):
        meta = rec.get("meta") or {}
        for slug in (rec.get("brand_slug"), meta.get("logo_slug"), meta.get("mentioned_brand")):
            assert slug is None or not is_heldout_brand(slug)
    heldout = [b for b in dataset.brands if is_heldout_brand(b["slug"])]
    assert heldout and all(b["split"] == "test" for b in heldout)


def test_train_refuses_held_out_brands(small_dataset):
    dataset = load_dataset(small_dataset)
    test_rec = next(r for r in dataset.listings_for("test") if r.get("brand_slug"))
    assert is_heldout_brand(test_rec["brand_slug"])
    with pytest.raises(ValueError, match="held-out"):
        train_mod.assert_no_heldout(dataset.listings_for("train") + [test_rec])


def test_evaluation_metrics_match_independent_counts(evaluated, small_dataset):
    out = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    dataset = load_dataset(small_dataset)
    labels = {r["listing_id"]: r["label"] for r in dataset.listings_for("test")}
    assert len(preds) == metrics["n_listings"] == len(labels)
    assert all(p["label"] == labels[p["listing_id"]] for p in preds)

    y = np.array([p["label"] == "counterfeit" for p in preds])
    risk = np.array([p["risk"] for p in preds])
    pos, neg = risk[y], risk[~y]
    auc = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert metrics["auc"] == pytest.approx(auc, abs=1e-3)
    for d in ("allow", "review", "block"):
        assert metrics["decisions"][d] == sum(p["decision"] == d for p in preds)
    authentic = [p for p in preds if p["label"] == "authentic"]
    assert metrics["authentic_blocked_rate"] == pytest.approx(
        sum(p["decision"] == "block" for p in authentic) / len(authentic), abs=1e-4)
    branded = [p for p in preds if p["true_brand_id"] is not None]
    assert metrics["brand_top1_photo"] == pytest.approx(
        np.mean([p["image_brand_id"] == p["true_brand_id"] for p in branded]), abs=1e-4)
    assert metrics["brand_top1_photo_ocr"] == pytest.approx(
        np.mean([p["photo_brand_id"] == p["true_brand_id"] for p in branded]), abs=1e-4)
    assert metrics["title_top1"] == pytest.approx(
        np.mean([p["title_brand_id"] == p["true_brand_id"] for p in branded]), abs=1e-4)
    assert (out / "report.html").is_file() and (out / "roc.png").is_file() and (out / "risk_hist.png").is_file()


def test_an_evaluation_is_rescored_from_the_features_it_saved(trained, evaluated, small_dataset, tmp_path):
    """An evaluation saves its features; another evaluation with the same embedder and feature config (e.g. a
    refitted classifier) scores them without featurizing: the same model gives the same predictions."""
    first, again = evaluated, tmp_path / "again"
    common = ["--data", str(small_dataset), "--no-report", "--no-progress"]
    assert (first / train_mod.FEATURES_FILE).is_file()
    assert evaluate_mod.main(["--model", str(trained), "--out", str(again), "--features-from", str(first), *common]) == 0
    assert (first / "predictions.jsonl").read_text() == (again / "predictions.jsonl").read_text()
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (first, again))
    assert m2["features_from"] == str(first.resolve()) and not (again / train_mod.FEATURES_FILE).exists()
    assert {k: v for k, v in m1.items() if k not in ("wall_time_s", "features_from")} == \
        {k: v for k, v in m2.items() if k not in ("wall_time_s", "features_from")}
    with pytest.raises(ValueError, match="listings"):  # the photo-only copies were not featurized
        evaluate_mod.main(["--model", str(trained), "--out", str(tmp_path / "x"), "--photo-only",
                           "--features-from", str(first), *common])
    with pytest.raises(ValueError, match="embedder"):  # the shipped model embeds otherwise
        evaluate_mod.main(["--model", "default", "--out", str(tmp_path / "y"), "--features-from", str(first), *common])


def test_photo_only_evaluation_keeps_the_brand_out_of_the_text(trained, small_dataset, tmp_path):
    out = tmp_path / "photo"
    assert evaluate_mod.main(["--model", str(trained), "--data", str(small_dataset), "--out", str(out),
                              "--photo-only", "--no-report", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    originals = {r["listing_id"]: r for r in load_dataset(small_dataset).listings_for("test")}
    n_logo = sum(photo_only_copy(r) is not None for r in originals.values())
    assert metrics["photo_only"] and len(preds) == metrics["n_listings"] == n_logo > 0
    for p in preds:  # copies of test listings that show a logo, labels unchanged
        original = originals[p["listing_id"].removesuffix("-photo")]
        assert p["listing_id"].endswith("-photo") and original["meta"]["logo_slug"] and p["label"] == original["label"]
    branded = [p for p in preds if p["true_brand_id"] is not None]
    assert metrics["brand_named_photo_only"] == pytest.approx(
        np.mean([p["brand_id"] == p["true_brand_id"] for p in branded]), abs=1e-4)
    assert metrics["title_top1"] is None  # no listing has a title that could name its brand


def test_text_only_evaluation_shows_photos_without_the_mark(trained, small_dataset, tmp_path):
    out = tmp_path / "text"
    assert evaluate_mod.main(["--model", str(trained), "--data", str(small_dataset), "--out", str(out),
                              "--text-only", "--no-report", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    originals = {r["listing_id"]: r for r in load_dataset(small_dataset).listings_for("test")}
    n_sold = sum(r["label"] in ("counterfeit", "authentic") and r["meta"]["kind"] != "reupload"
                 for r in originals.values())
    assert metrics["text_only"] and len(preds) == metrics["n_listings"] == n_sold > 0
    for p in preds:  # copies of test listings selling a registered brand's goods, labels unchanged
        assert p["label"] == originals[p["listing_id"].removesuffix("-text")]["label"]
    assert metrics["brand_named_text_only"] == pytest.approx(
        np.mean([p["brand_id"] == p["true_brand_id"] for p in preds]), abs=1e-4)
    # the photos show no mark, so there is no brand-from-photo number to give
    assert metrics["brand_top1_photo"] is None and metrics["brand_named_photo_only"] is None
    with pytest.raises(ValueError, match="ask for one"):
        evaluate_mod.score_split(load_model(trained), small_dataset, photo_only=True, text_only=True)


def test_text_only_copies(small_dataset):
    records = load_dataset(small_dataset).listings_for("train")
    sold = next(r for r in records if r["label"] == "counterfeit" and r["meta"]["kind"] == "counterfeit")
    donor = next(r for r in records if r["label"] == "unbranded" and not r["meta"].get("logo_slug"))
    copy = text_only_copy(sold, donor)
    for key in ("title", "description", "price", "currency", "seller_id", "label", "brand_slug", "split"):
        assert copy[key] == sold[key]
    assert copy["images"] == donor["images"] and copy["listing_id"] == sold["listing_id"] + "-text"
    assert source_listing_id(copy) == source_listing_id(sold) == sold["listing_id"]
    assert copy["meta"]["text_only"] and copy["meta"]["logo_slug"] is None
    assert copy["meta"]["photos_of"] == donor["listing_id"]
    reupload = next(r for r in records if r["meta"]["kind"] == "reupload")
    assert text_only_copy(reupload, donor) is None and text_only_copy(donor, donor) is None
    assert text_only_copy(sold, {**donor, "images": []}) is None

    some = text_only_copies(records, 0.5, seed=0)
    assert some == text_only_copies(records, 0.5, seed=0) and text_only_copies(records, 0.0, seed=0) == []
    every = text_only_copies(records, 1.0, seed=0)
    assert len(every) == sum(text_only_copy(r, donor) is not None for r in records)
    assert 0.3 * len(every) < len(some) < 0.7 * len(every)
    by_id = {r["listing_id"]: r for r in records}
    for c in every:  # the donor is a logo-less listing of the same split, of the same product kind when possible
        d = by_id[c["meta"]["photos_of"]]
        assert d["label"] == "unbranded" and not d["meta"].get("logo_slug") and d["images"] == c["images"]
    same_kind = np.mean([by_id[c["meta"]["photos_of"]]["meta"]["product"] == c["meta"]["product"] for c in every])
    assert same_kind > 0.9


def test_photo_brand_is_a_name_read_in_the_photos_else_the_image_evidence():
    def features(*evidence: Match) -> ListingFeatures:
        return ListingFeatures("L", [], {}, list(evidence))

    region = Match(7, 1, "authentic", "image", 0.8, image_index=0, box=(0.0, 0.0, 0.4, 0.4))
    title = Match(None, 2, "brand_name", "text", 1.0, text="title: Acme", source="title")
    read = Match(None, 3, "brand_name", "text", 0.9, text="ocr: Globex", source="ocr")
    read_better = Match(None, 4, "brand_name", "text", 1.0, text="ocr: Initech", source="ocr")
    assert image_top_brand(features(region, title, read)) == 1
    assert photo_top_brand(features(region, title)) == 1  # a name in the title is not in the photo
    assert photo_top_brand(features(region, title, read)) == 3
    assert photo_top_brand(features(region, read, read_better)) == 4
    assert photo_top_brand(features(title)) is None


def test_photo_only_copies(small_dataset):
    records = load_dataset(small_dataset).listings_for("train")
    logo = next(r for r in records if r["meta"].get("logo_slug") and r.get("brand_slug"))
    copy = photo_only_copy(logo)
    for key in ("images", "price", "currency", "seller_id", "label", "brand_slug", "split"):
        assert copy[key] == logo[key]
    assert copy["listing_id"] == logo["listing_id"] + "-photo" and copy["description"] == ""
    assert source_listing_id(copy) == logo["listing_id"]
    # a listing whose id only ends like a copy's (e.g. a moderator's verdict) keeps its own id
    assert source_listing_id({**logo, "listing_id": "SKU-9-photo"}) == "SKU-9-photo"
    assert copy["meta"]["photo_only"] and copy["meta"]["logo_slug"] == logo["meta"]["logo_slug"]
    words = set(copy["title"].lower().split())
    assert words and words <= set(f"{logo['meta']['product_colour']} {logo['meta']['product']}".lower()
                                  .replace("_", " ").split())
    assert photo_only_copy(next(r for r in records if not r["meta"].get("logo_slug"))) is None
    some = photo_only_copies(records, 0.5, seed=0)
    assert some == photo_only_copies(records, 0.5, seed=0) and photo_only_copies(records, 0.0, seed=0) == []
    n_logo = sum(photo_only_copy(r) is not None for r in records)
    assert 0.3 * n_logo < len(some) < 0.7 * n_logo and len(photo_only_copies(records, 1.0, seed=0)) == n_logo


def test_threshold_for_precision():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    positive = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    assert _threshold_for_precision(scores, positive, 1.0, min_support=3) == 0.6
    assert _threshold_for_precision(scores, positive, 0.8, min_support=3) == 0.4
    assert _threshold_for_precision(scores, np.zeros(10, bool), 0.9) == 1.0


def test_block_threshold_also_caps_blocked_authentic_listings():
    from detector.policy import get_policy

    # 200 counterfeits at high risk, one authentic among them at 0.95, 199 authentic low: precision 0.995 >= 0.99
    # would block it; the authentic cap (0.5 % of 200 = 1 allowed) still allows it, a 0 % cap does not.
    risks = np.concatenate([np.linspace(0.9, 1.0, 200), [0.95], np.linspace(0.0, 0.3, 199)])
    labels = ["counterfeit"] * 200 + ["authentic"] * 200
    base = dataclasses.replace(get_policy("default"), block_needs_brand=False, authentic_blocked_confidence=None)
    lenient = choose_thresholds(risks, labels, np.zeros(0), base)
    assert lenient.block_threshold <= 0.9
    strict = choose_thresholds(risks, labels, np.zeros(0), PolicyConfig.from_dict({**base.to_dict(),
                                                                                    "max_authentic_blocked": 0.0}))
    assert 0.95 < strict.block_threshold <= 0.950001
    blocked_authentic = sum(r >= strict.block_threshold for r, lab in zip(risks, labels) if lab == "authentic")
    assert blocked_authentic == 0 and strict.review_threshold <= strict.block_threshold


def test_the_report_names_the_authentic_listing_that_sets_the_block_threshold():
    """With no authentic listing allowed above it, the cut sits just above the riskiest one: the report names it, the
    next one's risk, and the counterfeits it alone keeps from being blocked (those between the cut the precision
    target allows and this one)."""
    from detector.policy import get_policy

    risks = np.concatenate([np.linspace(0.9, 1.0, 200), [0.2, 0.95], np.linspace(0.0, 0.3, 198)])
    labels = ["counterfeit"] * 200 + ["authentic"] * 200
    ids = [f"C{i}" for i in range(200)] + [f"A{i}" for i in range(200)]
    base = dataclasses.replace(get_policy("default"), block_needs_brand=False)  # 200 authentic: the bound allows none
    report: dict = {}
    policy = choose_thresholds(risks, labels, np.zeros(0), base, report=report, ids=ids)
    precision_only = choose_thresholds(risks, labels, np.zeros(0), dataclasses.replace(
        base, max_authentic_blocked=1.0, authentic_blocked_confidence=None))
    held_back = sum(precision_only.block_threshold <= r < policy.block_threshold for r in risks[:200])
    assert held_back == 100  # 0.9 ... 0.9497: half the counterfeits
    assert report["authentic_blocked"] == {"n": 200, "allowed": 0, "set_by": "authentic_cap", "listing": "A1",
                                           "risk": 0.95, "next_risk": 0.3, "counterfeits_held_back": held_back}

    report = {}
    calm = risks.copy()
    calm[201] = 0.25  # no authentic listing among the counterfeits, and a precision target none of them passes
    exact = dataclasses.replace(base, target_block_precision=1.0)
    assert choose_thresholds(calm, labels, np.zeros(0), exact, report=report).block_threshold == 0.9
    assert report["authentic_blocked"] == {"n": 200, "allowed": 0, "set_by": "precision"}


def test_out_of_fold_authentic_listings_are_more_trials_of_the_authentic_cap():
    """200 validation listings allow no blocked authentic one, so one at 0.95 holds half the counterfeits back; with
    1,000 more scored out of fold the bound allows two and the cut falls to what precision asks. Trials are judged
    blockable by the same rules (an authorised seller's named listing never is), and a listing is one trial."""
    from detector.policy import get_policy
    from training.classifier import AuthenticTrials

    risks = np.concatenate([np.linspace(0.9, 1.0, 200), [0.2, 0.95], np.linspace(0.0, 0.3, 198)])
    labels = ["counterfeit"] * 200 + ["authentic"] * 200
    ids = [f"C{i}" for i in range(200)] + [f"A{i}" for i in range(200)]
    base = get_policy("default")
    conf = np.full(400, 0.95)

    def trials(top: list[float], authorized_top: bool, n: int = 1000) -> AuthenticTrials:
        authorized = np.zeros(n, bool)
        authorized[:len(top)] = authorized_top
        return AuthenticTrials(np.concatenate([top, np.linspace(0.0, 0.5, n - len(top))]), np.full(n, 0.95),
                               authorized, np.zeros(n, bool), [f"T{i}" for i in range(n)])

    alone = choose_thresholds(risks, labels, np.zeros(0), base, ids=ids, brand_conf=conf)
    assert alone.block_threshold > 0.95
    report: dict = {}
    more = choose_thresholds(risks, labels, np.zeros(0), base, ids=ids, brand_conf=conf, report=report,
                             more_authentic=trials([], False))
    assert report["authentic_blocked"]["n"] == 1200 and report["authentic_blocked"]["n_out_of_fold"] == 1000
    assert report["authentic_blocked"]["allowed"] == 2  # 2 of 1,200 bound the rate at 0.44 % with 90 % confidence
    assert attribution_upper_bound(2, 1200, 0.9) <= 0.005 < attribution_upper_bound(3, 1200, 0.9)
    assert more.block_threshold <= 0.9
    # two riskier authentic listings out of fold: the third riskiest, A1, is the one the cap cannot allow ...
    report = {}
    held = choose_thresholds(risks, labels, np.zeros(0), base, ids=ids, brand_conf=conf, report=report,
                             more_authentic=trials([0.97, 0.96], False))
    assert held.block_threshold > 0.95 and report["authentic_blocked"]["listing"] == "A1"
    # ... unless authorised sellers list them under their named brand: never blocked, so no trials against the cap
    assert choose_thresholds(risks, labels, np.zeros(0), base, ids=ids, brand_conf=conf,
                             more_authentic=trials([0.97, 0.96], True)).block_threshold <= 0.9
    with pytest.raises(ValueError, match="one trial"):
        choose_thresholds(risks, labels, np.zeros(0), base, ids=ids, brand_conf=conf,
                          more_authentic=dataclasses.replace(trials([], False), ids=["A5"] + [f"T{i}" for i in
                                                                                                range(1, 1000)]))


def test_out_of_fold_scores_come_from_classifiers_that_never_saw_the_brand(trained, monkeypatch):
    """Each training listing is scored once, by a classifier fitted without its brand's (or unregistered logo's)
    listings; the authentic ones become authentic-cap trials, the unregistered logos brand-threshold trials."""
    from detector.policy import get_policy
    from training import classifier as classifier_mod

    saved = pickle.loads((trained.parent / train_mod.FEATURES_FILE).read_bytes())["labelled"]
    train, val = saved["train"], saved["val"]
    group_of = {f.listing_id: g for f, g in zip(train.features, train.groups)}
    scored: list[tuple[set, list[str]]] = []
    fit = classifier_mod.fit_classifier

    def spy(data, calibration, cfg):
        clf = fit(data, calibration, cfg)
        set_confidence, seen = clf.set_brand_confidence, set(data.groups)

        def set_brand_confidence(features):
            scored.append((seen, [group_of[f.listing_id] for f in features]))
            return set_confidence(features)

        clf.set_brand_confidence = set_brand_confidence
        return clf

    monkeypatch.setattr(classifier_mod, "fit_classifier", spy)
    cfg = classifier_mod.ClassifierConfig(max_iter=20, folds=3)
    oof = classifier_mod.out_of_fold_trials(train, val, cfg, get_policy("default"))
    assert len(scored) == 3 and sorted(g for _, groups in scored for g in groups) == sorted(train.groups)
    for seen, groups in scored:
        assert groups and not seen & set(groups)
    ids = classifier_mod.listing_ids(train)
    authentic = [i for i, lab in enumerate(train.labels) if lab == "authentic"]
    assert sorted(oof.authentic.ids) == sorted(ids[i] for i in authentic)
    assert len(oof.authentic.risks) == len(authentic)
    assert np.all((oof.authentic.risks >= 0) & (oof.authentic.risks <= 1))
    assert len(oof.authentic.brand_conf) == len(oof.authentic.authorized) == len(oof.authentic.text_named)
    unregistered = {ids[i] for i, r in enumerate(train.records) if r["meta"]["kind"] == "unregistered_logo"}
    assert unregistered and len(oof.unregistered) == len(unregistered)  # one trial per listing
    assert np.all((oof.unregistered >= 0) & (oof.unregistered <= 1))


def test_training_can_take_the_policys_bounds_over_out_of_fold_listings_too(trained, small_dataset, tmp_path):
    """``out_of_fold_bounds`` adds the training listings, scored out of fold, to validation's trials of the bounds
    it names; the report counts them. An unknown bound is refused."""
    run = trained.parent
    config = json.loads((train_mod.CONFIG_DIR / "quick.json").read_text())
    (tmp_path / "oof.json").write_text(json.dumps({**config, "out_of_fold_bounds": ["authentic_blocked", "brand"]}))
    assert train_mod.main(["--config", str(tmp_path / "oof.json"), "--data", str(small_dataset), "--out",
                           str(tmp_path / "oof"), "--no-progress", "--features-from", str(run)]) == 0
    source = json.loads((trained / "model.json").read_text())["brand_threshold"]
    report = json.loads((tmp_path / "oof" / "model" / "model.json").read_text())["brand_threshold"]
    saved = pickle.loads((run / train_mod.FEATURES_FILE).read_bytes())["labelled"]["train"]
    from training.classifier import listing_ids

    ids = listing_ids(saved)
    n_authentic = len({ids[i] for i, lab in enumerate(saved.labels) if lab == "authentic"})
    n_unregistered = len({ids[i] for i, r in enumerate(saved.records) if r["meta"]["kind"] == "unregistered_logo"})
    assert report["authentic_blocked"]["n_out_of_fold"] == n_authentic
    assert report["authentic_blocked"]["n"] == source["authentic_blocked"]["n"] + n_authentic
    assert report["n"] == source["n"] + n_unregistered
    (tmp_path / "bad.json").write_text(json.dumps({**config, "out_of_fold_bounds": ["review"]}))
    with pytest.raises(ValueError, match="out_of_fold_bounds"):
        train_mod.get_train_config(tmp_path / "bad.json")


def test_the_authentic_cap_can_be_a_confidence_bound():
    """200 authentic validation listings cannot show that at most 0.5 % are blocked (even none bounds it at 1.1 %),
    so the bound allows none; 1,000 allow one (two would bound it at 0.53 %). The observed share allows 1 and 5."""
    from detector.policy import get_policy

    base = dataclasses.replace(get_policy("default"), block_needs_brand=False)
    assert base.authentic_blocked_confidence == 0.9  # the default policy asks for the bound
    for n_authentic, bound_allows, share_allows in ((200, 0, 1), (1000, 1, 5)):
        authentic = np.linspace(0.0, 0.3, n_authentic)
        authentic[:5] = [0.99, 0.98, 0.97, 0.96, 0.95]  # five authentic outliers among the counterfeits
        risks = np.concatenate([np.linspace(0.9, 1.0, 2000), authentic])
        labels = ["counterfeit"] * 2000 + ["authentic"] * n_authentic
        report: dict = {}
        policy = choose_thresholds(risks, labels, np.zeros(0), base, report=report)
        blocked = int((authentic >= policy.block_threshold).sum())
        assert blocked == report["authentic_blocked"]["allowed"] == bound_allows
        assert attribution_upper_bound(blocked + 1, n_authentic, 0.9) > 0.005
        point = choose_thresholds(risks, labels, np.zeros(0), dataclasses.replace(base, authentic_blocked_confidence=None))
        assert int((authentic >= point.block_threshold).sum()) == share_allows


def test_a_policy_that_blocks_only_named_brands_picks_its_block_threshold_among_them():
    from detector.policy import decide, get_policy

    # 100 counterfeits that name their brand (risk 0.8-1.0), 5 unbranded listings at risk 0.97-0.99 that name none
    # and 100 low-risk authentic ones. Counted as blockable the 5 would hold precision under 0.99 until above 0.99;
    # when they cannot be blocked, the threshold comes down to the named counterfeits.
    risks = np.concatenate([np.linspace(0.8, 1.0, 100), np.linspace(0.97, 0.99, 5), np.linspace(0.0, 0.3, 100)])
    labels = ["counterfeit"] * 100 + ["unbranded"] * 5 + ["authentic"] * 100
    brand_conf = np.concatenate([np.full(100, 0.95), np.full(5, 0.2), np.full(100, 0.9)])
    base = dataclasses.replace(get_policy("default"), block_needs_brand=False)
    plain = choose_thresholds(risks, labels, np.zeros(0), base, brand_conf=brand_conf)
    named = choose_thresholds(risks, labels, np.zeros(0), dataclasses.replace(base, block_needs_brand=True),
                              brand_conf=brand_conf)
    assert plain.block_threshold > 0.99 and named.block_threshold <= 0.8
    assert decide(0.98, named, brand_named=False) == "review" and decide(0.98, named, brand_named=True) == "block"
    assert decide(1.0, plain, brand_named=False) == "block"  # a plain policy blocks what it names no brand for
    with pytest.raises(ValueError, match="brand confidence"):
        choose_thresholds(risks, labels, np.zeros(0), named)


def test_listings_of_authorised_sellers_do_not_hold_the_block_threshold_up():
    """An authorised seller's listing is never blocked once its brand is named, so it neither costs block precision
    nor counts against the authentic cap: the threshold is chosen among the listings the policy could block."""
    from detector.policy import get_policy
    from training.metrics import decisions_for

    # 100 named counterfeits at 0.8-1.0, three authorised sellers' authentic listings at 0.90-0.99, 297 low ones
    risks = np.concatenate([np.linspace(0.8, 1.0, 100), [0.99, 0.95, 0.9], np.linspace(0.0, 0.3, 297)])
    labels = ["counterfeit"] * 100 + ["authentic"] * 300
    brand_conf = np.full(400, 0.95)
    authorized = np.zeros(400, dtype=bool)
    authorized[100:103] = True
    base = get_policy("default")
    unaware = choose_thresholds(risks, labels, np.zeros(0), base, brand_conf=brand_conf)
    aware = choose_thresholds(risks, labels, np.zeros(0), base, brand_conf=brand_conf, authorized=authorized)
    assert unaware.block_threshold > 0.99 and aware.block_threshold <= 0.8
    # a policy that may block them keeps them in
    assert choose_thresholds(risks, labels, np.zeros(0), dataclasses.replace(base, never_block_authorized=False),
                             brand_conf=brand_conf, authorized=authorized).block_threshold > 0.99
    # and what the threshold promises holds for the decisions the scorer makes
    feats = [ListingFeatures(f"L{i}", [Candidate(1, {"authorized_seller": float(a)}, float(c))], {})
             for i, (c, a) in enumerate(zip(brand_conf, authorized))]
    data = LabelledFeatures(feats, labels, [1] * 400, ["g"] * 400)
    decisions = decisions_for(data, risks, aware)
    assert not any(d == "block" for d, lab in zip(decisions, labels) if lab == "authentic")
    assert sum(d == "block" for d in decisions) == 100
    with pytest.raises(ValueError, match="brand confidence"):
        choose_thresholds(risks, labels, np.zeros(0), dataclasses.replace(base, block_needs_brand=False),
                          authorized=authorized)


def test_brand_threshold_bounds_unregistered_attribution_with_confidence():
    from detector.policy import get_policy

    base = dataclasses.replace(get_policy("default"), block_needs_brand=False)
    risks, labels = np.array([0.9, 0.1]), ["counterfeit", "authentic"]
    rng = np.random.default_rng(0)
    # 96 unregistered-logo listings (a validation split's worth): one attribution already puts the 90 % bound above
    # 3 %, so the threshold lands just above the most confident one.
    few = np.concatenate([rng.uniform(0.0, 0.6, 93), [0.7, 0.8, 0.87]])
    report: dict = {}
    policy = choose_thresholds(risks, labels, few, base, report=report)
    assert 0.87 < policy.brand_threshold <= 0.870001
    assert report["attributed"] == 0 and report["upper_bound"] <= 0.03
    # 1,000 such listings: some attributions fit under the bound, but not one more than the bound allows.
    many = rng.uniform(0.0, 1.0, 1000)
    policy = choose_thresholds(risks, labels, many, base, report=report)
    k = int((many >= policy.brand_threshold).sum())
    assert k == report["attributed"] == report["allowed"] > 0
    assert attribution_upper_bound(k, 1000, 0.9) <= 0.03 < attribution_upper_bound(k + 1, 1000, 0.9)
    # Clamped to [0.5, 0.99]; no such listings at all keeps the 0.5 floor.
    assert choose_thresholds(risks, labels, np.full(50, 0.995), base).brand_threshold == 0.99
    assert choose_thresholds(risks, labels, np.full(50, 0.1), base).brand_threshold == 0.5
    assert choose_thresholds(risks, labels, np.zeros(0), base).brand_threshold == 0.5


def test_a_text_brand_threshold_is_bounded_by_brand_less_listings_whose_text_names_a_brand():
    """Each wrong name is bounded by the threshold that reports it: the image threshold by unregistered logos no
    text names, the text threshold by brand-less listings whose text names their best candidate ("compatible with
    X"). A look-alike logo at 0.87 no longer holds text-named brands back; the block threshold is chosen among the
    listings each threshold names."""
    from detector.policy import get_policy
    from training.classifier import text_named_brandless_confidences, text_named_rows
    from training.metrics import decisions_for

    rng = np.random.default_rng(2)
    n_unreg, n_compat = 96, 60
    unreg = np.concatenate([rng.uniform(0.0, 0.6, n_unreg - 1), [0.87]])
    compat = np.concatenate([rng.uniform(0.0, 0.05, n_compat - 1), [0.3]])
    # 100 counterfeits named in their titles at confidence 0.6-0.8 (under the look-alike) and risk 0.9-1.0
    counterfeit = np.linspace(0.6, 0.8, 100)
    conf = np.concatenate([unreg, compat, counterfeit])
    text = [False] * n_unreg + [True] * (n_compat + 100)
    feats = [ListingFeatures(f"L{i}", [Candidate(1, {"title_score": 0.9 if t else 0.0, "img_sim": 0.7}, float(c))], {})
             for i, (c, t) in enumerate(zip(conf, text))]
    labels = ["unbranded"] * (n_unreg + n_compat) + ["counterfeit"] * 100
    records = ([{"listing_id": f"L{i}", "meta": {"kind": "unregistered_logo"}} for i in range(n_unreg)]
               + [{"listing_id": f"L{n_unreg + i}", "meta": {"kind": "generic"}} for i in range(n_compat + 100)])
    data = LabelledFeatures(feats, labels, [None] * (n_unreg + n_compat) + [1] * 100, ["g"] * len(feats), records)
    risks = np.concatenate([np.full(n_unreg + n_compat, 0.05), np.linspace(0.9, 1.0, 100)])

    one = get_policy("default")
    assert one.text_brand_threshold is None
    named_rows = text_named_rows(data, one)
    assert named_rows.tolist() == text
    single = choose_thresholds(risks, labels, unregistered_confidences(data), one, brand_conf=conf)
    assert 0.87 < single.brand_threshold and single.text_brand_threshold is None
    assert single.block_threshold == 1.0  # no counterfeit is named, so none can be blocked

    base = dataclasses.replace(one, text_brand_threshold=0.5)
    report: dict = {}
    split = choose_thresholds(risks, labels, unregistered_confidences(data, skip=named_rows), base, report=report,
                              brand_conf=conf, text_named=named_rows,
                              brand_conf_text_brandless=text_named_brandless_confidences(data, named_rows))
    assert 0.87 < split.brand_threshold <= 0.870001
    assert split.text_brand_threshold == 0.5  # the most confident "compatible with" listing (0.3) is under the floor
    assert report["text_brand_threshold"]["n"] == n_compat and report["text_brand_threshold"]["attributed"] == 0
    assert split.block_threshold <= 0.9
    decisions = decisions_for(data, risks, split)
    assert decisions[-100:] == ["block"] * 100 and "block" not in decisions[:-100]
    # a "compatible with" listing the brand model rates 0.7 holds the text threshold above it
    compat_high = text_named_brandless_confidences(data, named_rows)
    compat_high[-1] = 0.7
    assert 0.7 < choose_thresholds(risks, labels, unregistered_confidences(data, skip=named_rows), base,
                                   brand_conf=conf, text_named=named_rows,
                                   brand_conf_text_brandless=compat_high).text_brand_threshold <= 0.700001
    with pytest.raises(ValueError, match="text_named"):
        choose_thresholds(risks, labels, unregistered_confidences(data), base, brand_conf=conf)


def test_clopper_pearson_bound_matches_closed_form():
    # With no event in n trials the one-sided bound solves (1 - p) ** n = 1 - confidence.
    for n in (10, 96, 500):
        assert attribution_upper_bound(0, n, 0.9) == pytest.approx(1 - 0.1 ** (1 / n))
    assert attribution_upper_bound(3, 96, 0.9) > attribution_upper_bound(2, 96, 0.9) > 2 / 96
    assert attribution_upper_bound(0, 0, 0.9) == 1.0


def test_unregistered_confidences_pick_unregistered_logo_listings():
    from detector.features import Candidate, ListingFeatures
    from training.classifier import LabelledFeatures

    def listing(conf):
        return ListingFeatures("x", [Candidate(1, {}, conf), Candidate(2, {}, conf / 2)], {})

    feats = [listing(0.9), listing(0.4), listing(0.7), ListingFeatures("y", [], {})]
    labels = ["counterfeit", "unbranded", "unbranded", "unbranded"]
    records = [{"meta": {"kind": "counterfeit"}}, {"meta": {"kind": "unregistered_logo"}}, {"meta": {"kind": "generic"}},
               {"meta": {"kind": "unregistered_logo"}}]
    data = LabelledFeatures(feats, labels, [1, None, None, None], ["a", "b", "c", "d"], records)
    assert unregistered_confidences(data).tolist() == [0.4, 0.0]
    # Without that record kind (e.g. moderators' verdicts only), every unbranded listing counts.
    plain = LabelledFeatures(feats, labels, [1, None, None, None], ["a", "b", "c", "d"], [])
    assert unregistered_confidences(plain).tolist() == [0.4, 0.7, 0.0]
    # A part of generated data (an out-of-fold fold) that holds no unregistered logo has none, not every unbranded one.
    fold = LabelledFeatures(feats[:3], labels[:3], [1, None, None], ["a", "b", "c"],
                            [records[0], {"meta": {"kind": "generic"}}, records[2]])
    assert unregistered_confidences(fold).tolist() == [0.4, 0.7]
    assert unregistered_confidences(fold, marked=True).tolist() == []


def test_a_listing_drawn_twice_is_one_trial_of_each_bound():
    """A companion marketplace draws the same listings again (same ids, other photos), a photo-only copy reuses a
    listing's photos: they are not independent trials, so each bound counts the listing once, at its higher confidence or risk. Counted twice,
    96 unregistered-logo listings would allow one attribution and 500 authentic listings one blocked."""
    from detector.features import Candidate, ListingFeatures
    from detector.policy import get_policy
    from training.classifier import listing_ids

    rng = np.random.default_rng(1)
    first = np.concatenate([rng.uniform(0.0, 0.6, 95), [0.8]])
    second = np.concatenate([rng.uniform(0.0, 0.6, 95), [0.9]])
    feats = [ListingFeatures(f"L{i % 96}", [Candidate(1, {}, float(c))], {})
             for i, c in enumerate(np.concatenate([first, second]))]
    # the second drawing of L0 comes as a photo-only copy: the same listing's photos again
    records = [{"listing_id": "L0-photo" if i == 96 else f"L{i % 96}",
                "meta": {"kind": "unregistered_logo", "photo_only": i == 96}} for i in range(192)]
    data = LabelledFeatures(feats, ["unbranded"] * 192, [None] * 192, ["g"] * 192, records)
    assert listing_ids(data)[96] == "L0"
    once = unregistered_confidences(data)
    assert len(once) == 96 and once.tolist() == np.maximum(first, second).tolist()

    base = dataclasses.replace(get_policy("default"), block_needs_brand=False)
    risks, labels = np.array([0.9, 0.1]), ["counterfeit", "authentic"]
    twice = np.concatenate([first, second])
    assert choose_thresholds(risks, labels, twice, base).brand_threshold <= 0.8  # 192 "trials" allow one
    assert choose_thresholds(risks, labels, once, base).brand_threshold > 0.9

    authentic = np.linspace(0.0, 0.3, 500)
    redrawn = authentic.copy()
    authentic[0] = 0.99  # one authentic listing's first drawing scores among the counterfeits, its second does not
    risks = np.concatenate([np.linspace(0.9, 1.0, 2000), authentic, redrawn])
    labels = ["counterfeit"] * 2000 + ["authentic"] * 1000
    ids = [f"C{i}" for i in range(2000)] + [f"A{i % 500}" for i in range(1000)]
    report: dict = {}
    as_rows = choose_thresholds(risks, labels, np.zeros(0), base)
    as_listings = choose_thresholds(risks, labels, np.zeros(0), base, report=report, ids=ids)
    assert as_rows.block_threshold <= 0.99 < as_listings.block_threshold
    assert {k: report["authentic_blocked"][k] for k in ("n", "allowed", "listing")} == {"n": 500, "allowed": 0,
                                                                                       "listing": "A0"}
    with pytest.raises(ValueError, match="listing ids"):
        choose_thresholds(risks, labels, np.zeros(0), base, ids=ids[:-1])


def test_compare_and_model_store(trained, small_dataset, tmp_path):
    from detector.bundle import register_bento_model

    result = evaluate_mod.compare(trained, trained, small_dataset, tmp_path / "cmp", max_listings=40, progress=False)
    assert result["version_a"] == result["version_b"]
    n_test = len(load_dataset(small_dataset).listings_for("test"))
    assert result["metrics"]["auc"]["delta"] == 0.0
    assert result["metrics"]["n_listings"]["a"] == result["metrics"]["n_listings"]["b"] == min(40, n_test)
    tag = register_bento_model(trained)
    assert tag.startswith("counterfeit-detector:")
    assert load_model(tag).version == json.loads((trained / "model.json").read_text())["version"]


def test_retraining_only_the_classifier_reuses_the_embedder(trained, small_dataset, tmp_path):
    out = tmp_path / "run"
    config = json.loads((train_mod.CONFIG_DIR / "quick.json").read_text())
    config["embedder_overrides"] = {"fingerprints": {"border": 0.06}}  # known fakes stored from bordered views too
    config["max_listings"] = 60  # the classifier stage only needs to run, not to be good
    (tmp_path / "bordered.json").write_text(json.dumps(config))
    argv = ["--config", str(tmp_path / "bordered.json"), "--data", str(small_dataset), "--out", str(out),
            "--no-progress", "--embedder-from", str(trained), "--keep-whitening"]
    assert train_mod.main(argv) == 0
    source, retrained = load_model(trained), load_model(out / "model")
    assert retrained.embedder.version == source.embedder.version  # same weights, same whitening (kept)
    assert retrained.embedder.fingerprints_id == source.embedder.model_id + "#fingerprint-border0.06"
    assert source.embedder.fingerprints_id == source.embedder.model_id + "#fingerprint"
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["finetune"]["reused_from"]["version"] == source.version
    assert meta["fingerprint_whitening"]["kept_from"] == source.version
    assert not (out / "finetune.json").exists()


def test_a_reused_embedder_keeps_its_whitening_when_it_would_be_fitted_on_the_same_photos(trained, small_dataset,
                                                                                         tmp_path):
    """--embedder-from fits the known-fake whitening again (an hour on the default data) unless the source model's is
    the one this run would fit: same sampled training photos (digest in its report), whitening and embedder config."""
    from detector.bundle import load_embedder_weights
    from detector.embedder import WHITENING_PREFIX
    from training.whitening import WhiteningConfig

    config = train_mod.get_train_config("quick")
    records = train_mod._select_listings(load_dataset(small_dataset), config)[0]["train"]
    embedder_config, delta = load_embedder_weights(trained)
    meta = json.loads((trained / "model.json").read_text())
    whitening = WhiteningConfig.from_dict(config.fingerprint_whitening)
    source = train_mod._SourceWhitening({k: v for k, v in delta.items() if k.startswith(WHITENING_PREFIX)},
                                        meta["fingerprint_whitening"], whitening, meta["version"], embedder_config)
    assert source.delta and len(meta["fingerprint_whitening"]["photos"]) == 16

    def kept(src=source, emb=embedder_config, cfg=whitening, recs=records, keep=False):
        return train_mod._kept_whitening(src, emb, cfg, recs, keep)

    same = kept()
    assert same is not None and same[1]["kept_from"] == meta["version"] and same[0] is source.delta
    bordered = {**embedder_config, "fingerprints": {**embedder_config["fingerprints"], "border": 0.06}}
    for other in (kept(recs=records[1:]), kept(cfg=dataclasses.replace(whitening, dim=whitening.dim // 2)),
                  kept(src=source._replace(config=None)), kept(emb=bordered),
                  kept(src=source._replace(report={k: v for k, v in source.report.items() if k != "photos"}))):
        assert other is None  # other photos, directions, layout, or an older model that recorded no digest
    assert kept(recs=records[1:], keep=True)[1]["kept_from"] == meta["version"]  # asked for: kept anyway
    assert kept(src=source._replace(delta={})) is None  # a model without whitening: fitted
    with pytest.raises(ValueError, match="no fingerprint whitening"):
        kept(src=source._replace(delta={}), keep=True)
    with pytest.raises(ValueError, match="keep_whitening"):
        train_mod.train(config, small_dataset, tmp_path, keep_whitening=True)


def test_a_stopped_run_goes_on_from_its_saved_fine_tuning(trained, small_dataset, tmp_path):
    """--finetune-from reuses a run's finetune_weights.safetensors and report instead of fine-tuning again."""
    import torch
    from safetensors.torch import load_file

    from detector.bundle import load_embedder_weights
    from detector.embedder import WHITENING_PREFIX

    run = trained.parent
    config = json.loads((train_mod.CONFIG_DIR / "quick.json").read_text())
    config["max_listings"] = 40  # the classifier stage only needs to run, not to be good
    (tmp_path / "small.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    argv = ["--config", str(tmp_path / "small.json"), "--data", str(small_dataset), "--out", str(out), "--no-progress",
            "--finetune-from", str(run)]
    assert train_mod.main(argv) == 0
    assert not (out / "finetune.json").exists()  # nothing was fine-tuned
    saved = load_file(run / "finetune_weights.safetensors")
    _, delta = load_embedder_weights(out / "model")
    tuned = {k: v for k, v in delta.items() if not k.startswith(WHITENING_PREFIX)}
    assert tuned.keys() == saved.keys() and all(torch.equal(tuned[k], saved[k].float()) for k in saved)
    meta = json.loads((out / "model" / "model.json").read_text())
    source = json.loads((run / "finetune.json").read_text())
    assert meta["finetune"]["reused_from"]["run"] == str(run.resolve())
    assert meta["finetune"]["heldout_retrieval_after"] == source["heldout_retrieval_after"]

    other = train_mod.get_train_config(tmp_path / "small.json")
    other.finetune = {**other.finetune, "epochs": 4}
    with pytest.raises(ValueError, match="epochs"):  # weights of other settings are not passed off as this config's
        train_mod.load_finetune_run(run, other)
    mine = train_mod.get_train_config(tmp_path / "small.json")
    val_slugs = set(source["excluded_slugs"])  # the fixture's fine-tuning left out its validation brands
    assert val_slugs and train_mod.load_finetune_run(run, mine, val_slugs)[1]["excluded_slugs"] == sorted(val_slugs)
    trained_on = next(b["slug"] for b in load_dataset(small_dataset).brands if b["split"] == "train")
    with pytest.raises(ValueError, match="validation brands"):  # an embedder that saw them is not reused
        train_mod.load_finetune_run(run, mine, val_slugs | {trained_on})
    # a run written before the scene-photo settings existed ran without them: it matches a config without them ...
    older = tmp_path / "older"
    older.mkdir()
    (older / "finetune_weights.safetensors").write_bytes((run / "finetune_weights.safetensors").read_bytes())
    (older / "finetune.json").write_text(json.dumps({**source, "config": {
        k: v for k, v in source["config"].items() if k not in ("scene_photos_per_brand", "scenes")}}))
    assert train_mod.load_finetune_run(older, mine, val_slugs)[1]["heldout_retrieval_after"] == \
        source["heldout_retrieval_after"]
    with_scenes = train_mod.get_train_config(tmp_path / "small.json")  # ... and not one that asks for them
    with_scenes.finetune = {**with_scenes.finetune, "scene_photos_per_brand": 1}
    with pytest.raises(ValueError, match="scene_photos_per_brand"):
        train_mod.load_finetune_run(older, with_scenes, val_slugs)
    other.finetune = None
    with pytest.raises(ValueError, match="does not fine-tune"):
        train_mod.load_finetune_run(run, other)
    with pytest.raises(FileNotFoundError, match="finetune.json"):
        train_mod.load_finetune_run(tmp_path, train_mod.get_train_config("quick"))
    with pytest.raises(ValueError, match="give one"):
        train_mod.train(train_mod.get_train_config("quick"), small_dataset, out, embedder_from=trained,
                        finetune_from=run)


def test_a_finished_run_refits_its_classifier_and_policy_from_saved_features(trained, small_dataset, tmp_path):
    """--features-from reuses a run's model embedder and features.pkl: same embedder, same classifier inputs, so the
    same model comes out; a config with fewer copies refits on a subset; features computed for other listings,
    registry or feature settings are refused."""
    run = trained.parent
    assert (run / train_mod.FEATURES_FILE).is_file()
    out = tmp_path / "refit"
    argv = ["--config", "quick", "--data", str(small_dataset), "--out", str(out), "--no-progress",
            "--features-from", str(run)]
    assert train_mod.main(argv) == 0
    source, refit = json.loads((trained / "model.json").read_text()), json.loads((out / "model" / "model.json")
                                                                                  .read_text())
    assert refit["version"] == source["version"]  # same weights, classifier and policy: the same content hash
    assert refit["metrics"] == source["metrics"]
    assert refit["fingerprint_whitening"] == source["fingerprint_whitening"]
    assert refit["finetune"]["reused_from"]["version"] == source["version"]
    assert not (out / "finetune.json").exists()
    # the refit's folder keeps the features its classifier was fitted on, so it can be refitted in turn
    key = pickle.loads((run / train_mod.FEATURES_FILE).read_bytes())["key"]
    assert load_features(out, key, {})[1] == load_features(run, key, {})[1]

    config = json.loads((train_mod.CONFIG_DIR / "quick.json").read_text())
    # fewer photo-only copies and no more listings: a subset of the saved features, refitted on those alone
    (tmp_path / "fewer.json").write_text(json.dumps({**config, "photo_only_fraction": 0.1}))
    assert train_mod.main(["--config", str(tmp_path / "fewer.json"), "--data", str(small_dataset),
                           "--out", str(tmp_path / "fewer"), "--no-progress", "--features-from", str(run)]) == 0
    fewer = json.loads((tmp_path / "fewer" / "model" / "model.json").read_text())
    assert fewer["data"]["photo_only_copies"]["val"] < source["data"]["photo_only_copies"]["val"]
    assert fewer["metrics"]["val"]["n_listings"] == source["metrics"]["val"]["n_listings"] - (
        source["data"]["photo_only_copies"]["val"] - fewer["data"]["photo_only_copies"]["val"])
    for name, change in (("listings", {"photo_only_fraction": 0.5}), ("feature_config", {"features": {"ocr": True}})):
        (tmp_path / f"{name}.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(ValueError, match=name):
            train_mod.main(["--config", str(tmp_path / f"{name}.json"), "--data", str(small_dataset),
                            "--out", str(tmp_path / name), "--no-progress", "--features-from", str(run)])
    with pytest.raises(FileNotFoundError, match="saved no features"):
        load_features(tmp_path, {}, {})
    with pytest.raises(ValueError, match="give one"):
        train_mod.train(train_mod.get_train_config("quick"), small_dataset, out, embedder_from=trained,
                        features_from=run)


def test_a_policy_with_a_text_brand_threshold_is_tuned_by_training(trained, small_dataset, tmp_path):
    """Refitted from the same features with the ``default_text`` policy, training chooses both brand thresholds on
    validation, each bounded by its own brand-less listings, and the model's decisions name text-named candidates at
    the text threshold."""
    from detector.policy import get_policy
    from training.classifier import text_named_rows, unregistered_confidences

    run, out = trained.parent, tmp_path / "text"
    config = json.loads((train_mod.CONFIG_DIR / "quick.json").read_text())
    (tmp_path / "text.json").write_text(json.dumps({**config, "policy": "default_text"}))
    assert train_mod.main(["--config", str(tmp_path / "text.json"), "--data", str(small_dataset), "--out", str(out),
                           "--no-progress", "--features-from", str(run)]) == 0
    source, meta = (json.loads((d / "model.json").read_text()) for d in (trained, out / "model"))
    policy = load_model(out / "model").policy
    assert get_policy("default").text_brand_threshold is None and source["metrics"]["val"]["policy"][
        "text_brand_threshold"] is None
    assert 0.5 <= policy.text_brand_threshold <= 0.99
    report = meta["brand_threshold"]["text_brand_threshold"]
    assert report["threshold"] == policy.text_brand_threshold and report["attributed"] <= report["allowed"]
    # the image bound now counts only the unregistered-logo rows no text names, scored by the same brand model
    val = pickle.loads((run / train_mod.FEATURES_FILE).read_bytes())["labelled"]["val"]
    load_model(out / "model").classifier.set_brand_confidence(val.features)
    skip = text_named_rows(val, policy)
    image_rows = unregistered_confidences(val, skip=skip)
    assert meta["brand_threshold"]["n"] == len(image_rows) <= len(unregistered_confidences(val))
    assert int((image_rows >= policy.brand_threshold).sum()) == meta["brand_threshold"]["attributed"]
    assert meta["metrics"]["val"]["policy"]["text_brand_threshold"] == policy.text_brand_threshold


def test_a_cut_off_run_goes_on_from_the_features_it_saved(trained, small_dataset, tmp_path, monkeypatch):
    """A run saves each dataset's features as soon as they are computed; run again into the same folder, it reuses
    the ones computed for exactly its embedder, feature config, registry and listings, and featurizes the rest."""
    out = tmp_path / "cut"
    out.mkdir()
    shutil.copy(trained.parent / train_mod.FEATURES_FILE, out / train_mod.FEATURES_FILE)  # what the cut run left

    def no_featurizing(*args, **kwargs):
        raise AssertionError("featurized although the folder held this run's features")

    monkeypatch.setattr(train_mod, "_featurize", no_featurizing)
    argv = ["--config", "quick", "--data", str(small_dataset), "--out", str(out), "--no-progress",
            "--embedder-from", str(trained)]
    assert train_mod.main(argv) == 0
    source, resumed = json.loads((trained / "model.json").read_text()), json.loads((out / "model" / "model.json")
                                                                                    .read_text())
    assert resumed["metrics"] == source["metrics"]  # same embedder, same features: the same classifier inputs

    class Featurized(Exception):
        pass

    def featurize(*args, **kwargs):
        raise Featurized

    monkeypatch.setattr(train_mod, "_featurize", featurize)
    config = json.loads((train_mod.CONFIG_DIR / "quick.json").read_text())
    (tmp_path / "ocr.json").write_text(json.dumps({**config, "features": {**config.get("features", {}), "ocr": True}}))
    with pytest.raises(Featurized):  # saved for another feature config: featurized again, never reused
        train_mod.main(["--config", str(tmp_path / "ocr.json"), "--data", str(small_dataset), "--out", str(out),
                        "--no-progress", "--embedder-from", str(trained)])


def test_a_companion_marketplace_joins_training_and_validation(trained, small_dataset, tmp_path, monkeypatch):
    """--companion-data: another marketplace (here drawn by the scenes composer) is featurized against a registry of
    its own; its train and val listings join training and validation, thresholds are chosen over both, validation
    is also reported per marketplace, and its features are saved so a refit reuses them."""
    from training.data import DataConfig, generate_dataset

    other = generate_dataset(tmp_path / "sc16", DataConfig(n_brands=16, listings_per_brand=4, seed=0,
                                                           photo_style="scenes"), progress=False)
    out = tmp_path / "two"
    argv = ["--config", "quick", "--data", str(small_dataset), "--out", str(out), "--no-progress",
            "--companion-data", str(other)]
    assert train_mod.main([*argv, "--features-from", str(trained.parent)]) == 0  # only the companion is featurized
    meta = json.loads((out / "model" / "model.json").read_text())
    source = json.loads((trained / "model.json").read_text())
    theirs = load_dataset(other)
    [companion] = meta["data"]["companion_data"]
    assert companion["photo_style"] == "scenes"
    assert companion["split_hashes"] == {s: split_hash(theirs.listings_for(s)) for s in ("train", "val")}
    n_val = {str(small_dataset): source["metrics"]["val"]["n_listings"],
             str(other): len(theirs.listings_for("val")) + companion["photo_only_copies"]["val"]}
    by_dataset = meta["metrics"]["val_by_dataset"]
    assert {k: v["n_listings"] for k, v in by_dataset.items()} == n_val
    assert meta["metrics"]["val"]["n_listings"] == sum(n_val.values())
    authentic = {k: v["n_by_label"]["authentic"] for k, v in by_dataset.items()}
    assert all(authentic.values())  # the authentic-blocked cap holds over both marketplaces' listings together
    assert meta["metrics"]["val"]["authentic_blocked_rate"] * sum(authentic.values()) == pytest.approx(
        sum(by_dataset[k]["authentic_blocked_rate"] * authentic[k] for k in authentic))
    policy = json.loads((out / "model" / "policy.json").read_text())
    assert meta["metrics"]["val"]["authentic_blocked_rate"] <= policy["max_authentic_blocked"]
    saved = sorted(p.name for p in out.glob("features*.pkl"))
    assert len(saved) == 2 and train_mod.FEATURES_FILE in saved

    def featurize(*args, **kwargs):
        raise AssertionError("a refit featurized again")

    monkeypatch.setattr(train_mod, "_featurize", featurize)  # both marketplaces' features come from the run folder
    assert train_mod.main([*argv[:5], str(tmp_path / "again"), "--no-progress", "--companion-data", str(other),
                           "--features-from", str(out)]) == 0
    again = json.loads((tmp_path / "again" / "model" / "model.json").read_text())
    assert again["version"] == meta["version"] and again["metrics"] == meta["metrics"]


def test_saved_features_belong_to_the_dataset_they_were_computed_on(trained, small_dataset, tmp_path):
    """One seed drawn by another composer has the same listing rows and image paths: its manifest tells them apart,
    so features of one draw are never reused for the other."""
    import shutil

    copy = tmp_path / "redrawn"
    shutil.copytree(small_dataset, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["photo_style"] = "scenes"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="dataset"):
        train_mod.main(["--config", "quick", "--data", str(copy), "--out", str(tmp_path / "out"), "--no-progress",
                        "--features-from", str(trained.parent)])


def test_trunk_tail_reproduces_the_trunk_and_trains_its_blocks(embedder, tmp_path, monkeypatch):
    import torch
    from PIL import Image

    from detector.embedder import create_embedder
    from training import finetune as finetune_mod
    from training import render
    from training.finetune import FinetuneConfig, TrunkTail, finetune, trained_slugs

    photos = [render.compose_listing_photo(render.render_logo(render.get_icon(slug), 128), np.random.default_rng(0))
              for slug in ("nike", "adidas")]
    tail = TrunkTail(embedder, 1)
    cached = tail.cache_inputs(embedder, photos, False, "test")
    x = torch.stack([embedder.preprocess(p) for p in photos])
    with torch.inference_mode():
        full = embedder.model.visual.trunk.forward_features(x)
        np.testing.assert_allclose(tail(cached).numpy(), full.numpy(), atol=2e-2)  # cache is float16

    rendered: list[list[str]] = []  # the slugs of each brand set fine-tuning renders: training, then held-out

    def spy(icons, *args, **kwargs):
        rendered.append([i.slug for i in icons])
        return real_render(icons, *args, **kwargs)

    real_render = finetune_mod.render_brand_set
    monkeypatch.setattr(finetune_mod, "render_brand_set", spy)
    excluded = {i.slug for i in render.list_icons()[:400]}
    delta, report = finetune(FinetuneConfig(n_brands=12, photos_per_brand=1, epochs=1, batch_size=6, eval_brands=4,
                                            eval_photos_per_brand=1, unfreeze_blocks=1, hard_negatives=0.5,
                                            hard_group=3, scene_photos_per_brand=1, scenes=("label", "closeup"),
                                            made_up_marks=3),
                                out_dir=tmp_path, progress=False, exclude_slugs=excluded)
    assert report["n_train_photos"] == 30  # a mock-up and a scene photo per brand and per made-up mark
    # the brands it trained on, drawn again from its report (training.probe --unseen-by): the rendered brands
    # less the made-up marks, none excluded
    brands = {s for s in rendered[0] if not s.startswith("made-up-")}
    assert len(brands) == 12 and len(rendered[0]) == 15
    assert trained_slugs(tmp_path) == brands and not brands & excluded
    assert (report["n_train_brands"], report["n_made_up_marks"]) == (12, 3)
    block = "visual.trunk.blocks.blocks.5."
    trained_keys = [k for k in delta if k.startswith(block)]
    assert trained_keys and not any(k.startswith("visual.trunk.blocks.blocks.4.") for k in delta)
    packaged = embedder.model.state_dict()
    assert any(not torch.equal(delta[k], packaged[k]) for k in trained_keys if k.endswith("weight"))
    tuned = create_embedder("effnet-lite0-minilm", delta)
    assert tuned.embed_image_regions([Image.new("RGB", (64, 64), "white")]).shape == (1, len(tuned.boxes), tuned.dim)
    assert report["heldout_retrieval_after"]["n_brands"] == 4
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "finetune_weights.safetensors")  # kept as soon as fine-tuning ends
    assert saved.keys() == delta.keys() and torch.equal(saved[trained_keys[0]], delta[trained_keys[0]].half())
    assert json.loads((tmp_path / "finetune.json").read_text())["config"]["hard_negatives"] == 0.5


def test_hard_negative_batches_group_look_alike_brands():
    """Look-alike groups fill the asked share of each batch with an anchor and its nearest unused neighbours; every
    brand is used at most once an epoch, and without neighbours the batches are the uniform permutation."""
    import torch

    from training.finetune import FinetuneConfig, epoch_batches, nearest_brands

    rng = np.random.default_rng(0)
    # 12 clusters of 8 brands: members of a cluster point the same way, clusters are orthogonal
    vecs = torch.nn.functional.normalize(torch.eye(12).repeat_interleave(8, 0) + 0.05 * torch.randn(96, 12), dim=-1)
    neighbours = nearest_brands(vecs, 16)
    assert neighbours.shape == (96, 16) and not (neighbours == np.arange(96)[:, None]).any()
    assert all(set(neighbours[b, :7] // 8) == {b // 8} for b in range(96))  # the 7 nearest are its cluster

    batches = epoch_batches(96, 32, 3, rng, neighbours, hard_fraction=0.5, group=8)
    flat = np.concatenate(batches)
    assert [len(b) for b in batches] == [32, 32, 32] and len(set(flat.tolist())) == len(flat)
    # the first batch starts with two untouched clusters (an anchor and its 7 nearest), then 16 uniform draws
    first = batches[0]
    assert sorted(first[:8] // 8) == [first[0] // 8] * 8 and sorted(first[8:16] // 8) == [first[8] // 8] * 8

    uniform = epoch_batches(96, 32, 3, np.random.default_rng(5))
    np.testing.assert_array_equal(np.concatenate(uniform), np.random.default_rng(5).permutation(96))
    with pytest.raises(ValueError, match="need more than"):
        epoch_batches(96, 32, 4, rng, neighbours, hard_fraction=0.5)
    with pytest.raises(ValueError, match="hard_negatives"):
        FinetuneConfig(hard_negatives=1.5)
    with pytest.raises(ValueError, match="hard_group"):
        FinetuneConfig(hard_group=1)


def test_fine_tuning_photos_can_include_chosen_scenes_3d_objects_and_snapshots():
    """Scene photos are added per brand from the chosen scenes only, and leave the mock-up photos as they were."""
    from training import render, render3d, scenes, snapshots
    from training.finetune import FinetuneConfig, render_brand_set

    icons = [render.get_icon(slug) for slug in ("nike", "adidas", "github")]
    plain = render_brand_set(icons, 2, 0, progress=False)
    mixed = render_brand_set(icons, 2, 0, progress=False, scene_photos_per_brand=2, scene_names=("emboss",))
    assert len(plain.photos) == 6 and len(mixed.photos) == 12
    np.testing.assert_array_equal(mixed.photo_brand, np.repeat([0, 1, 2], 4))
    kept = [k for k in range(12) if k % 4 < 2]
    assert all(np.array_equal(np.asarray(a), np.asarray(mixed.photos[k])) for a, k in zip(plain.photos, kept))
    # the added photos are the emboss scene: with the same generator state, the composer draws them again
    rng = np.random.default_rng([0, 1])
    logo = render.render_logo(icons[0], 256)
    rng.integers(1)  # the scene choice among the one allowed
    again = scenes.compose_scene_photo(logo, rng, 320, scene="emboss")
    assert np.array_equal(np.asarray(again), np.asarray(mixed.photos[2]))
    # ray-cast photos come after a brand's scene photos, from a generator of their own: the others stay as they were
    three = render_brand_set(icons[:2], 2, 0, progress=False, scene_photos_per_brand=2, scene_names=("emboss",),
                             render3d_photos_per_brand=1)
    assert len(three.photos) == 10 and list(three.photo_brand) == [0] * 5 + [1] * 5
    assert all(np.array_equal(np.asarray(mixed.photos[k]), np.asarray(three.photos[k + k // 4])) for k in range(8))
    assert np.array_equal(np.asarray(three.photos[4]),
                          np.asarray(render3d.compose_3d_photo(logo, np.random.default_rng([0, 2]), 320)))
    # snapshots come last, from a generator of their own too
    four = render_brand_set(icons[:2], 2, 0, progress=False, scene_photos_per_brand=2, scene_names=("emboss",),
                            render3d_photos_per_brand=1, snapshot_photos_per_brand=2)
    assert len(four.photos) == 14 and list(four.photo_brand) == [0] * 7 + [1] * 7
    assert all(np.array_equal(np.asarray(three.photos[k]), np.asarray(four.photos[k + 2 * (k // 5)])) for k in range(10))
    snapshot_rng = np.random.default_rng([0, 3])
    for k in (5, 6):
        assert np.array_equal(np.asarray(four.photos[k]),
                              np.asarray(snapshots.compose_snapshot_photo(logo, snapshot_rng, 320)))
    assert FinetuneConfig(scenes=["label"]).scenes == ("label",)  # JSON lists are read as tuples
    with pytest.raises(ValueError, match="distinct names of label"):
        FinetuneConfig(scenes=("label", "mosaic"))
    with pytest.raises(ValueError, match="scene_photos_per_brand"):
        FinetuneConfig(scene_photos_per_brand=-1)
    with pytest.raises(ValueError, match="render3d_photos_per_brand"):
        FinetuneConfig(render3d_photos_per_brand=-1)
    with pytest.raises(ValueError, match="snapshot_photos_per_brand"):
        FinetuneConfig(snapshot_photos_per_brand=-1)
    with pytest.raises(ValueError, match="made_up_marks"):
        FinetuneConfig(made_up_marks=-1)
    with pytest.raises(ValueError, match="unknown scene"):
        scenes.compose_scene_photo(logo, np.random.default_rng(0), 64, scene="mosaic")


def test_a_classifier_fitted_before_a_feature_was_added_keeps_working(tmp_path):
    """The classifier predicts from the features it was fitted on (saved with it), so the shipped model keeps its
    scores when the featurizer gains a signal; one that needs a signal this code lacks is refused at load."""
    from sklearn.linear_model import LogisticRegression

    from detector.classifier import ClassifierVersionError, RiskClassifier
    from detector.features import CANDIDATE_FEATURES, RISK_FEATURES, Candidate

    rng = np.random.default_rng(0)
    older_candidate = tuple(n for n in CANDIDATE_FEATURES if n != "text_emb_sim")  # as if it were added since
    older_risk = tuple(n for n in RISK_FEATURES if n != "text_emb_sim")
    assert len(older_candidate) == len(CANDIDATE_FEATURES) - 1
    brand_model = LogisticRegression().fit(rng.normal(size=(40, len(older_candidate))), np.arange(40) % 2)
    risk_model = LogisticRegression().fit(rng.normal(size=(40, len(older_risk))), np.arange(40) % 2)
    RiskClassifier(brand_model, risk_model, older_candidate, older_risk).save(tmp_path)
    loaded = RiskClassifier.load(tmp_path)
    assert loaded.candidate_features == older_candidate and loaded.risk_features == older_risk

    def candidate(brand_id: int) -> Candidate:
        return Candidate(brand_id, {name: float(rng.normal()) for name in CANDIDATE_FEATURES})

    context = {name: 1.0 for name in RISK_FEATURES if name not in CANDIDATE_FEATURES and name != "brand_conf"}
    listings = [ListingFeatures(f"L{i}", [candidate(1), candidate(2)], dict(context)) for i in range(3)]
    loaded.set_brand_confidence(listings)
    rows = np.array([[c.features[n] for n in older_candidate] for lf in listings for c in lf.candidates])
    expected = brand_model.predict_proba(rows)[:, 1]
    assert [c.confidence for lf in listings for c in lf.candidates] == pytest.approx(expected.tolist(), abs=1e-6)
    best = [lf.best() for lf in listings]
    x = np.array([[b.confidence if n == "brand_conf" else b.features.get(n, context.get(n)) for n in older_risk]
                  for b in best])
    assert loaded.predict_risk(listings) == pytest.approx(risk_model.predict_proba(x)[:, 1].tolist(), abs=1e-6)

    meta = json.loads((tmp_path / "classifier.json").read_text())
    meta["risk_features"].append("seller_age_days")
    (tmp_path / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ClassifierVersionError, match="seller_age_days"):
        RiskClassifier.load(tmp_path)


def test_generic_probe_reports_the_named_brands_image_matches_of_an_evaluation(trained, evaluated, small_dataset,
                                                                              tmp_path):
    """``training.generic_probe`` reads an evaluation's saved features (the quick config turns ``plain_marks`` on)
    and groups each listing's best candidate with an image match: the listing's own mark named, a brand named (or
    only proposed) on logo-free goods, a brand named on an unregistered logo; every group agrees with the
    evaluation's predictions and features."""
    from training import generic_probe

    out = tmp_path / "probe"
    assert generic_probe.main(["--features", str(evaluated), "--model", str(trained), "--out", str(out)]) == 0
    result = json.loads((out / "generic_probe.json").read_text())
    preds = {p["listing_id"]: p for p in map(json.loads, (evaluated / "predictions.jsonl").read_text().splitlines())}
    kinds = {r["listing_id"]: r["meta"]["kind"] for r in load_dataset(small_dataset).listings_for("test")}
    with (evaluated / train_mod.FEATURES_FILE).open("rb") as f:
        saved = pickle.load(f)
    assert saved["key"]["feature_config"]["plain_marks"] is True
    features = {lf.listing_id: lf for lf in saved["labelled"]["test"].features}

    rows = {name: [] for name in generic_probe.GROUPS}
    for lid, p in preds.items():  # recount from the predictions and the saved features
        named = p["brand_id"] is not None
        cand = next((c for c in features[lid].candidates if c.brand_id == p["candidate_brand_id"]), None)
        if cand is None or not (cand.features["img_sim"] > 0 and cand.features["img_generic"] > 0):
            continue
        if kinds[lid] == "generic":
            rows["decoration" if named else "decoration_unnamed"].append((lid, cand))
        elif named and kinds[lid] == "unregistered_logo":
            rows["look_alike"].append((lid, cand))
        elif named and p["brand_id"] == p["true_brand_id"]:
            rows["mark"].append((lid, cand))
    assert rows["mark"], "the quick model names some held-out brands from their photos"
    for name, expected in rows.items():
        group = result["groups"][name]
        assert group["n"] == len(expected)
        if expected:
            diff = np.array([c.features["img_sim"] - c.features["img_generic"] for _, c in expected])
            assert group["median_difference"] == pytest.approx(np.median(diff), abs=1e-4)
            assert group["below_cutoff"]["0.05"] == pytest.approx(np.mean(diff < 0.05), abs=1e-4)
            assert all(0 < c.features["img_generic"] <= 1.0001 for _, c in expected)
    by_genericness = sorted(rows["decoration"], reverse=True,
                            key=lambda r: r[1].features["img_generic"] - r[1].features["img_sim"])
    assert [r["listing_id"] for r in result["decorations"]] == [lid for lid, _ in by_genericness]
    if rows["mark"] and rows["decoration"]:
        assert 0.0 <= result["auc_difference"] <= 1.0
