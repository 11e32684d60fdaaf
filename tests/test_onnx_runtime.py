"""ONNX Runtime image tower: export matches torch on real photos, sidecars are checked, exports are cached."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

from detector.embedder import Embedder, create_embedder
from detector.onnx_runtime import (
    OnnxImageTower,
    config_fingerprint,
    export_image_tower,
    export_image_tower_cached,
    extra_size_path,
    read_sidecar,
    sidecar_path,
)
from tests.helpers import with_query_subgrids
from training.render import compose_listing_photo, get_icon, render_logo

SAMPLE_IMAGES = Path(sklearn.datasets.__file__).parent / "images"
TOLERANCE = 2e-3  # max abs difference per embedding component (fp32 torch vs fp32 ONNX Runtime kernels)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Two real photos (sklearn samples) and a rendered listing photo with a real logo."""
    logo_photo = compose_listing_photo(render_logo(get_icon("adidas"), 160), np.random.default_rng(3), product="tshirt")
    return [Image.open(SAMPLE_IMAGES / "china.jpg"), Image.open(SAMPLE_IMAGES / "flower.jpg"), logo_photo]


@pytest.fixture(scope="module")
def exported(embedder, tmp_path_factory) -> Path:
    """The default embedder's image tower, exported once for this module: main size, and 416 px beside it."""
    path = export_image_tower(embedder, tmp_path_factory.mktemp("onnx") / "tower.onnx")
    export_image_tower(embedder, extra_size_path(path, 416), size=416)
    return path


def _main_regions(embedder: Embedder) -> int:
    return len(embedder.boxes_by_size[embedder.config.preprocess.image_size])


def _onnx_twin(embedder: Embedder, path: Path) -> Embedder:
    """An embedder sharing the session fixture's model but running its image tower with ONNX Runtime."""
    twin = Embedder(embedder.model, embedder.preprocess, embedder.tokenizer, embedder.config, version=embedder.version)
    twin.use_onnx(path)
    return twin


def test_sidecar_describes_the_export(embedder, exported):
    meta = read_sidecar(exported)
    assert meta["model_id"] == embedder.model_id == "effnet-lite0-minilm@base"
    assert (meta["image_size"], meta["regions"], meta["dim"]) == (320, _main_regions(embedder), 512)
    extra = read_sidecar(extra_size_path(exported, 416))
    assert (extra["image_size"], extra["regions"]) == (416, len(embedder.boxes) - _main_regions(embedder))
    assert extra["model_id"] == meta["model_id"] and extra["config_fingerprint"] == meta["config_fingerprint"]
    assert meta["opset"] == 17 and meta["library_versions"]["torch"].startswith("2.14")
    assert "onnxruntime" in meta["library_versions"]


@pytest.mark.parametrize("n_photos", [1, 3])
def test_onnx_regions_match_torch(embedder, exported, photos, n_photos):
    batch = photos[-n_photos:]  # batch of 1 is the logo photo
    reference = embedder.embed_image_regions(batch)
    twin = _onnx_twin(embedder, exported)
    got = twin.embed_image_regions(batch)
    assert got.shape == reference.shape == (n_photos, len(embedder.boxes), 512)
    assert np.abs(got - reference).max() < TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)
    whole = twin.embed_images(batch)
    assert np.abs(whole - embedder.embed_images(batch)).max() < TOLERANCE
    np.testing.assert_array_equal(whole, got[:, 0])  # whole-photo vector is region 0, as with torch
    main = twin.embed_image_regions(batch, main_size_only=True)  # fingerprints: the main size's tower alone
    np.testing.assert_array_equal(main, got[:, : _main_regions(embedder)])


def test_onnx_tower_also_pools_fingerprint_views(embedder, photos, tmp_path):
    viewed = with_query_subgrids(embedder, (0.9,))
    path = export_image_tower(viewed, tmp_path / "viewed.onnx")
    export_image_tower(viewed, extra_size_path(path, 416), size=416)
    assert read_sidecar(path)["regions"] == _main_regions(embedder) + 4 * 5
    assert read_sidecar(extra_size_path(path, 416))["regions"] == len(embedder.boxes) - _main_regions(embedder)
    twin = with_query_subgrids(embedder, (0.9,))
    twin.use_onnx(path)
    regions, fingerprints = twin.embed_query_regions(photos)
    reference_regions, reference = viewed.embed_query_regions(photos)
    assert fingerprints.shape == reference.shape == (3, 5, embedder.fingerprint_dim)
    assert np.abs(regions - reference_regions).max() < TOLERANCE and np.abs(fingerprints - reference).max() < TOLERANCE
    np.testing.assert_array_equal(twin.embed_image_regions(photos), regions)  # the views stay out of regions
    with pytest.raises(ValueError, match="does not match embedder"):
        _onnx_twin(embedder, path)  # a tower without views is another export


def test_onnx_needs_every_input_size(embedder, exported, tmp_path):
    lone = tmp_path / "tower.onnx"  # the main size's tower without the 416-px one beside it
    shutil.copy(exported, lone)
    shutil.copy(sidecar_path(exported), sidecar_path(lone))
    with pytest.raises(FileNotFoundError):
        _onnx_twin(embedder, lone)
    swapped = tmp_path / "swapped.onnx"  # the 416-px tower where the main one belongs
    shutil.copy(extra_size_path(exported, 416), swapped)
    shutil.copy(sidecar_path(extra_size_path(exported, 416)), sidecar_path(swapped))
    shutil.copy(exported, extra_size_path(swapped, 416))
    shutil.copy(sidecar_path(exported), sidecar_path(extra_size_path(swapped, 416)))
    with pytest.raises(ValueError, match="does not match embedder"):
        _onnx_twin(embedder, swapped)


def test_tower_refuses_wrong_input_size(embedder, exported):
    tower = OnnxImageTower(exported, embedder.model_id, num_threads=1)
    assert tower(np.zeros((2, 3, 320, 320), np.float32)).shape == (2, _main_regions(embedder), 512)
    with pytest.raises(ValueError, match="expected a batch of shape"):
        tower(np.zeros((1, 3, 224, 224), np.float32))
    with pytest.raises(ValueError, match="not one of its input sizes"):
        export_image_tower(embedder, exported.with_name("other.onnx"), size=224)


def test_sidecar_mismatch_is_refused(embedder, exported, tmp_path):
    with pytest.raises(ValueError, match="was exported from embedder"):
        OnnxImageTower(exported, "effnet-lite0-minilm@0123456789ab")

    other = tmp_path / "other.onnx"
    shutil.copy(exported, other)
    meta = read_sidecar(exported)
    sidecar_path(other).write_text(json.dumps({**meta, "model_id": "effnet-lite0-minilm@0123456789ab"}))
    with pytest.raises(ValueError, match="was exported from embedder"):
        _onnx_twin(embedder, other)

    sidecar_path(other).write_text(json.dumps({**meta, "image_size": 224}))  # same model id, other shapes
    with pytest.raises(ValueError, match="does not match embedder"):
        _onnx_twin(embedder, other)

    sidecar_path(other).write_text(json.dumps(meta))
    with other.open("ab") as f:  # bytes changed after export
        f.write(b"\0")
    with pytest.raises(ValueError, match="does not match its sidecar"):
        _onnx_twin(embedder, other)

    sidecar_path(other).unlink()
    with pytest.raises(FileNotFoundError, match="no sidecar"):
        _onnx_twin(embedder, other)


def test_create_embedder_reuses_the_cached_export(embedder, photos, tmp_path):
    first = create_embedder(runtime="onnx", onnx_cache_dir=tmp_path)
    path = first.image_runtime.path
    assert path.parent == tmp_path and read_sidecar(path)["model_id"] == first.model_id
    stamp = (path.stat().st_mtime_ns, sidecar_path(path).stat().st_mtime_ns)
    second = create_embedder(runtime="onnx", onnx_cache_dir=tmp_path)
    assert second.image_runtime.path == path
    assert (path.stat().st_mtime_ns, sidecar_path(path).stat().st_mtime_ns) == stamp  # not exported again
    stem = f"effnet-lite0-minilm@base_{config_fingerprint(first)}"  # main size, and 416 px beside it
    names = {f"{stem}.onnx", f"{stem}.json", f"{stem}-416.onnx", f"{stem}-416.json"}
    assert {p.name for p in tmp_path.iterdir()} == names
    got = second.embed_image_regions(photos[:1])
    assert np.abs(got - embedder.embed_image_regions(photos[:1])).max() < TOLERANCE

    stale = read_sidecar(path)  # a cached file left by another embedder under this name is exported again
    sidecar_path(path).write_text(json.dumps({**stale, "model_id": "effnet-lite0-minilm@0123456789ab"}))
    assert export_image_tower_cached(second, tmp_path) == path
    assert read_sidecar(path)["model_id"] == second.model_id
    assert path.stat().st_mtime_ns > stamp[0]

    # Another config of the same model (query-side fingerprint views) gets its own files and leaves these alone.
    viewed = export_image_tower_cached(with_query_subgrids(second, (0.9,)), tmp_path)
    assert viewed != path and read_sidecar(viewed)["regions"] == read_sidecar(path)["regions"] + 4 * 5
    assert export_image_tower_cached(second, tmp_path) == path and len(list(tmp_path.iterdir())) == 2 * len(names)


def test_torch_stays_the_default_and_unknown_runtime_is_refused(embedder):
    assert embedder.image_runtime is None
    with pytest.raises(ValueError, match="known: torch, onnx"):
        create_embedder(runtime="tensorrt")


def test_reference_views_at_other_sizes_use_the_torch_tower(embedder, exported):
    # A reference view at an input side the export does not have (ReferenceConfig.sizes) is embedded by the torch
    # tower, so an ONNX-served model registers references as the torch one does instead of failing.
    import dataclasses

    logo = render_logo(get_icon("adidas"), 200).convert("RGB")
    twin = _onnx_twin(embedder, exported)
    twin.config = dataclasses.replace(embedder.config, references=dataclasses.replace(
        embedder.config.references, sizes=(160,)))
    got = twin.embed_references([logo])
    saved = embedder.config
    embedder.config = twin.config
    try:
        expected = embedder.embed_references([logo])
    finally:
        embedder.config = saved
    assert np.abs(got - expected).max() < TOLERANCE

