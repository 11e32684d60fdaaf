"""Scoring with the shipped default model on generated listings of held-out brands (registered after training)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageOps

from detector.features import best_over_views
from detector.listing import DECISIONS, Listing
from detector.policy import PolicyConfig, decide, get_policy, list_policies
from detector.scoring import Scorer
from indexes.catalog import AssetInput, Catalog
from training import render
from training.data import load_dataset
from training.pipeline import load_listing, register_brands
from training.splits import is_heldout_brand
from tests.helpers import with_query_subgrids


@pytest.fixture(scope="module")
def scored(default_bundle, small_dataset, tmp_path_factory):
    """Registry of the test split's brands (all held out) and the scores of every test listing."""
    dataset = load_dataset(small_dataset)
    catalog = Catalog.open(tmp_path_factory.mktemp("home"), default_bundle.embedder)
    slug_to_id = register_brands(catalog, dataset, ("test",), progress=False)
    scorer = Scorer(default_bundle, catalog)
    records = dataset.listings_for("test")
    results = []
    for start in range(0, len(records), 16):
        results += scorer.score_batch([load_listing(dataset, r) for r in records[start : start + 16]])
    return {"dataset": dataset, "catalog": catalog, "scorer": scorer, "records": records, "results": results,
            "slug_to_id": slug_to_id}


def test_test_split_brands_are_held_out(scored):
    assert scored["slug_to_id"], "the small dataset must register some test brands"
    assert all(is_heldout_brand(slug) for slug in scored["slug_to_id"])


def test_results_are_well_formed(scored, default_bundle):
    registered = set(scored["slug_to_id"].values())
    for rec, res in zip(scored["records"], scored["results"]):
        assert res.listing_id == rec["listing_id"]
        assert 0.0 <= res.risk <= 1.0 and res.decision in DECISIONS
        assert res.model_version == default_bundle.version
        assert res.index_version == scored["catalog"].index_version
        sims = [e.similarity for e in res.evidence]
        assert sims == sorted(sims, reverse=True)
        assert all(e.brand_id in registered and e.modality in ("image", "text") for e in res.evidence)
        assert all(e.image_index is None or 0 <= e.image_index < len(rec["images"]) for e in res.evidence)
        assert res.brand is None or res.brand.brand_id in registered
        for name in ("image_brand_similarity", "image_brand_similarity_photos", "known_fake_similarity",
                     "title_brand_score", "title_obfuscated", "ocr_text", "price_ratio", "authorized_seller",
                     "replica_terms"):
            assert name in res.signals


def test_risk_separates_counterfeits_on_held_out_brands(scored):
    y = np.array([r["label"] == "counterfeit" for r in scored["records"]])
    risk = np.array([res.risk for res in scored["results"]])
    assert 0 < y.sum() < len(y)
    # AUC as the probability that a counterfeit outranks a non-counterfeit (ties count half)
    pos, neg = risk[y], risk[~y]
    auc = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert auc > 0.85, auc


def test_brand_is_named_for_branded_listings_and_not_for_generic_ones(scored):
    ids = scored["slug_to_id"]
    named = [res.brand is not None and res.brand.brand_id == ids.get(rec["brand_slug"])
             for rec, res in zip(scored["records"], scored["results"]) if rec["brand_slug"] in ids]
    assert np.mean(named) > 0.8
    generic = [res.brand for rec, res in zip(scored["records"], scored["results"])
               if (rec.get("meta") or {}).get("kind") == "generic"]
    assert generic and sum(b is not None for b in generic) <= 0.1 * len(generic)


def test_authorised_seller_is_never_blocked(scored):
    dataset, scorer = scored["dataset"], scored["scorer"]
    rec = next(r for r, res in zip(scored["records"], scored["results"])
               if r["label"] == "counterfeit" and res.decision == "block")
    seller = dataset.brand(rec["brand_slug"])["authorized_sellers"][0]
    listing = dataclasses.replace(load_listing(dataset, rec), seller_id=seller)
    res = scorer.score(listing)
    assert res.signals["authorized_seller"] is True
    assert res.decision != "block"


def test_a_brand_named_in_the_listing_text_is_reported_at_the_text_threshold(scored, default_bundle):
    """With no image-named brand reportable (brand threshold 1.0) and every text-named one reportable (text brand
    threshold 0.0), the scorer reports exactly the candidates its own signals show named in the title, description
    or photo text; without a text threshold it reports none."""
    dataset, catalog = scored["dataset"], scored["catalog"]
    unbranded = [r for r in scored["records"] if r["label"] == "unbranded"][:12]  # mostly no brand in the text
    listings = [load_listing(dataset, r) for r in unbranded + [r for r in scored["records"] if r not in unbranded][:12]]
    policy = dataclasses.replace(default_bundle.policy, brand_threshold=1.0, text_brand_threshold=0.0)
    split = Scorer(dataclasses.replace(default_bundle, policy=policy), catalog).score_batch(listings)
    image_only = dataclasses.replace(policy, text_brand_threshold=None)
    plain = Scorer(dataclasses.replace(default_bundle, policy=image_only), catalog).score_batch(listings)
    texts = ("title_brand_score", "description_brand_score", "ocr_brand_score")
    in_text = [res.signals["candidate_brand_id"] is not None
               and max(res.signals[k] for k in texts) >= policy.text_named_score for res in split]
    assert 0 < sum(in_text) < len(in_text)
    assert [res.brand is not None for res in split] == in_text
    assert all(res.brand.brand_id == res.signals["candidate_brand_id"] for res in split if res.brand)
    assert all(res.brand is None for res in plain)


def test_policy_names_a_text_named_candidate_at_its_own_threshold():
    from detector.features import Candidate

    policy = PolicyConfig(name="t", brand_threshold=0.9, text_brand_threshold=0.5)
    image = Candidate(1, {"img_sim": 0.8, "title_score": 0.6}, 0.7)  # a title score under the 0.75 cut names nothing
    titled = Candidate(1, {"img_sim": 0.8, "title_score": 0.9}, 0.7)
    read = Candidate(1, {"ocr_score": 0.8}, 0.7)  # a name read in the photos is text too
    assert not policy.names(image) and policy.names(titled) and policy.names(read)
    assert not policy.names(Candidate(1, {"desc_score": 1.0}, 0.4)) and not policy.names(None)
    assert policy.threshold_for(image.features) == 0.9 and policy.threshold_for(titled.features) == 0.5
    same = dataclasses.replace(policy, text_brand_threshold=None)  # older policies: one threshold for all
    assert not same.names(titled) and same.names(Candidate(1, {"title_score": 1.0}, 0.95))
    assert PolicyConfig.from_dict({"name": "old", "brand_threshold": 0.8}).text_brand_threshold is None
    with pytest.raises(ValueError, match="text_brand_threshold"):
        PolicyConfig(name="bad", text_brand_threshold=1.5)


def test_known_fake_appears_then_vanishes_after_delete(scored):
    dataset, scorer, catalog = scored["dataset"], scored["scorer"], scored["catalog"]
    rec = next(r for r in scored["records"] if (r.get("meta") or {}).get("kind") == "reupload")
    fake_asset = next(a for a in dataset.assets if a["asset_id"] == rec["meta"]["reupload_of"])
    listing = load_listing(dataset, rec)
    before = scorer.score(listing)
    fake_ids = [e.asset_id for e in before.evidence if e.kind == "known_fake"]
    assert fake_ids, "a re-upload of a registered known fake must show it as evidence"
    deleted, version = catalog.delete_asset(fake_ids[0])
    assert deleted
    after = scorer.score(listing)
    assert after.index_version == version
    assert fake_ids[0] not in [e.asset_id for e in after.evidence]
    assert fake_asset["brand_slug"] == rec["brand_slug"]


def test_mirrored_reupload_is_told_apart_from_other_photos_of_the_same_product(default_bundle, tmp_path):
    """Three known fakes of one brand, same product: the re-upload (mirrored, cropped, captioned) of the first one
    must point at that very photo and stand out more than a fresh photo of the same product does."""
    icon = next(i for i in render.list_icons() if is_heldout_brand(i.slug))
    rng = np.random.default_rng(3)
    logo = render.render_logo(icon, 256)
    photos = [render.compose_listing_photo(logo, rng, 320) for _ in range(4)]
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        brand_id, _ = catalog.add_brand(icon.title)
        ids, _ = catalog.add_assets([AssetInput(brand_id, "known_fake", photo) for photo in photos[:3]])
        scorer = Scorer(default_bundle, catalog)
        reupload = render.make_reupload(ImageOps.mirror(photos[0]), rng, caption="Best Quality")
        copied = [e for e in scorer.score(Listing("copy", images=[reupload])).evidence if e.kind == "known_fake"]
        fresh = [e for e in scorer.score(Listing("fresh", images=[photos[3]])).evidence if e.kind == "known_fake"]
    assert [e.asset_id for e in copied] == [ids[0]]  # one item per brand: its most distinctive known fake
    assert copied[0].margin > 0 and copied[0].margin > max(e.margin for e in fresh)


def test_keypoint_verification_tells_a_reupload_from_a_fresh_photo_of_the_same_product(default_bundle, tmp_path):
    """With ``fake_verify_k`` the scorer matches keypoints of a photo's first known-fake hits: a mirrored, cropped,
    captioned re-upload keeps many of its known fake's keypoints in place, a fresh photo of the same product with
    the same mark few; the count is reported with the evidence, as a signal, and as a classifier feature."""
    icon = next(i for i in render.list_icons() if is_heldout_brand(i.slug))
    rng = np.random.default_rng(3)
    logo = render.render_logo(icon, 256)
    photos = [render.compose_listing_photo(logo, rng, 320) for _ in range(4)]
    verifying, unverified = (dataclasses.replace(default_bundle, feature_config=dataclasses.replace(
        default_bundle.feature_config, fake_verify_k=k)) for k in (3, 0))
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        brand_id, _ = catalog.add_brand(icon.title)
        ids, _ = catalog.add_assets([AssetInput(brand_id, "known_fake", photo) for photo in photos[:3]])
        scorer = Scorer(verifying, catalog)
        reupload = render.make_reupload(ImageOps.mirror(photos[0]), rng, caption="Best Quality")
        copy, fresh = scorer.score_batch([Listing("copy", images=[reupload]), Listing("fresh", images=[photos[3]])])
        plain = Scorer(unverified, catalog).score(Listing("copy", images=[reupload]))
        features = scorer.featurizer.featurize([Listing("copy", images=[reupload])])[0]
    copied = [e for e in copy.evidence if e.kind == "known_fake"]
    assert [e.asset_id for e in copied] == [ids[0]]
    assert copied[0].inliers >= 30, copied[0].inliers
    assert copy.signals["known_fake_inliers"] == copied[0].inliers
    assert fresh.signals["known_fake_inliers"] < copied[0].inliers / 3
    assert [e.inliers for e in plain.evidence if e.kind == "known_fake"] == [None]  # off when the model has k = 0
    assert plain.signals["known_fake_inliers"] == 0
    assert features.context["fake_inliers_any"] == copied[0].inliers
    assert features.best().features["fake_inliers"] == copied[0].inliers


def test_keypoint_verifier_finds_nothing_on_plain_images_and_caches_stored_photos():
    from detector.verify import KeypointVerifier

    verifier = KeypointVerifier(cache_size=1)
    rng = np.random.default_rng(8)
    photo = render.compose_listing_photo(render.render_logo(render.list_icons()[0], 256), rng, 320)
    blank = Image.new("RGB", (320, 320), (200, 200, 200))
    loads = []

    def load(ids):
        loads.append(list(ids))
        return {i: {1: photo, 2: blank}[i] for i in ids if i in (1, 2)}

    stored = verifier.stored_keypoints([1, 2, 3], load)
    assert sorted(stored) == [1, 2] and len(stored[2]) == 0  # unknown id absent; a plain image has no keypoints
    assert verifier.verify(blank, [stored[1]]) == [0] and verifier.verify(photo, [stored[2]]) == [0]
    assert verifier.verify(photo, [stored[1]])[0] >= 100  # the same photo: every matched keypoint agrees
    verifier.stored_keypoints([2], load)  # cache of one: 2 was the last stored, so no load
    verifier.stored_keypoints([1], load)
    assert loads == [[1, 2, 3], [1]]


def test_search_results_of_a_photos_views_merge_into_one_ranking():
    sims = np.array([[[0.9, 0.5, -np.inf], [0.7, 0.6, 0.2]],  # photo 0: id 3 from view 0, id 4 best in view 1
                     [[0.1, -np.inf, -np.inf], [-np.inf, -np.inf, -np.inf]]], dtype=np.float32)
    ids = np.array([[[3, 5, -1], [4, 3, 5]], [[7, -1, -1], [-1, -1, -1]]])
    merged_sims, merged_ids = best_over_views(sims, ids)
    np.testing.assert_array_equal(merged_ids, [[3, 4, 5], [7, -1, -1]])  # each id once, at its best, best first
    np.testing.assert_allclose(merged_sims, [[0.9, 0.7, 0.5], [0.1, -np.inf, -np.inf]])
    one_view = best_over_views(sims[:, :1], ids[:, :1])
    np.testing.assert_array_equal(one_view[1], ids[:, 0])
    np.testing.assert_array_equal(one_view[0], sims[:, 0])


def test_a_framed_reupload_is_met_by_a_subgrid_view(default_bundle, tmp_path):
    """With ``fingerprints.query_subgrids`` the scorer matches each photo's sub-grid views too: a known fake's photo
    re-uploaded inside a wide frame with a caption bar points at that photo, closer than the one whole-photo
    fingerprint does (the other known fakes' views come closer too, so its margin does not grow with it), and a fresh
    photo of the same product still stands out less."""
    icon = next(i for i in render.list_icons() if is_heldout_brand(i.slug))
    rng = np.random.default_rng(4)
    logo = render.render_logo(icon, 256)
    photos = [render.compose_listing_photo(logo, rng, 320) for _ in range(4)]
    framed = ImageOps.expand(photos[0], border=38, fill=(235, 235, 235))
    reupload = Image.new("RGB", (framed.width, framed.height + 50), (20, 20, 20))
    reupload.paste(framed, (0, 0))
    viewed = dataclasses.replace(default_bundle, embedder=with_query_subgrids(default_bundle.embedder, (0.9, 0.8)))
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        brand_id, _ = catalog.add_brand(icon.title)
        ids, _ = catalog.add_assets([AssetInput(brand_id, "known_fake", photo) for photo in photos[:3]])
        hits = {}
        for name, bundle in (("plain", default_bundle), ("viewed", viewed)):
            scorer = Scorer(bundle, catalog)
            for kind, photo in (("copy", reupload), ("fresh", photos[3])):
                hits[name, kind] = [e for e in scorer.score(Listing(kind, images=[photo])).evidence
                                    if e.kind == "known_fake"]
    copied, plain = hits["viewed", "copy"][0], hits["plain", "copy"][0]
    assert copied.asset_id == plain.asset_id == ids[0]
    assert copied.similarity > plain.similarity + 0.05
    assert copied.margin > max(e.margin for e in hits["viewed", "fresh"])


def test_a_brand_named_by_a_common_word_is_not_found_in_every_title_using_the_word(default_bundle, tmp_path):
    """Brand "Black" (a real simple-icons brand): "Men's Black Sneakers" with a plain photo names no brand; the same
    title spelling the name in disguise ("8lack", a digit for the B) is text evidence of Black."""
    rng = np.random.default_rng(5)
    photo = render.compose_listing_photo(None, rng, 320, product="sneaker")
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        icon = render.get_icon("black")
        brand_id, _ = catalog.add_brand(icon.title)
        catalog.add_assets([AssetInput(brand_id, "authentic", render.render_reference(icon, "light"))])
        scorer = Scorer(default_bundle, catalog)
        plain, disguised = scorer.score_batch([Listing("plain", title="Men's Black Sneakers", images=[photo]),
                                               Listing("disguised", title="Men's 8lack Sneakers", images=[photo])])
    assert plain.signals["title_brand_score"] == 0.0 and plain.brand is None
    assert not [e for e in plain.evidence if e.modality == "text"]
    assert disguised.signals["title_brand_score"] > 0.5 and disguised.signals["title_obfuscated"] is True
    assert [e.brand_id for e in disguised.evidence if e.modality == "text"] == [brand_id]


def test_brand_table_is_rebuilt_on_brand_changes_only(default_bundle, tmp_path):
    icon = render.get_icon("nike")
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        nike, _ = catalog.add_brand(icon.title)
        scorer = Scorer(default_bundle, catalog)
        matcher = scorer.featurizer.matcher
        catalog.add_assets([AssetInput(nike, "authentic", render.render_reference(icon, "light"))])
        result = scorer.score(Listing("after-asset", title="Nike running shoes"))
        assert result.index_version == catalog.index_version and scorer.featurizer.matcher is matcher
        adidas, _ = catalog.add_brand("Adidas")
        result = scorer.score(Listing("after-brand", title="Adidas running shoes"))
        assert scorer.featurizer.matcher is not matcher and set(scorer.featurizer.brands) == {nike, adidas}
        assert [e.brand_id for e in result.evidence if e.modality == "text"] == [adidas]


def test_policy_decisions():
    policy = PolicyConfig(name="t", review_threshold=0.4, block_threshold=0.9)
    assert decide(0.1, policy) == "allow"
    assert decide(0.5, policy) == "review"
    assert decide(0.95, policy) == "block"
    assert decide(0.95, policy, authorized_seller=True) == "review"
    assert decide(0.95, dataclasses.replace(policy, never_block_authorized=False), authorized_seller=True) == "block"
    with pytest.raises(ValueError):
        PolicyConfig(name="bad", review_threshold=0.9, block_threshold=0.5)
    assert "default" in list_policies()
    with pytest.raises(KeyError, match="default"):
        get_policy("no-such-policy")


def test_a_mark_in_every_photo_scores_higher_across_photos_than_one_photo_showing_it(default_bundle, tmp_path):
    """``img_sim_photos`` averages a brand's best region over the listing's photos: a listing whose two photos
    both show the mark scores higher than one whose second photo shows a plain product, with the same best region;
    with one photo it is the best region itself."""
    icon = next(i for i in render.list_icons() if is_heldout_brand(i.slug))
    rng = np.random.default_rng(11)
    logo = render.render_logo(icon, 256)
    marked = render.compose_listing_photo(logo, rng, 320)
    marked_again = render.compose_listing_photo(logo, rng, 320)
    plain = render.compose_listing_photo(None, rng, 320, product="sneaker")
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        brand_id, _ = catalog.add_brand(icon.title)
        catalog.add_assets([AssetInput(brand_id, "authentic", render.render_reference(icon, v))
                            for v in ("light", "dark")])
        featurizer = Scorer(default_bundle, catalog).featurizer
        both, one, single = featurizer.featurize([Listing("both", images=[marked, marked_again]),
                                                  Listing("one", images=[marked, plain]),
                                                  Listing("single", images=[marked])])
    feats = {lf.listing_id: next(c.features for c in lf.candidates if c.brand_id == brand_id)
             for lf in (both, one, single)}
    assert feats["one"]["img_sim"] == pytest.approx(feats["single"]["img_sim"], abs=1e-5)
    assert feats["single"]["img_sim_photos"] == pytest.approx(feats["single"]["img_sim"], abs=1e-5)
    assert feats["one"]["img_sim_photos"] < feats["one"]["img_sim"]
    assert feats["both"]["img_sim_photos"] > feats["one"]["img_sim_photos"]


def _ring(size: int, colour: tuple[int, int, int, int] = (200, 30, 30, 255)) -> Image.Image:
    """A plain ring as an RGBA logo (drawn here, not taken from detector.plain_marks)."""
    from PIL import ImageDraw

    ring = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(ring).ellipse((size * .15, size * .15, size * .85, size * .85), outline=colour,
                                 width=size // 9)
    return ring


def test_a_plain_ring_matched_to_a_ring_brand_is_reported_generic_and_a_real_logo_is_not(default_bundle, tmp_path):
    """With ``plain_marks`` each authentic image match carries its region's cosine to the nearest plain geometric
    mark (``Match.generic``, the ``img_generic`` feature, the evidence item's ``generic``): a ring printed on a
    product, matched to a brand whose mark is a ring, is much more generic than a real brand's logo matched to its
    own reference; off, nothing is reported and the feature is 0."""
    from detector.plain_marks import draw_plain_marks, plain_mark_bank, plain_mark_similarity

    icon = next(i for i in render.list_icons() if is_heldout_brand(i.slug))
    rng = np.random.default_rng(5)
    logo_photo = render.compose_listing_photo(render.render_logo(icon, 256), rng, 320)
    ring_photo = render.compose_listing_photo(_ring(256), rng, 320, product="mug")
    on, off = (dataclasses.replace(default_bundle, feature_config=dataclasses.replace(
        default_bundle.feature_config, plain_marks=flag)) for flag in (True, False))
    with Catalog.open(tmp_path / "home", default_bundle.embedder) as catalog:
        logo_brand, _ = catalog.add_brand(icon.title)
        ring_brand, _ = catalog.add_brand("Ringo Labs")
        catalog.add_assets([AssetInput(logo_brand, "authentic", render.render_reference(icon, v))
                            for v in ("light", "dark")])
        reference = Image.new("RGB", (256, 256), (255, 255, 255))
        reference.paste(_ring(256, (20, 20, 20, 255)), mask=_ring(256))
        catalog.add_assets([AssetInput(ring_brand, "authentic", reference)])
        listings = [Listing("logo", images=[logo_photo]), Listing("ring", images=[ring_photo])]
        scorer = Scorer(on, catalog)
        logo_lf, ring_lf = scorer.featurizer.featurize(listings)
        scored = scorer.score_batch(listings)
        plain_lf = Scorer(off, catalog).featurizer.featurize(listings)[0]

    def match(lf, brand):
        return next(m for m in lf.evidence if m.kind == "authentic" and m.brand_id == brand)

    logo_match, ring_match = match(logo_lf, logo_brand), match(ring_lf, ring_brand)
    assert ring_match.generic > logo_match.generic + 0.15, (ring_match.generic, logo_match.generic)
    for lf, m in ((logo_lf, logo_match), (ring_lf, ring_match)):
        assert next(c for c in lf.candidates if c.brand_id == m.brand_id).features["img_generic"] == m.generic
    reported = next(e for e in scored[1].evidence if e.kind == "authentic" and e.brand_id == ring_brand)
    assert reported.generic == pytest.approx(ring_match.generic, abs=1e-4)
    assert match(plain_lf, logo_brand).generic is None
    assert all(c.features["img_generic"] == 0.0 for c in plain_lf.candidates)
    bank = plain_mark_bank(default_bundle.embedder)
    assert bank.shape == (len(draw_plain_marks()), default_bundle.embedder.dim)
    assert np.allclose(plain_mark_similarity(bank[:3], bank), 1.0, atol=1e-5)


def test_the_plain_mark_bank_is_embedded_once_per_embedder(embedder, tmp_path, monkeypatch):
    """The bank is kept in memory and in a cache file named by the embedder's model id and config; a later process
    (memory cleared) reads the file, and a file of the wrong shape or unreadable bytes is embedded again."""
    from detector import plain_marks

    n, calls = len(plain_marks.draw_plain_marks()), []

    def embed_references(images):
        calls.append(len(images))
        v = np.random.default_rng(len(calls)).normal(size=(len(images), embedder.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(embedder, "embed_references", embed_references)
    monkeypatch.setattr(plain_marks, "_BANKS", {})
    first = plain_marks.plain_mark_bank(embedder, tmp_path)
    assert calls == [n] and first.shape == (n, embedder.dim) and not first.flags.writeable
    assert plain_marks.plain_mark_bank(embedder, tmp_path) is first and calls == [n]
    [file] = tmp_path.glob("*.npy")
    assert file.name.startswith(embedder.model_id + "_")
    plain_marks._BANKS.clear()  # another process: the file is read, nothing is embedded
    np.testing.assert_array_equal(plain_marks.plain_mark_bank(embedder, tmp_path), first)
    assert calls == [n]
    for broken in (lambda: np.save(file, first[:5]), lambda: file.write_bytes(b"not an array")):
        broken()
        plain_marks._BANKS.clear()
        again = plain_marks.plain_mark_bank(embedder, tmp_path)
        assert again.shape == (n, embedder.dim) and not np.array_equal(again, first)
        assert np.load(file).shape == (n, embedder.dim)  # the cache file is whole again
        first = again
    assert calls == [n, n, n]
