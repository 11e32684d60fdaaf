"""VectorIndex: add/remove/search/save/load for the exact and the IVF factories."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from indexes.index import PAD_ID, VectorIndex, hash_ids, write_atomic

DIM = 16
IVF_FACTORY = "IVF8,Flat"  # 8 lists * 39 points per list = 312 vectors before it trains


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=["IDMap2,Flat", IVF_FACTORY])
def factory(request: pytest.FixtureRequest) -> str:
    return request.param


def test_add_search_finds_each_vector_itself(factory: str) -> None:
    x = unit_vectors(400)
    ids = np.arange(1000, 1400, dtype=np.int64)
    index = VectorIndex.build(DIM, ids, x, factory, nprobe=8)
    assert index.ntotal == 400
    assert not index.exact_fallback
    sims, found = index.search(x[:20], k=3)
    assert sims.shape == found.shape == (20, 3)
    np.testing.assert_array_equal(found[:, 0], ids[:20])
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all(), "results must be sorted best first"
    np.testing.assert_array_equal(index.ids(), ids)


def test_remove_drops_ids_from_results(factory: str) -> None:
    x = unit_vectors(400, seed=1)
    ids = np.arange(400, dtype=np.int64) * 3 + 7
    index = VectorIndex.build(DIM, ids, x, factory, nprobe=8)
    gone = ids[[0, 5, 9]]
    assert index.remove(np.concatenate([gone, [999_999]])) == 3  # unknown ids are ignored
    assert index.ntotal == 397
    assert not set(gone) & set(index.ids().tolist())
    _, found = index.search(x[[0, 5, 9]], k=5)
    assert not np.isin(found, gone).any()
    _, found = index.search(x[[1, 2]], k=1)
    np.testing.assert_array_equal(found[:, 0], ids[[1, 2]])
    assert index.remove(gone) == 0


def test_padding_is_masked_when_k_exceeds_ntotal(factory: str) -> None:
    index = VectorIndex(DIM, factory)
    sims, found = index.search(unit_vectors(2), k=4)
    assert (found == PAD_ID).all() and np.isneginf(sims).all()
    index.add(np.array([5, 6]), unit_vectors(2, seed=3))
    sims, found = index.search(unit_vectors(1, seed=3), k=4)
    assert sorted(found[0, :2].tolist()) == [5, 6]
    assert (found[0, 2:] == PAD_ID).all() and np.isneginf(sims[0, 2:]).all()
    assert np.isfinite(sims[0, :2]).all()


def test_save_load_round_trip(tmp_path, factory: str) -> None:
    x = unit_vectors(400, seed=2)
    ids = np.arange(10, 410, dtype=np.int64)
    index = VectorIndex.build(DIM, ids, x, factory, nprobe=8)
    index.remove(ids[:4])
    path = tmp_path / "sub" / "a.faiss"
    sha = index.save(path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not [p for p in path.parent.iterdir() if p.name != "a.faiss"], "temporary file left behind"
    loaded = VectorIndex.load(path, factory, nprobe=8)
    assert loaded.file_sha256 == sha
    assert loaded.exact_fallback == index.exact_fallback
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    s1, i1 = index.search(x[4:30], k=5)
    s2, i2 = loaded.search(x[4:30], k=5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    loaded.add(np.array([5000]), x[:1])  # still writable after load
    assert 5000 in loaded and loaded.ntotal == index.ntotal + 1


def test_ivf_falls_back_to_exact_until_enough_vectors_then_trains() -> None:
    x = unit_vectors(400, seed=4)
    index = VectorIndex(DIM, IVF_FACTORY, nprobe=8)
    assert index.train_threshold == 8 * 39
    index.add(np.arange(100), x[:100])
    assert index.exact_fallback and index.effective_factory == "IDMap2,Flat"
    assert "untrained" in index.describe()["note"]
    _, found = index.search(x[:3], k=1)
    np.testing.assert_array_equal(found[:, 0], [0, 1, 2])
    index.add(np.arange(100, 400), x[100:])  # crosses the threshold: trains on old + new vectors
    assert not index.exact_fallback and index.effective_factory == IVF_FACTORY
    assert index.describe()["note"] == ""
    np.testing.assert_array_equal(index.ids(), np.arange(400))
    _, found = index.search(x[[0, 150, 399]], k=1)
    np.testing.assert_array_equal(found[:, 0], [0, 150, 399])


def test_untrained_fallback_survives_save_load(tmp_path) -> None:
    index = VectorIndex.build(DIM, np.arange(20), unit_vectors(20), IVF_FACTORY)
    assert index.exact_fallback
    index.save(tmp_path / "x.faiss")
    loaded = VectorIndex.load(tmp_path / "x.faiss", IVF_FACTORY)
    assert loaded.exact_fallback and loaded.ntotal == 20
    trained = VectorIndex.build(DIM, np.arange(400), unit_vectors(400), IVF_FACTORY)
    trained.save(tmp_path / "ivf.faiss")
    with pytest.raises(ValueError, match="expected"):
        VectorIndex.load(tmp_path / "ivf.faiss", "IDMap2,Flat")  # an IVF file is not what "IDMap2,Flat" promised


def test_clone_is_independent(factory: str) -> None:
    index = VectorIndex.build(DIM, np.arange(400), unit_vectors(400), factory)
    twin = index.clone()
    twin.remove(np.arange(10))
    twin.add(np.array([10_000]), unit_vectors(1, seed=9))
    assert index.ntotal == 400 and 0 in index and 10_000 not in index
    assert twin.ntotal == 391 and 0 not in twin and 10_000 in twin


def test_rejects_bad_input() -> None:
    index = VectorIndex(DIM)
    index.add(np.array([1]), unit_vectors(1))
    with pytest.raises(ValueError, match="already"):
        index.add(np.array([1]), unit_vectors(1))
    with pytest.raises(ValueError, match="duplicate"):
        index.add(np.array([2, 2]), unit_vectors(2))
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([3]), np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(np.array([-5]), unit_vectors(1))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([4]), np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(ValueError, match="k must be"):
        index.search(unit_vectors(1), k=0)


@pytest.mark.parametrize(
    "factory, message",
    [
        ("HNSW16", "neither"),
        ("IDMap2,HNSW16", "removing"),
        ("IDMap2,IVF8,Flat", "own ids"),
        ("not-a-factory", "invalid FAISS factory"),
    ],
)
def test_rejects_unusable_factories(factory: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VectorIndex(DIM, factory)


def test_load_rejects_garbage(tmp_path) -> None:
    path = tmp_path / "junk.faiss"
    path.write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="not a readable FAISS index"):
        VectorIndex.load(path)


def test_write_atomic_keeps_old_content_when_writer_fails(tmp_path) -> None:
    path = tmp_path / "f.bin"
    write_atomic(path, lambda fh: fh.write(b"old"))

    def failing(fh) -> None:
        fh.write(b"half-written")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_hash_ids_ignores_order() -> None:
    assert hash_ids(np.array([3, 1, 2])) == hash_ids(np.array([1, 2, 3]))
    assert hash_ids(np.array([1, 2])) != hash_ids(np.array([1, 2, 3]))
