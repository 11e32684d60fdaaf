"""A FAISS index keyed by registry row ids, built from a factory string, saved atomically.

Two families of factory strings are supported (inner-product metric always; vectors are L2-normalised upstream):

* ``"IDMap2,<index>"`` (default ``"IDMap2,Flat"``): ids live in ``IndexIDMap2.id_map``; the inner index must
  support ``remove_ids`` (Flat, SQ, PQ do; HNSW does not and is refused).
* ``"IVF<nlist>,<codec>"`` optionally behind a pre-transform (``"PCA64,IVF64,Flat"``): IVF stores the ids itself and
  a hashtable direct map makes removal and reconstruction work. Such an index needs training on
  ``nlist * min_points_per_centroid`` vectors; until that many exist it runs as an exact ``"IDMap2,Flat"`` index
  (:attr:`VectorIndex.exact_fallback`) and is trained automatically by the :meth:`VectorIndex.add` that crosses the
  threshold. ``"IDMap2,IVF..."`` is refused: IDMap2 renumbers on removal in a way IVF does not follow.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import faiss
import numpy as np

__all__ = ["PAD_ID", "VectorIndex", "hash_ids", "write_atomic"]

log = logging.getLogger(__name__)

PAD_ID = -1  # id of a result slot with no neighbour (k larger than what the index could return); its sim is -inf
EXACT_FACTORY = "IDMap2,Flat"


def hash_ids(ids: np.ndarray) -> str:
    """SHA-256 of the sorted int64 ids (little-endian): a fingerprint of an index's id set."""
    arr = np.sort(np.asarray(ids, dtype="<i8").ravel())
    return hashlib.sha256(arr.tobytes()).hexdigest()


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so readers see either the old or the new content, never a torn one.

    Writes to a temporary file in the same directory, fsyncs it, ``os.replace``-s it over ``path`` and fsyncs the
    directory so the rename itself survives a power loss.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """fsync a directory entry table (no-op where the OS does not allow opening directories)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _as_ids(ids: Any) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids).ravel(), dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError("ids must be non-negative (FAISS uses -1 for 'no result')")
    return arr


class VectorIndex:
    """Inner-product FAISS index whose ids are registry row ids.

    Not thread-safe for concurrent writes; the catalog mutates a :meth:`clone` and swaps it in, so readers of the
    previous object are never disturbed.
    """

    def __init__(
        self,
        dim: int,
        factory: str = EXACT_FACTORY,
        *,
        nprobe: int = 16,
        min_points_per_centroid: int = 39,
    ) -> None:
        """Create an empty index.

        Args:
            dim: Vector dimension.
            factory: FAISS factory string (see the module docstring for what is accepted).
            nprobe: IVF lists probed per query (ignored for non-IVF indexes).
            min_points_per_centroid: Training vectors required per IVF list; 39 is FAISS's own warning threshold.
        """
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self.factory = factory
        self.nprobe = int(nprobe)
        self.min_points_per_centroid = int(min_points_per_centroid)
        probe = self._create(factory)
        self.needs_training = not probe.is_trained
        self._nlist = self._ivf_nlist(probe)
        if self._nlist and factory.replace(" ", "").upper().startswith("IDMAP"):
            raise ValueError(
                f"factory {factory!r}: IVF indexes keep their own ids; use it without the IDMap/IDMap2 prefix"
            )
        if not self._nlist and not isinstance(probe, faiss.IndexIDMap2):
            raise ValueError(
                f"factory {factory!r} is neither 'IDMap2,<index>' nor an IVF index; ids could not be mapped or removed"
            )
        try:
            probe.remove_ids(np.empty(0, dtype=np.int64))
        except RuntimeError as exc:
            raise ValueError(f"factory {factory!r} does not support removing vectors: {exc}") from None
        self.exact_fallback = self.needs_training
        self._index: faiss.Index = self._create(EXACT_FACTORY) if self.needs_training else probe
        self._configure(self._index)
        self._ids: set[int] = set()
        self._ids_digest: str | None = None  # cached hash_ids(self.ids()); manifests ask for it on every write
        self.file_sha256: str | None = None  # set by save() and load(): the bytes this object was persisted as

    # ------------------------------------------------------------------ construction
    def _create(self, factory: str) -> faiss.Index:
        try:
            return faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"invalid FAISS factory string {factory!r}: {exc}") from None

    @staticmethod
    def _ivf(index: faiss.Index) -> Any | None:
        try:
            return faiss.extract_index_ivf(index)
        except RuntimeError:
            return None

    @classmethod
    def _ivf_nlist(cls, index: faiss.Index) -> int:
        ivf = cls._ivf(index)
        return int(ivf.nlist) if ivf is not None else 0

    def _configure(self, index: faiss.Index) -> None:
        ivf = self._ivf(index)
        if ivf is not None:
            if ivf.direct_map.type != faiss.DirectMap.Hashtable:
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            ivf.nprobe = min(self.nprobe, int(ivf.nlist))

    @property
    def train_threshold(self) -> int:
        """Vectors needed before an IVF factory is trained (0 for indexes without training)."""
        return self._nlist * self.min_points_per_centroid if self.needs_training else 0

    @classmethod
    def build(
        cls,
        dim: int,
        ids: np.ndarray,
        vectors: np.ndarray,
        factory: str = EXACT_FACTORY,
        *,
        nprobe: int = 16,
        min_points_per_centroid: int = 39,
    ) -> VectorIndex:
        """Build an index from scratch, training it when the factory needs it and enough vectors exist."""
        index = cls(dim, factory, nprobe=nprobe, min_points_per_centroid=min_points_per_centroid)
        index.add(ids, vectors)
        return index

    # ------------------------------------------------------------------ description
    @property
    def ntotal(self) -> int:
        """Number of vectors stored."""
        return int(self._index.ntotal)

    @property
    def effective_factory(self) -> str:
        """Factory of the structure actually in use (the exact fallback while an IVF factory is untrained)."""
        return EXACT_FACTORY if self.exact_fallback else self.factory

    def ids(self) -> np.ndarray:
        """The ids present, sorted ascending (int64)."""
        return np.fromiter(sorted(self._ids), dtype=np.int64, count=len(self._ids))

    def ids_sha256(self) -> str:
        """:func:`hash_ids` of the ids present (cached until the next change)."""
        if self._ids_digest is None:
            self._ids_digest = hash_ids(self.ids())
        return self._ids_digest

    def __contains__(self, item: int) -> bool:
        return int(item) in self._ids

    def __len__(self) -> int:
        return self.ntotal

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for a manifest (what was asked for, what is in use and why)."""
        note = ""
        if self.exact_fallback:
            note = (
                f"untrained: {self.ntotal} vectors < {self.train_threshold} needed to train {self.factory!r}; "
                f"serving exact search with {EXACT_FACTORY!r}"
            )
        return {
            "factory": self.factory,
            "effective_factory": self.effective_factory,
            "exact_fallback": self.exact_fallback,
            "note": note,
            "dim": self.dim,
            "metric": "inner_product",
            "nprobe": self.nprobe if self._ivf(self._index) is not None else None,
            "ntotal": self.ntotal,
            "ids_sha256": self.ids_sha256(),
        }

    # ------------------------------------------------------------------ mutation
    def _check_vectors(self, vectors: np.ndarray, n: int | None = None) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {x.shape}")
        if n is not None and x.shape[0] != n:
            raise ValueError(f"{n} ids but {x.shape[0]} vectors")
        if not np.isfinite(x).all():
            raise ValueError("vectors contain NaN or infinity")
        return x

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (N, dim) under ``ids`` (N,); ids must be new and unique.

        If this index runs as the exact fallback of an IVF factory and now reaches the training threshold, the IVF
        index is trained on all stored vectors and replaces the fallback.
        """
        ids_arr = _as_ids(ids)
        x = self._check_vectors(vectors, len(ids_arr))
        if len(ids_arr) == 0:
            return
        if len(np.unique(ids_arr)) != len(ids_arr):
            raise ValueError("duplicate ids in one add() call")
        present = [int(i) for i in ids_arr if int(i) in self._ids]
        if present:
            raise ValueError(f"ids already in the index: {present[:10]}")
        if self.exact_fallback and self.ntotal + len(ids_arr) >= self.train_threshold:
            self._train_with(ids_arr, x)
        else:
            self._index.add_with_ids(x, ids_arr)
        self._ids.update(int(i) for i in ids_arr)
        self._ids_digest = None
        self.file_sha256 = None

    def _train_with(self, new_ids: np.ndarray, new_vectors: np.ndarray) -> None:
        """Replace the exact fallback by the trained factory index holding old + new vectors."""
        old_ids = self.ids()
        old_vectors = self.reconstruct(old_ids) if len(old_ids) else np.zeros((0, self.dim), np.float32)
        all_ids = np.concatenate([old_ids, new_ids])
        all_vectors = np.ascontiguousarray(np.concatenate([old_vectors, new_vectors]))
        start = time.perf_counter()
        index = self._create(self.factory)
        index.train(all_vectors)
        self._configure(index)
        index.add_with_ids(all_vectors, all_ids)
        self._index = index
        self.exact_fallback = False
        log.info("trained %r on %d vectors in %.2fs", self.factory, len(all_ids), time.perf_counter() - start)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (absent ones are ignored); returns how many vectors were removed."""
        ids_arr = np.unique(_as_ids(ids))
        targets = np.asarray([i for i in ids_arr if int(i) in self._ids], dtype=np.int64)
        if len(targets) == 0:
            return 0
        removed = int(self._index.remove_ids(targets))
        if removed != len(targets):
            raise RuntimeError(f"FAISS removed {removed} of {len(targets)} vectors; the index is inconsistent")
        self._ids.difference_update(int(i) for i in targets)
        self._ids_digest = None
        self.file_sha256 = None
        return removed

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors (N, dim) for ``ids`` (all must be present; codecs like SQ/PQ return approximations)."""
        ids_arr = _as_ids(ids)
        missing = [int(i) for i in ids_arr if int(i) not in self._ids]
        if missing:
            raise KeyError(f"ids not in the index: {missing[:10]}")
        if len(ids_arr) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._index.reconstruct(int(i)) for i in ids_arr]).astype(np.float32)

    def clone(self) -> VectorIndex:
        """Independent deep copy (used for copy-on-write updates)."""
        twin = object.__new__(VectorIndex)
        twin.__dict__.update(self.__dict__)
        twin._index = faiss.clone_index(self._index)
        self._configure(twin._index)
        twin._ids = set(self._ids)
        return twin

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours by inner product.

        Args:
            queries: (N, dim) float32 vectors.
            k: Neighbours per query (>= 1).

        Returns:
            ``(sims, ids)``, both (N, k), best first. Slots without a neighbour (k > ntotal, or IVF lists that hold
            fewer than k vectors) have id :data:`PAD_ID` and similarity ``-inf``.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = self._check_vectors(queries)
        if q.shape[0] == 0 or self.ntotal == 0:
            return (
                np.full((q.shape[0], k), -np.inf, dtype=np.float32),
                np.full((q.shape[0], k), PAD_ID, dtype=np.int64),
            )
        sims, ids = self._index.search(q, k)
        ids = ids.astype(np.int64, copy=False)
        sims = np.where(ids == PAD_ID, -np.inf, sims).astype(np.float32)
        return sims, ids

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> str:
        """Atomically write the index to ``path``; returns the file's SHA-256 (also kept in :attr:`file_sha256`)."""
        digest = hashlib.sha256()

        def write(fh: IO[bytes]) -> None:
            def sink(chunk: bytes) -> int:
                digest.update(chunk)
                fh.write(chunk)
                return len(chunk)

            writer = faiss.PyCallbackIOWriter(sink)
            faiss.write_index(self._index, writer)
            del writer  # flushes the writer's buffer into sink

        write_atomic(path, write)
        self.file_sha256 = digest.hexdigest()
        return self.file_sha256

    @classmethod
    def load(
        cls,
        path: str | Path,
        factory: str = EXACT_FACTORY,
        *,
        nprobe: int = 16,
        min_points_per_centroid: int = 39,
    ) -> VectorIndex:
        """Read an index written by :meth:`save`.

        Args:
            path: File to read.
            factory: The factory the index was created with (the manifest records it); the file must hold that
                structure, or the exact fallback when the factory needs training.
            nprobe: IVF lists probed per query.
            min_points_per_centroid: As for the constructor.

        Raises:
            ValueError: The file is not a FAISS index or does not match ``factory``.
            FileNotFoundError: ``path`` does not exist.
        """
        path = Path(path)
        with path.open("rb") as fh:  # streamed: a large index is not held twice in memory
            file_sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
        try:
            raw = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a readable FAISS index: {exc}") from None
        if raw.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"{path}: index metric is {raw.metric_type}, expected inner product")
        index = cls(raw.d, factory, nprobe=nprobe, min_points_per_centroid=min_points_per_centroid)
        loaded_ivf = cls._ivf(raw) is not None
        if index._nlist and not loaded_ivf:
            if not isinstance(raw, faiss.IndexIDMap2):
                raise ValueError(f"{path}: holds {type(raw).__name__}, expected {factory!r} or its exact fallback")
            index.exact_fallback = True
        elif index._nlist and loaded_ivf:
            if cls._ivf_nlist(raw) != index._nlist:
                raise ValueError(f"{path}: IVF has {cls._ivf_nlist(raw)} lists, factory {factory!r} has {index._nlist}")
            index.exact_fallback = False
        elif loaded_ivf or not isinstance(raw, faiss.IndexIDMap2):
            raise ValueError(f"{path}: holds {type(raw).__name__}, expected {factory!r}")
        index._configure(raw)
        index._index = raw
        index._ids = set(int(i) for i in cls._stored_ids(raw))
        if len(index._ids) != raw.ntotal:
            raise ValueError(f"{path}: {raw.ntotal} vectors but {len(index._ids)} distinct ids")
        index.file_sha256 = file_sha256
        return index

    @classmethod
    def _stored_ids(cls, index: faiss.Index) -> np.ndarray:
        if isinstance(index, faiss.IndexIDMap2):
            return faiss.vector_to_array(index.id_map).astype(np.int64)
        ivf = cls._ivf(index)
        invlists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self.dim}, factory={self.factory!r}, effective={self.effective_factory!r}, "
            f"ntotal={self.ntotal})"
        )
