"""training.probe: brand-from-photo retrieval variants, checked against a direct computation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from training import probe as probe_mod
from training.data import load_dataset


def test_brand_scores_pool_over_a_brand_s_references():
    e = np.eye(4, dtype=np.float32)
    gallery = probe_mod.Gallery(vectors=e[[0, 1, 2]], brand=np.array([0, 0, 2]), slugs=["a", "b", "c"])
    regions = np.stack([e[0], 0.6 * e[1] + 0.8 * e[3]])[None]  # one photo, two regions
    np.testing.assert_allclose(probe_mod.brand_scores(regions, gallery, "max"), [1.0, -np.inf, 0.0])
    # mean over brand a's two references: region 0 scores (1 + 0) / 2, region 1 (0 + 0.6) / 2
    np.testing.assert_allclose(probe_mod.brand_scores(regions, gallery, "mean"), [0.5, -np.inf, 0.0])
    with pytest.raises(ValueError, match="pool"):
        probe_mod.brand_scores(regions, gallery, "median")


def test_probe_matches_a_direct_computation(default_bundle, small_dataset, tmp_path):
    out = tmp_path / "probe"
    assert probe_mod.main(["--data", str(small_dataset), "--split", "val", "--limit", "0", "--extra-sizes", "256",
                           "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "probe.json").read_text())
    assert result["model_sizes"] == [320, 416] and result["model_version"] == default_bundle.version
    variants = {("+".join(map(str, v["sizes"])), v["pool"]): v for v in result["variants"]}
    assert set(variants) == {(s, p) for s in ("320", "416", "256", "320+416", "320+416+256") for p in ("max", "mean")}
    model = variants[("320+416", "max")]
    assert model["model"] and sum(v["model"] for v in result["variants"]) == 1

    # The same number straight from the embedder: every registered brand's references, each logo listing's
    # regions at the model's sizes, best region x reference.
    dataset = load_dataset(small_dataset)
    embedder = default_bundle.embedder
    registered = [b["slug"] for b in dataset.brands if b["registered"]]
    refs = {s: embedder.embed_references([dataset.open_image(a["image"]) for a in dataset.assets
                                          if a["brand_slug"] == s and a["kind"] == "authentic"]) for s in registered}
    records = [r for r in dataset.listings_for("val") if r["images"] and r["meta"].get("logo_slug")]
    hits, n_unregistered = {}, 0
    for r in records:
        regions = embedder.embed_image_regions([dataset.open_image(p) for p in r["images"]])
        flat = regions.reshape(-1, regions.shape[-1])
        best = max(registered, key=lambda s: float((flat @ refs[s].T).max()) if len(refs[s]) else -np.inf)
        if r.get("brand_slug") in refs:
            hits[r["listing_id"]] = best == r["brand_slug"]
        else:
            n_unregistered += 1
    assert result["n_listings"] == len(records) > 0
    assert model["n_registered"] == len(hits) and model["n_unregistered"] == n_unregistered
    assert model["top1"] == pytest.approx(np.mean(list(hits.values())), abs=1e-4)
    # each registered brand's listing, named or not by the model variant (what training.probe_diff pairs)
    assert {row["listing_id"]: row["hit"] for row in result["listings"]} == hits
    assert {row["listing_id"]: row["brand_slug"] for row in result["listings"]} == {
        r["listing_id"]: r["brand_slug"] for r in records if r["listing_id"] in hits}
    assert model["top1"] <= model["top5"]
    assert result["by_scene"] == {}  # a mockup dataset


def test_probe_breaks_down_a_scenes_dataset_by_scene(default_bundle, tmp_path):
    """On photos drawn by training.scenes the probe reports top-1 per scene, each photo scored alone; a mockup
    dataset reports none."""
    from training.data import DataConfig, generate_dataset, photo_scenes

    config = DataConfig(n_brands=24, listings_per_brand=4, listings_per_unregistered_brand=1, seed=3,
                        photo_style="scenes", photo_size=224)
    dataset = load_dataset(generate_dataset(tmp_path / "scenes", config, progress=False))
    result = probe_mod.probe(default_bundle.embedder, dataset, "val", None, progress=False)
    embedder = default_bundle.embedder
    registered = [b["slug"] for b in dataset.brands if b["registered"]]
    refs = {s: embedder.embed_references([dataset.open_image(a["image"]) for a in dataset.assets
                                          if a["brand_slug"] == s and a["kind"] == "authentic"]) for s in registered}
    hits: dict[str, list[bool]] = {}
    for r in dataset.listings_for("val"):
        if not (r["images"] and r["meta"].get("logo_slug") and r.get("brand_slug") in refs):
            continue
        for path, scene in zip(r["images"], photo_scenes(r, config), strict=True):
            flat = embedder.embed_image_regions([dataset.open_image(path)])[0]
            best = max(registered, key=lambda s: float((flat @ refs[s].T).max()) if len(refs[s]) else -np.inf)
            hits.setdefault(scene, []).append(best == r["brand_slug"])
    assert hits and set(result["by_scene"]) == set(hits)
    for scene, h in hits.items():
        assert result["by_scene"][scene]["n_photos"] == len(h)
        assert result["by_scene"][scene]["top1"] == pytest.approx(np.mean(h), abs=1e-4)


def test_probe_weights_replace_the_model_s_own(default_bundle, small_dataset, tmp_path):
    """``--weights`` probes the model's embedder config with other fine-tuned weights: the model's own file gives
    the model's numbers, a different image projection gives different ones."""
    import torch
    from safetensors.torch import load_file, save_file

    from detector.bundle import resolve_model_path

    own = resolve_model_path("default") / "weights.safetensors"
    weights = load_file(own)
    rng = torch.Generator().manual_seed(0)
    weights["visual.head.proj.weight"] = torch.randn(weights["visual.head.proj.weight"].shape, generator=rng,
                                                     dtype=torch.float32).to(torch.float16)
    save_file(weights, str(tmp_path / "other.safetensors"))

    def run(*extra: str) -> dict:
        out = tmp_path / f"probe{len(list(tmp_path.iterdir()))}"
        assert probe_mod.main(["--data", str(small_dataset), "--limit", "12", "--out", str(out), "--no-progress",
                               *extra]) == 0
        return json.loads((out / "probe.json").read_text())

    plain, same, other = run(), run("--weights", str(own)), run("--weights", str(tmp_path / "other.safetensors"))
    assert same["weights"] == str(own) and plain["weights"] is None
    assert same["model_version"] == plain["model_version"] == default_bundle.version
    assert same["variants"] == plain["variants"]
    model = [v for v in other["variants"] if v["model"]][0]
    assert model["top1"] < [v for v in plain["variants"] if v["model"]][0]["top1"]


def test_title_probe_counts_each_kind_of_title():
    from training.title_probe import registry_names, title_probe

    brands = [{"slug": "twinmotion", "name": "Twinmotion", "aliases": [], "split": "val", "registered": True},
              {"slug": "sky", "name": "Sky", "aliases": [], "split": "val", "registered": True},
              {"slug": "kando", "name": "Kando", "aliases": [], "split": "val", "registered": False}]
    names = registry_names(brands, {"val"}, "split")
    assert names == {"twinmotion": ["Twinmotion"], "sky": ["Sky"]}
    records = [
        {"title": "Twinmotion Hoodie", "brand_slug": "twinmotion", "meta": {}},  # plain, right
        {"title": "Twinnmotion Tee - Sky Blue", "brand_slug": "twinmotion", "meta": {"obfuscation": "typo"}},
        {"title": "Sky Tee, Black", "brand_slug": "twinmotion", "meta": {}},  # plain, another brand named
        {"title": "Plain mug", "brand_slug": "twinmotion", "meta": {"obfuscation": "typo"}},  # disguised, none
        {"title": "Sky Cap", "brand_slug": None, "meta": {"kind": "generic"}},  # no brand, one named
        {"title": "Kando Cap", "brand_slug": None, "meta": {"kind": "unregistered_logo", "logo_slug": "kando"}},
    ]
    result = title_probe(records, names)
    assert result["rates"] == {"plain_top1": 0.5, "plain_other_brand": 0.5, "disguised_top1": 0.5,
                               "disguised_other_brand": 0.0, "unbranded_named": 0.5}
    assert result["errors"]["plain_wrong"] == [("twinmotion", "Sky Tee, Black", "sky")]
    assert [e[1] for e in result["errors"]["disguised_none"]] == ["Plain mug"]
    # with every brand registered, the unregistered logo's own name is no error
    assert "kando" in registry_names(brands, {"val"}, "all")
    assert title_probe(records[-1:], registry_names(brands, {"val"}, "all"))["rates"]["unbranded_named"] == 0.0


def test_title_probe_on_planned_seeds_pools_every_seed_and_renders_nothing(tmp_path, capsys, monkeypatch):
    from training.data import DataConfig, plan_listings
    from training.title_probe import main, registry_names, title_probe

    monkeypatch.chdir(tmp_path)
    assert main(["--fresh-seeds", "8-9", "--n-brands", "40", "--splits", "test", "--show", "0"]) == 0
    printed = capsys.readouterr().out
    assert "seeds 8-9" in printed and list(tmp_path.iterdir()) == []  # nothing written, no images rendered
    expected = 0
    for seed in (8, 9):
        brands, listings = plan_listings(DataConfig(n_brands=40, seed=seed))
        test = [r for r in listings if r["split"] == "test"]
        expected += title_probe(test, registry_names(brands, {"test"}, "split"))["counts"]["disguised_n"]
    assert expected > 0
    disguised_row = next(line for line in printed.splitlines() if "disguised" in line)
    assert f" {expected} " in disguised_row


def test_probe_tries_other_reference_settings(default_bundle, small_dataset, tmp_path):
    """``--references`` probes the model with other reference settings (here one more, reduced view of each
    reference): the top-1 it reports is the one the embedder gives with those settings, computed directly."""
    import dataclasses

    out = tmp_path / "probe"
    assert probe_mod.main(["--data", str(small_dataset), "--limit", "12", "--out", str(out), "--no-progress",
                           "--references", '{"low_res": [48]}']) == 0
    result = json.loads((out / "probe.json").read_text())
    assert result["references"].endswith("-rot10,-10-low48")
    model = [v for v in result["variants"] if v["model"]][0]

    dataset = load_dataset(small_dataset)
    embedder = default_bundle.embedder
    saved = embedder.config.references
    embedder.config.references = dataclasses.replace(saved, low_res=(48,))
    try:
        registered = [b["slug"] for b in dataset.brands if b["registered"]]
        refs = {s: embedder.embed_references([dataset.open_image(a["image"]) for a in dataset.assets
                                              if a["brand_slug"] == s and a["kind"] == "authentic"])
                for s in registered}
    finally:
        embedder.config.references = saved
    from training.evaluate import sample_records

    records = [r for r in dataset.listings_for("val") if r["images"] and r["meta"].get("logo_slug")]
    hits = []
    for r in sample_records(records, 12, 0):  # the listings the probe sampled
        if r.get("brand_slug") in refs:
            flat = embedder.embed_image_regions([dataset.open_image(p) for p in r["images"]])
            flat = flat.reshape(-1, flat.shape[-1])
            best = max(registered, key=lambda s: float((flat @ refs[s].T).max()) if len(refs[s]) else -np.inf)
            hits.append(best == r["brand_slug"])
    assert model["n_registered"] == len(hits) > 0
    assert model["top1"] == pytest.approx(np.mean(hits), abs=1e-4)

    with pytest.raises(SystemExit):  # a setting ReferenceConfig refuses is a usage error, not a traceback
        probe_mod.main(["--data", str(small_dataset), "--references", '{"low_res": [4]}', "--no-progress"])


def test_the_known_marks_bank_holds_no_held_out_brand_and_none_of_the_datasets(small_dataset):
    from training.render import list_icons
    from training.splits import is_heldout_brand

    dataset = load_dataset(small_dataset)
    slugs = probe_mod.known_mark_slugs(dataset)
    in_data = {b["slug"] for b in dataset.brands}
    every = {i.slug for i in list_icons()}
    assert set(slugs) == {s for s in every - in_data if not is_heldout_brand(s)}
    assert not any(is_heldout_brand(s) for s in slugs) and not set(slugs) & in_data
    sample = probe_mod.known_mark_slugs(dataset, limit=5, seed=1)
    assert len(sample) == 5 and set(sample) <= set(slugs) and sample == probe_mod.known_mark_slugs(dataset, 5, 1)


def test_known_marks_report_scores_hits_against_unregistered_logos():
    # hits score high but two of them also look like a known mark; look-alikes score high and look like known marks
    rows = [("hit", 0.9, 0.2), ("hit", 0.8, 0.3), ("hit", 0.7, 0.6), ("hit", 0.75, 0.1), ("miss", 0.5, 0.9),
            ("unregistered", 0.85, 0.8), ("unregistered", 0.6, 0.5), ("unregistered", 0.72, 0.7)]
    out = probe_mod._known_marks_report(rows, n_vectors=10)
    assert out["n_vectors"] == 10 and out["n_hits"] == 4 and out["n_unregistered"] == 3
    # by score: of the 12 hit/unregistered pairs the hit wins 8 (0.9 beats three, 0.8 and 0.75 two, 0.7 one)
    assert out["score"]["auc_hit_vs_unregistered"] == pytest.approx(8 / 12, abs=1e-4)
    # minus the known-mark cosine: hits 0.7, 0.5, 0.1, 0.65; unregistered 0.05, 0.1, 0.02: 11.5 of 12 (one tie)
    assert out["score_minus_known"]["auc_hit_vs_unregistered"] == pytest.approx(11.5 / 12, abs=1e-4)
    assert out["score"]["unregistered_above_p10"] == pytest.approx(2 / 3, abs=1e-4)  # p10 of hits: 0.715
    assert out["score_minus_known"]["unregistered_above_p10"] == 0.0  # p10 of hits: 0.22


def test_probe_reports_known_marks_from_the_command_line(default_bundle, small_dataset, tmp_path):
    out = tmp_path / "probe"
    assert probe_mod.main(["--data", str(small_dataset), "--split", "val", "--limit", "0", "--known-marks",
                           "--max-known-marks", "4", "--out", str(out), "--no-progress"]) == 0
    known = json.loads((out / "probe.json").read_text())["known_marks"]
    model = [v for v in json.loads((out / "probe.json").read_text())["variants"] if v["model"]][0]
    assert known["n_vectors"] == 4 * 2  # two reference variants per mark
    assert known["n_unregistered"] == model["n_unregistered"] > 0
    assert known["n_hits"] == round(model["top1"] * model["n_registered"]) > 0
    assert 0.0 <= known["score_minus_known"]["auc_hit_vs_unregistered"] <= 1.0


def test_probe_keeps_only_brands_the_runs_never_trained_on(default_bundle, small_dataset, tmp_path):
    """``--unseen-by RUN`` drops the listings of every brand RUN's fine-tuning trained on, drawn again from its
    finetune.json: a run that trained on every brand but two validation brands leaves just those two."""
    from training import render
    from training.finetune import FinetuneConfig
    from training.splits import is_heldout_brand

    dataset = load_dataset(small_dataset)
    records = [r for r in dataset.listings_for("val") if r["images"] and r["meta"].get("logo_slug")]
    kept = sorted({r["meta"]["logo_slug"] for r in records})[:2]
    run = tmp_path / "run"
    run.mkdir()
    n_trained = sum(not is_heldout_brand(i.slug) and i.slug not in kept for i in render.list_icons())
    (run / "finetune.json").write_text(json.dumps({
        "config": dataclasses.asdict(FinetuneConfig(n_brands=None)), "n_train_brands": n_trained,
        "excluded_slugs": kept}))
    out = tmp_path / "probe"
    assert probe_mod.main(["--data", str(small_dataset), "--split", "val", "--limit", "0", "--unseen-by", str(run),
                           "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "probe.json").read_text())
    assert result["unseen_by"] == [str(run)]
    assert result["n_listings"] == sum(r["meta"]["logo_slug"] in kept for r in records) > 0
    assert {row["brand_slug"] for row in result["listings"]} <= set(kept)

    # a run whose brands cannot be drawn again (it reports another count) is refused, as is a missing one
    (run / "finetune.json").write_text(json.dumps({
        "config": dataclasses.asdict(FinetuneConfig(n_brands=None)), "n_train_brands": n_trained + 1,
        "excluded_slugs": kept}))
    for bad in (run, tmp_path / "nowhere"):
        with pytest.raises(SystemExit):
            probe_mod.main(["--data", str(small_dataset), "--unseen-by", str(bad), "--no-progress"])


def test_probe_diff_pairs_the_listings_two_probes_share():
    from training.probe_diff import compare_probes, paired_difference

    # 100 listings: both arms name 60, only B names 10 more, only A 2: B - A = 0.08 from 12 discordant listings
    a = np.array([True] * 60 + [False] * 10 + [True] * 2 + [False] * 28)
    b = np.array([True] * 60 + [True] * 10 + [False] * 2 + [False] * 28)
    d = paired_difference(a, b, n_boot=4000, seed=0)
    assert (d["n"], d["top1_a"], d["top1_b"], d["only_a"], d["only_b"]) == (100, 0.62, 0.70, 2, 10)
    assert d["difference"] == pytest.approx(0.08)
    assert d["interval"][0] < 0.08 < d["interval"][1]
    assert d["mcnemar_p"] == pytest.approx(2 * sum(__import__("math").comb(12, k) for k in range(3)) / 2**12)
    # the same top-1s with more disagreement between the arms: a wider interval, a weaker test
    a2 = np.array([True] * 52 + [False] * 18 + [True] * 10 + [False] * 20)
    b2 = np.array([True] * 52 + [True] * 18 + [False] * 10 + [False] * 20)
    d2 = paired_difference(a2, b2, n_boot=4000, seed=0)
    assert (d2["top1_a"], d2["top1_b"]) == (0.62, 0.70)
    assert d2["interval"][1] - d2["interval"][0] > d["interval"][1] - d["interval"][0]
    assert d2["mcnemar_p"] > d["mcnemar_p"]
    assert paired_difference(a, a)["interval"] == [0.0, 0.0] and paired_difference(a, a)["mcnemar_p"] == 1.0
    # listings won or lost together by brand (10 brands of 10 listings): resampling brands widens the interval
    brands = [f"brand{k // 10}" for k in range(100)]
    by_brand = paired_difference(a, b, brands, n_boot=4000, seed=0)
    assert by_brand["n_groups"] == 10 and by_brand["difference"] == pytest.approx(0.08)
    assert by_brand["interval"][1] - by_brand["interval"][0] > d["interval"][1] - d["interval"][0]
    with pytest.raises(ValueError, match="groups"):
        paired_difference(a, b, brands[:50])

    def run(hits, brand=None):
        return {"listings": [{"listing_id": f"L{k}", "hit": bool(h), **({"brand_slug": brand[k]} if brand else {})}
                             for k, h in enumerate(hits)]}

    # listings are matched by id, whatever their order (which changes the bootstrap draws, not the counts)
    shuffled = run(b)
    shuffled["listings"].reverse()
    matched = compare_probes(run(a), shuffled, n_boot=4000)
    assert {k: v for k, v in matched.items() if k != "interval"} == {**{k: v for k, v in d.items() if k != "interval"},
                                                                     "resampled": "listings"}
    assert matched["interval"] == pytest.approx(d["interval"], abs=0.02)
    # probes that name each listing's brand are resampled by brand
    grouped = compare_probes(run(a, brands), run(b, brands), n_boot=4000)
    assert grouped["n_groups"] == 10 and grouped["resampled"] == "brands"
    assert grouped["interval"][1] - grouped["interval"][0] > d["interval"][1] - d["interval"][0]
    with pytest.raises(ValueError, match="different listings"):
        compare_probes(run(a), run(b[:99]))
    with pytest.raises(ValueError, match="without per-listing hits"):
        compare_probes({"variants": []}, run(b))


def test_probe_diff_pools_several_sets_drawing_a_brand_in_all_of_them():
    """The same listings drawn by two composers: pooled, the difference is over both sets' listings and the bootstrap
    draws each brand's listings of both sets together (10 brands, not 20), so the pooled interval is that of one
    set whose brands carry both sets' listings."""
    from training.probe_diff import compare_probe_pairs, compare_probes, paired_difference

    brands = [f"brand{k // 10}" for k in range(100)]

    def run(hits):
        return {"listings": [{"listing_id": f"L{k}", "hit": bool(h), "brand_slug": brands[k]}
                             for k, h in enumerate(hits)]}

    a1 = np.array([True] * 60 + [False] * 10 + [True] * 2 + [False] * 28)
    b1 = np.array([True] * 60 + [True] * 10 + [False] * 2 + [False] * 28)
    a2, b2 = np.roll(a1, 5), np.roll(a1, 5) | np.roll(b1, 37)
    pooled = compare_probe_pairs([(run(a1), run(b1)), (run(a2), run(b2))], n_boot=4000, seed=0)
    direct = np.concatenate([b1, b2]).astype(float) - np.concatenate([a1, a2])
    assert pooled["n"] == 200 and pooled["n_groups"] == 10
    assert pooled["difference"] == pytest.approx(direct.mean())
    assert (pooled["only_a"], pooled["only_b"]) == (int((direct < 0).sum()), int((direct > 0).sum()))
    ids = sorted(f"L{k}" for k in range(100))
    order = [int(i[1:]) for i in ids]
    again = paired_difference(np.concatenate([a1[order], a2[order]]), np.concatenate([b1[order], b2[order]]),
                              [brands[k] for k in order] * 2, n_boot=4000, seed=0)
    assert {**again, "resampled": "brands"} == pooled
    # one pair pooled is that pair
    assert compare_probe_pairs([(run(a1), run(b1))], n_boot=500) == compare_probes(run(a1), run(b1), n_boot=500)


def test_probe_diff_reads_two_probe_files_from_the_command_line(tmp_path, capsys):
    from training import probe_diff

    for name, hits in (("a", [True, False, False, True]), ("b", [True, True, True, True])):
        rows = [{"listing_id": f"L{k}", "hit": h} for k, h in enumerate(hits)]
        (tmp_path / f"{name}.json").write_text(json.dumps({"listings": rows}))
    assert probe_diff.main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--boot", "500"]) == 0
    out = capsys.readouterr().out
    assert "0.500" in out and "1.000" in out and "+0.500" in out  # top-1 A, top-1 B, B - A
    assert "resampled by listings" in out  # these rows name no brand
    # two pairs: each compared, then pooled (the same listing ids in both sets are resampled together)
    files = [str(tmp_path / n) for n in ("a.json", "b.json", "b.json", "a.json")]
    assert probe_diff.main(files + ["--boot", "500"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("pooled over 2 pairs: 8 listings, resampled by listings (4)")
    assert "+0.500" in lines[0] and "-0.500" in lines[1] and "+0.000" in lines[2]
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(SystemExit):
        probe_diff.main([str(tmp_path / "a.json"), str(tmp_path / "c.json")])
    with pytest.raises(SystemExit):  # an arm without its partner
        probe_diff.main([str(tmp_path / n) for n in ("a.json", "b.json", "a.json")])
