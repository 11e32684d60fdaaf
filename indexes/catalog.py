"""The catalog: the brand registry plus the three FAISS indexes derived from it, kept in lock-step.

Layout of a catalog home::

    home/registry.db                      # SQLite registry (unless a database_url points elsewhere)
    home/indexes/image_authentic.<v>.faiss
    home/indexes/image_known_fake.<v>.faiss
    home/indexes/text.<v>.faiss
    home/indexes/manifest.json            # what built the indexes, at which index_version, file hashes, id hashes

FAISS ids are registry row ids: asset ids in the image indexes, text-entry ids in the text index.

Every change goes: DB transaction opened -> rows written -> new index files written under new, versioned names ->
index_version bumped and DB committed -> manifest replaced (atomically) -> superseded files removed. Index files are
never overwritten in place, so a crash before the commit leaves the old manifest, old files and old rows intact; a
crash between the commit and the manifest leaves a manifest whose version differs from the database, which
:meth:`Catalog.open` reports (:class:`IndexMismatchError`) and :meth:`Catalog.rebuild` repairs. Nothing inconsistent
is ever served silently.

In memory, changes are copy-on-write: a writer mutates clones and swaps them in, so searches need no lock and never
see a half-applied change. One process writes at a time (a threading lock serialises writers inside it); other
processes serving the same home call :meth:`Catalog.reload_if_changed` to pick up new versions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, runtime_checkable

import faiss
import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from indexes.images import ImageConfig, ImageError, PreparedImage, decode_image, prepare_image
from indexes.index import PAD_ID, VectorIndex, write_atomic
from indexes.registry import (
    ASSET_KINDS,
    UNSET,
    BrandRecord,
    Conflict,
    Invalid,
    Registry,
    RegistryError,
    TextEntryRecord,
    Unset,
)

__all__ = [
    "INDEX_NAMES",
    "AssetInput",
    "Catalog",
    "CatalogError",
    "CheckReport",
    "EmbedderLike",
    "IndexMismatchError",
    "ProgressFn",
]

log = logging.getLogger(__name__)

INDEX_NAMES = ("image_authentic", "image_known_fake", "text")
MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
_OPEN_ATTEMPTS = 3  # verification attempts at open while another process may be writing
_OPEN_RETRY_S = 0.2
ProgressFn = Callable[[int, int], None]  # progress(done, total)
T = TypeVar("T")


@runtime_checkable
class EmbedderLike(Protocol):
    """What the catalog needs from an embedder (``detector.embedder.Embedder`` satisfies it)."""

    model_id: str  # identifies weights + config; an index built by another model_id is refused
    references_id: str  # model_id plus how references are prepared (framing); keys the authentic index
    fingerprints_id: str  # model_id plus how known fakes' fingerprints are made (views); keys the known-fake index
    dim: int
    fingerprint_dim: int  # length of the near-duplicate fingerprints in the known-fake index

    def embed_references(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dim) float32, L2-normalised vectors of brands' reference images (the authentic index)."""
        ...

    def embed_fingerprints(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, fingerprint_dim) float32, L2-normalised near-duplicate fingerprints (known fakes)."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised."""
        ...


class CatalogError(RuntimeError):
    """The catalog cannot carry out an operation in its current state."""


@dataclass(frozen=True)
class CheckReport:
    """Result of comparing the indexes on disk with the registry."""

    ok: bool
    problems: tuple[str, ...]
    home: str
    index_version: int  # in the database
    manifest_version: int | None  # in manifest.json (None when missing/unreadable)

    def __str__(self) -> str:
        head = f"catalog {self.home}: index_version {self.index_version} in the database, " + (
            f"{self.manifest_version} in the manifest" if self.manifest_version is not None else "no usable manifest"
        )
        if self.ok:
            return head + "; indexes match the registry"
        lines = [head + f"; {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(
            "  run Catalog.rebuild() (or Catalog.open(..., repair=True)) to rebuild the indexes from the registry"
        )
        return "\n".join(lines)


class IndexMismatchError(CatalogError):
    """The indexes on disk disagree with the registry; ``report`` lists every problem found."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(str(report))
        self.report = report


@dataclass(frozen=True)
class AssetInput:
    """One item for :meth:`Catalog.add_assets`."""

    brand_id: int
    kind: str  # "authentic" or "known_fake"
    image: Image.Image | bytes
    title: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class _FileInfo:
    file: str  # name inside home/indexes
    sha256: str


@dataclass(frozen=True)
class _State:
    """Everything a search reads, swapped as one object."""

    version: int
    indexes: Mapping[str, VectorIndex]
    files: Mapping[str, _FileInfo]
    asset_brands: Mapping[int, int]  # active asset id -> brand id
    text_brands: Mapping[int, int]  # text entry id -> brand id


@dataclass
class _Draft:
    """A pending change: indexes are cloned on first write, lookups copied."""

    base: _State
    indexes: dict[str, VectorIndex] = field(default_factory=dict)
    asset_brands: dict[int, int] = field(default_factory=dict)
    text_brands: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.asset_brands = dict(self.base.asset_brands)
        self.text_brands = dict(self.base.text_brands)

    def index(self, name: str) -> VectorIndex:
        if name not in self.indexes:
            self.indexes[name] = self.base.indexes[name].clone()
        return self.indexes[name]

    def replace(self, name: str, index: VectorIndex) -> None:
        self.indexes[name] = index


FINGERPRINT_INDEX = "image_known_fake"  # holds fingerprints (near-duplicate search), not shared-space vectors


def _image_index(kind: str) -> str:
    if kind not in ASSET_KINDS:
        raise Invalid(f"asset kind must be one of {list(ASSET_KINDS)}, got {kind!r}")
    return f"image_{kind}"


def _describe_id_diff(expected: set[int], actual: set[int]) -> str | None:
    extra = sorted(actual - expected)
    missing = sorted(expected - actual)
    if not extra and not missing:
        return None
    parts = []
    if extra:
        parts.append(f"{len(extra)} indexed id(s) with no active registry row (e.g. {extra[:5]})")
    if missing:
        parts.append(f"{len(missing)} active registry row(s) not indexed (e.g. {missing[:5]})")
    return "; ".join(parts)


class Catalog:
    """Brand registry + image/text vector indexes living in one home directory.

    Create with :meth:`open`. Reads (``search_*``, ``brand_of_*``) are lock-free; writes go through the methods
    here (never through ``catalog.registry`` directly, or the indexes fall behind and the next open refuses them).
    """

    def __init__(
        self,
        home: Path,
        embedder: EmbedderLike,
        registry: Registry,
        *,
        index_factory: str,
        nprobe: int,
        batch_size: int,
        image_config: ImageConfig,
    ) -> None:
        """Use :meth:`open`; this only wires the parts together."""
        self.home = home
        self.embedder = embedder
        self.registry = registry
        self.index_factory = index_factory
        self.nprobe = nprobe
        self.batch_size = batch_size
        self.image_config = image_config
        self.index_dir = home / "indexes"
        self._lock = threading.RLock()
        self._state = self._empty_state(0)

    # ------------------------------------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        home: str | Path,
        embedder: EmbedderLike,
        index_factory: str = "IDMap2,Flat",
        database_url: str | None = None,
        *,
        nprobe: int = 16,
        batch_size: int = 32,
        image_config: ImageConfig | None = None,
        repair: bool = False,
    ) -> Catalog:
        """Open (or create) the catalog in ``home`` and verify its indexes against the registry.

        Args:
            home: Directory holding ``registry.db`` and ``indexes/``; created if missing.
            embedder: Embeds images and texts; its ``model_id`` and ``dim`` must match the manifest.
            index_factory: FAISS factory string for all three indexes (see :mod:`indexes.index`).
            database_url: SQLAlchemy URL of the registry; default ``sqlite:///<home>/registry.db``.
            nprobe: IVF lists probed per query.
            batch_size: Images/texts per embedder call.
            image_config: Limits and stored size for asset images.
            repair: On a mismatch, log the report and rebuild instead of raising.

        Returns:
            A catalog serving indexes that match the registry.

        Raises:
            IndexMismatchError: The indexes are missing, corrupt, built by another embedder or factory, or disagree
                with the registry's active rows or index_version (and ``repair`` is False).
        """
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        dim = int(embedder.dim)
        if dim <= 0 or not isinstance(embedder.model_id, str) or not embedder.model_id:
            raise ValueError("embedder needs a positive dim and a non-empty model_id")
        VectorIndex(dim, index_factory)  # fail fast on an unusable factory string
        url = database_url or f"sqlite:///{(home / 'registry.db').resolve()}"
        image_config = image_config or ImageConfig()
        registry = Registry(url, image_config=image_config)
        catalog = cls(
            home,
            embedder,
            registry,
            index_factory=index_factory,
            nprobe=nprobe,
            batch_size=batch_size,
            image_config=image_config,
        )
        try:
            try:
                catalog._open()
            except IndexMismatchError as exc:
                if not repair:
                    raise
                log.warning("repairing by rebuild: %s", exc.report)
                catalog.rebuild()
        except BaseException:
            registry.close()
            raise
        return catalog

    def _open(self) -> None:
        if self._is_pristine():
            log.info("initialising an empty catalog in %s", self.home)
            with self._lock:
                self._state = self._empty_state(self.registry.get_index_version())
                files = {
                    name: self._write_index(name, self._state.indexes[name], self._state.version)
                    for name in INDEX_NAMES
                }
                self._state = _State(self._state.version, self._state.indexes, files, {}, {})
                self._write_manifest(self._state)
            return
        for attempt in range(_OPEN_ATTEMPTS):
            state, report = self._load_verified()
            if state is not None:
                self._state = state
                log.info(
                    "opened catalog %s at index_version %d (%s)",
                    self.home,
                    state.version,
                    ", ".join(f"{n}={state.indexes[n].ntotal}" for n in INDEX_NAMES),
                )
                return
            # A writer in another process may be mid-update (files replaced, or committed with the manifest next):
            # give it a moment before calling the home inconsistent.
            moved = self.registry.get_index_version() != report.index_version
            lagging = report.manifest_version == report.index_version - 1
            if attempt + 1 < _OPEN_ATTEMPTS and (moved or lagging):
                time.sleep(_OPEN_RETRY_S)
                continue
            raise IndexMismatchError(report)

    def _is_pristine(self) -> bool:
        """Nothing on disk and nothing in the registry that an index should hold."""
        if (self.index_dir / MANIFEST_NAME).exists() or any(self.index_dir.glob("*.faiss")):
            return False
        if self.registry.get_index_version() != 0:
            return False
        return not self.registry.map_text_brands() and not self.registry.map_asset_brands()

    def _empty_state(self, version: int) -> _State:
        indexes = {name: self._new_index(name) for name in INDEX_NAMES}
        return _State(version, indexes, {}, {}, {})

    def _dim(self, name: str) -> int:
        """Vector length of one index."""
        return int(self.embedder.fingerprint_dim if name == FINGERPRINT_INDEX else self.embedder.dim)

    def _embedder_ids(self) -> dict[str, Any]:
        """What built the indexes, as the manifest records it."""
        e = self.embedder
        return {"model_id": e.model_id, "references_id": e.references_id, "fingerprints_id": e.fingerprints_id,
                "dim": int(e.dim)}

    def _vector_key(self, name: str) -> str:
        """Key of an index's cached vectors in the registry (fingerprints are cached apart from embeddings)."""
        if name == FINGERPRINT_INDEX:
            return self.embedder.fingerprints_id
        return self.embedder.references_id if name == "image_authentic" else self.embedder.model_id

    def _new_index(self, name: str) -> VectorIndex:
        return VectorIndex(self._dim(name), self.index_factory, nprobe=self.nprobe)

    # ------------------------------------------------------------------------------------------------ verification
    def _read_members(self, session: Session | None = None) -> tuple[int, dict[str, dict[int, int]]]:
        """The database's index_version and, per index, ``{row id: brand id}`` of the rows it must hold."""
        if session is None:
            with self.registry.transaction() as own:
                return self._read_members(own)
        version = self.registry.get_index_version(session=session)
        members = {
            "image_authentic": self.registry.map_asset_brands("authentic", session=session),
            "image_known_fake": self.registry.map_asset_brands("known_fake", session=session),
            "text": self.registry.map_text_brands(session=session),
        }
        return version, members

    def _read_manifest(self, problems: list[str]) -> dict[str, Any] | None:
        path = self.index_dir / MANIFEST_NAME
        if not path.exists():
            problems.append(f"manifest {path} is missing")
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"manifest {path} is unreadable: {exc}")
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            problems.append(f"manifest {path} is not a format-{MANIFEST_FORMAT} catalog manifest")
            return None
        return manifest

    def _load_verified(self) -> tuple[_State | None, CheckReport]:
        """Load the indexes named by the manifest and compare everything with the registry."""
        problems: list[str] = []
        db_version, members = self._read_members()
        manifest = self._read_manifest(problems)
        manifest_version: int | None = None
        indexes: dict[str, VectorIndex] = {}
        files: dict[str, _FileInfo] = {}
        if manifest is not None:
            manifest_version = manifest.get("index_version")
            embedder = manifest.get("embedder") or {}
            if embedder.get("model_id") != self.embedder.model_id or embedder.get("dim") != int(self.embedder.dim):
                problems.append(
                    f"indexes were built by embedder {embedder.get('model_id')!r} (dim {embedder.get('dim')}), "
                    f"not {self.embedder.model_id!r} (dim {self.embedder.dim})"
                )
            else:
                if embedder.get("references_id") != self.embedder.references_id:
                    problems.append(
                        f"reference images were embedded as {embedder.get('references_id')!r}, "
                        f"not {self.embedder.references_id!r} (reference framing or views changed)"
                    )
                # Manifests written before the recipe was recorded used the two-view one ("#fingerprint").
                made_as = embedder.get("fingerprints_id", f"{embedder.get('model_id')}#fingerprint")
                if made_as != self.embedder.fingerprints_id:
                    problems.append(f"known fakes were fingerprinted as {made_as!r}, not "
                                    f"{self.embedder.fingerprints_id!r} (fingerprint views changed)")
            if manifest.get("index_factory") != self.index_factory:
                problems.append(
                    f"indexes were built with factory {manifest.get('index_factory')!r}, not {self.index_factory!r}"
                )
            if manifest_version != db_version:
                problems.append(
                    f"manifest is at index_version {manifest_version} but the registry is at {db_version} "
                    "(an update was interrupted, or the registry was changed without the catalog)"
                )
            entries = manifest.get("indexes") or {}
            for name in INDEX_NAMES:
                loaded = self._load_entry(name, entries.get(name), members[name], problems)
                if loaded is not None:
                    indexes[name], files[name] = loaded
        ok = not problems
        report = CheckReport(
            ok=ok,
            problems=tuple(problems),
            home=str(self.home),
            index_version=db_version,
            manifest_version=manifest_version,
        )
        if not ok:
            return None, report
        state = _State(
            version=db_version,
            indexes=indexes,
            files=files,
            asset_brands={**members["image_authentic"], **members["image_known_fake"]},
            text_brands=members["text"],
        )
        return state, report

    def _load_entry(
        self, name: str, entry: Any, expected: Mapping[int, int], problems: list[str]
    ) -> tuple[VectorIndex, _FileInfo] | None:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            problems.append(f"{name}: no entry in the manifest")
            return None
        path = self.index_dir / entry["file"]
        if Path(entry["file"]).name != entry["file"]:
            problems.append(f"{name}: manifest names a file outside the index folder: {entry['file']!r}")
            return None
        if not path.exists():
            problems.append(f"{name}: index file {path} is missing")
            return None
        try:
            index = VectorIndex.load(path, self.index_factory, nprobe=self.nprobe)
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: index file {path} cannot be loaded: {exc}")
            return None
        if index.file_sha256 != entry.get("sha256"):
            problems.append(f"{name}: {path} changed since the manifest was written (sha256 differs)")
        if index.dim != self._dim(name):
            problems.append(f"{name}: index dim {index.dim} != the embedder's {self._dim(name)}")
        ids = index.ids()
        if index.ntotal != entry.get("ntotal") or index.ids_sha256() != entry.get("ids_sha256"):
            problems.append(f"{name}: ids in {path} differ from those the manifest recorded")
        diff = _describe_id_diff(set(expected), set(ids.tolist()))
        if diff:
            problems.append(f"{name}: index and registry disagree: {diff}")
        return index, _FileInfo(entry["file"], str(index.file_sha256))

    def check(self) -> CheckReport:
        """Compare the indexes on disk (what a restart would load) and in memory with the registry."""
        with self._lock:
            state, report = self._load_verified()
            if report.ok and state is not None and state.version != self._state.version:
                problems = (
                    f"this catalog serves index_version {self._state.version} but disk and registry are at "
                    f"{state.version}; call reload_if_changed()",
                )
                return CheckReport(False, problems, report.home, report.index_version, report.manifest_version)
            return report

    # ------------------------------------------------------------------------------------------------ persistence
    def _write_index(self, name: str, index: VectorIndex, version: int) -> _FileInfo:
        file = f"{name}.{version}.faiss"
        sha = index.save(self.index_dir / file)
        return _FileInfo(file, sha)

    def _write_manifest(self, state: _State) -> None:
        manifest = {
            "format": MANIFEST_FORMAT,
            "index_version": state.version,
            "embedder": self._embedder_ids(),
            "index_factory": self.index_factory,
            "database_backend": self.registry.url.get_backend_name(),
            "faiss_version": faiss.__version__,
            "written_at": datetime.now(UTC).isoformat(),
            "indexes": {
                name: {
                    "file": state.files[name].file,
                    "sha256": state.files[name].sha256,
                    **state.indexes[name].describe(),
                }
                for name in INDEX_NAMES
            },
        }
        payload = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")

        def write(fh: IO[bytes]) -> None:
            fh.write(payload)

        write_atomic(self.index_dir / MANIFEST_NAME, write)

    def _remove_stale_files(self, keep: Iterable[_FileInfo]) -> None:
        """Delete index files no manifest generation still kept refers to (readers may lag one version)."""
        names = {info.file for info in keep}
        for path in self.index_dir.glob("*.faiss"):
            if path.name not in names:
                try:
                    path.unlink()
                except OSError as exc:
                    log.warning("cannot remove stale index file %s: %s", path, exc)

    def _commit(self, mutate: Callable[[Session, _Draft], T], *, adopt_registry_version: bool = False) -> tuple[T, int]:
        """Run ``mutate`` in one DB transaction, then persist the indexes it touched and swap them in.

        Returns ``(mutate's result, index_version)``; a mutate that touched no index leaves the version alone.
        ``adopt_registry_version`` (rebuild) continues from the registry's version instead of requiring it to equal
        the served one.
        """
        with self._lock:
            base = self._state
            started = time.perf_counter()
            with self.registry.transaction() as session:
                if adopt_registry_version:
                    base = dataclasses.replace(base, version=self.registry.get_index_version(session=session))
                draft = _Draft(base)
                result = mutate(session, draft)
                if not draft.indexes:
                    return result, base.version
                version = self.registry.bump_index_version(session=session)
                if version != base.version + 1:
                    raise CatalogError(
                        f"registry index_version moved from {base.version} to {version - 1} behind this catalog "
                        "(another process wrote to it); call reload_if_changed() before writing"
                    )
                files = dict(base.files)
                for name, index in draft.indexes.items():
                    files[name] = self._write_index(name, index, version)
                # leaving the block commits; a failure before this point rolls back and leaves only unused files
            state = _State(
                version=version,
                indexes={**base.indexes, **draft.indexes},
                files=files,
                asset_brands=draft.asset_brands,
                text_brands=draft.text_brands,
            )
            self._state = state
            self._write_manifest(state)
            self._remove_stale_files([*state.files.values(), *base.files.values()])
            log.info(
                "index_version %d: updated %s in %.3fs",
                version,
                ", ".join(f"{n}({draft.indexes[n].ntotal})" for n in sorted(draft.indexes)),
                time.perf_counter() - started,
            )
            return result, version

    # ------------------------------------------------------------------------------------------------ embedding
    def _checked(self, vectors: np.ndarray, n: int, what: str, dim: int | None = None) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        dim = int(self.embedder.dim) if dim is None else dim
        if x.shape != (n, dim):
            raise CatalogError(f"embedder returned {what} vectors of shape {x.shape}, expected {(n, dim)}")
        if not np.isfinite(x).all():
            raise CatalogError(f"embedder returned non-finite {what} vectors")
        norms = np.linalg.norm(x, axis=1)
        if n and np.abs(norms - 1.0).max() > 1e-3:
            raise CatalogError(
                f"embedder returned {what} vectors that are not L2-normalised "
                f"(norms {norms.min():.4f}..{norms.max():.4f})"
            )
        return x

    def _embed_images(self, images: Sequence[Image.Image], name: str = "image_authentic") -> np.ndarray:
        """Vectors for one image index: embeddings, or fingerprints for the known-fake index."""
        dim = self._dim(name)
        if not images:
            return np.zeros((0, dim), np.float32)
        if name == FINGERPRINT_INDEX:
            return self._checked(self.embedder.embed_fingerprints(list(images)), len(images), "fingerprint", dim)
        return self._checked(self.embedder.embed_references(list(images)), len(images), "image")

    def _embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, int(self.embedder.dim)), np.float32)
        return self._checked(self.embedder.embed_texts(list(texts)), len(texts), "text")

    def _index_texts(self, session: Session, draft: _Draft, entries: Sequence[TextEntryRecord]) -> None:
        """Embed text entries, cache their vectors and add them to the draft's text index."""
        if not entries:
            return
        vectors = np.concatenate(
            [
                self._embed_texts([e.text for e in entries[i : i + self.batch_size]])
                for i in range(0, len(entries), self.batch_size)
            ]
        )
        ids = np.asarray([e.id for e in entries], dtype=np.int64)
        self.registry.store_vectors(
            "text", dict(zip(ids.tolist(), vectors, strict=True)), self.embedder.model_id, session=session
        )
        draft.index("text").add(ids, vectors)
        draft.text_brands.update({e.id: e.brand_id for e in entries})

    @staticmethod
    def _unindex_texts(draft: _Draft, entry_ids: Sequence[int]) -> None:
        """Remove text entries from the draft's text index and brand lookup."""
        if not entry_ids:
            return
        draft.index("text").remove(np.asarray(entry_ids, dtype=np.int64))
        for entry_id in entry_ids:
            draft.text_brands.pop(entry_id, None)

    def _prepare(self, image: Image.Image | bytes, what: str = "image") -> tuple[Image.Image, PreparedImage]:
        try:
            return prepare_image(image, self.image_config)
        except ImageError as exc:
            raise Invalid(f"{what} refused: {exc.reason}") from None

    # ------------------------------------------------------------------------------------------------ writes
    def add_brand(
        self,
        name: str,
        aliases: Sequence[str] = (),
        authorized_sellers: Sequence[str] = (),
        min_price: float | None = None,
        currency: str = "USD",
    ) -> tuple[int, int]:
        """Register a brand and index its name and aliases.

        Returns:
            ``(brand_id, index_version)``.

        Raises:
            Invalid, Conflict: See :meth:`Registry.add_brand`.
        """

        def mutate(session: Session, draft: _Draft) -> int:
            brand = self.registry.add_brand(name, aliases, authorized_sellers, min_price, currency, session=session)
            self._index_texts(session, draft, self.registry.list_text_entries(brand_id=brand.id, session=session))
            return brand.id

        return self._commit(mutate)

    def update_brand(
        self,
        brand_id: int,
        *,
        aliases: Sequence[str] | None = None,
        authorized_sellers: Sequence[str] | None = None,
        min_price: float | None | Unset = UNSET,
        currency: str | None = None,
    ) -> tuple[BrandRecord, int]:
        """Change a brand (see :meth:`Registry.update_brand`) and re-index its aliases when they changed.

        Every update starts a new index version, even one that changes no vector (sellers, price floor): scorers
        re-read the brand table when the version moves, so the change holds from the returned version on.

        Returns:
            ``(brand, index_version)``.
        """

        def mutate(session: Session, draft: _Draft) -> BrandRecord:
            brand, deleted, added = self.registry.update_brand(
                brand_id, aliases=aliases, authorized_sellers=authorized_sellers, min_price=min_price,
                currency=currency, session=session)
            draft.index("text")  # touched in any case: the new version tells scorers to re-read brands
            self._unindex_texts(draft, deleted)
            self._index_texts(session, draft, added)
            return brand

        return self._commit(mutate)

    def add_brands(self, brands: Sequence[dict[str, Any]]) -> tuple[list[int], int]:
        """Register many brands in one transaction and one index version (all-or-nothing).

        Each item has the keyword arguments of :meth:`add_brand`. Returns ``(brand_ids in input order, index_version)``.
        """

        def mutate(session: Session, draft: _Draft) -> list[int]:
            ids, entries = [], []
            for b in brands:
                brand = self.registry.add_brand(
                    b["name"], b.get("aliases", ()), b.get("authorized_sellers", ()), b.get("min_price"),
                    b.get("currency", "USD"), session=session,
                )
                ids.append(brand.id)
                entries += self.registry.list_text_entries(brand_id=brand.id, session=session)
            self._index_texts(session, draft, entries)
            return ids

        return self._commit(mutate)

    def add_asset(
        self,
        brand_id: int,
        kind: str,
        image: Image.Image | bytes,
        title: str | None = None,
        source: str | None = None,
    ) -> tuple[int, int]:
        """Store and index one reference image (and its title).

        Args:
            brand_id: Owning brand.
            kind: ``"authentic"`` or ``"known_fake"``.
            image: Encoded bytes (checked by :func:`indexes.images.decode_image`) or a PIL image.
            title: Optional product title, indexed as text.
            source: Optional provenance.

        Returns:
            ``(asset_id, index_version)``.

        Raises:
            NotFound: No such brand. Invalid: bad kind or refused image. Conflict: the same image is already an
            active asset of this brand and kind.
        """
        name = _image_index(kind)
        rgb, prepared = self._prepare(image)
        vector = self._embed_images([rgb], name)  # outside the lock: the slow part of a single add

        def mutate(session: Session, draft: _Draft) -> int:
            asset = self.registry.add_asset(brand_id, kind, prepared, title, source, session=session)
            self.registry.store_vectors("asset", {asset.id: vector[0]}, self._vector_key(name), session=session)
            draft.index(name).add(np.asarray([asset.id], dtype=np.int64), vector)
            draft.asset_brands[asset.id] = brand_id
            self._index_texts(session, draft, self.registry.list_text_entries(asset_id=asset.id, session=session))
            return asset.id

        return self._commit(mutate)

    def add_assets(self, items: Iterable[AssetInput], progress: ProgressFn | None = None) -> tuple[list[int], int]:
        """Store and index many reference images in one transaction and one index version.

        Images are decoded, embedded and written in batches of ``batch_size``; all-or-nothing: any refused item
        rolls the whole call back.

        Args:
            items: The assets to add.
            progress: Called as ``progress(done, total)`` after each embedded batch.

        Returns:
            ``(asset_ids in input order, index_version)``.

        Raises:
            Invalid: A refused image or bad kind (the message names the item's position). NotFound, Conflict: as
            for :meth:`add_asset`.
        """
        items = list(items)
        for position, item in enumerate(items):
            try:
                _image_index(item.kind)
            except Invalid as exc:
                raise Invalid(f"item {position}: {exc}") from None
        total = len(items)

        def mutate(session: Session, draft: _Draft) -> list[int]:
            asset_ids: list[int] = []
            for start in range(0, total, self.batch_size):
                batch = items[start : start + self.batch_size]
                prepared = [self._prepare(item.image, f"item {start + i} image") for i, item in enumerate(batch)]
                masks = {kind: np.asarray([item.kind == kind for item in batch]) for kind in ASSET_KINDS}
                vectors = {  # per kind: embeddings (authentic) or fingerprints (known fakes)
                    kind: self._embed_images([rgb for (rgb, _), m in zip(prepared, mask) if m], _image_index(kind))
                    for kind, mask in masks.items()
                    if mask.any()
                }
                stored = [p for _, p in prepared]
                del prepared  # only the PNG bytes stay in flight, not decoded pixels
                batch_ids = []
                for offset, (item, png) in enumerate(zip(batch, stored, strict=True)):
                    try:
                        asset = self.registry.add_asset(
                            item.brand_id, item.kind, png, item.title, item.source, session=session
                        )
                    except Conflict as exc:
                        raise Conflict(f"item {start + offset}: {exc}", existing_id=exc.existing_id) from None
                    except RegistryError as exc:
                        raise type(exc)(f"item {start + offset}: {exc}") from None
                    batch_ids.append(asset.id)
                    draft.asset_brands[asset.id] = item.brand_id
                ids = np.asarray(batch_ids, dtype=np.int64)
                for kind, kind_vectors in vectors.items():
                    name, kind_ids = _image_index(kind), ids[masks[kind]]
                    self.registry.store_vectors(
                        "asset", dict(zip(kind_ids.tolist(), kind_vectors, strict=True)), self._vector_key(name),
                        session=session,
                    )
                    draft.index(name).add(kind_ids, kind_vectors)
                titles = [e for a in batch_ids for e in self.registry.list_text_entries(asset_id=a, session=session)]
                self._index_texts(session, draft, titles)
                asset_ids.extend(batch_ids)
                session.expunge_all()  # rows are flushed; do not keep every image's bytes in the identity map
                if progress is not None:
                    progress(start + len(batch), total)
            return asset_ids

        return self._commit(mutate)

    def delete_asset(self, asset_id: int) -> tuple[bool, int]:
        """Soft-delete an asset and remove it (and its title) from the indexes.

        Returns:
            ``(deleted, index_version)``; ``deleted`` is False (and the version unchanged) if it was already deleted.

        Raises:
            NotFound: No such asset.
        """

        def mutate(session: Session, draft: _Draft) -> bool:
            asset = self.registry.get_asset(asset_id, session=session)
            entries = self.registry.list_text_entries(asset_id=asset_id, session=session)
            if not self.registry.delete_asset(asset_id, session=session):
                return False
            draft.index(_image_index(asset.kind)).remove(np.asarray([asset_id], dtype=np.int64))
            draft.asset_brands.pop(asset_id, None)
            self._unindex_texts(draft, [e.id for e in entries])
            return True

        return self._commit(mutate)

    def add_text_entry(
        self, brand_id: int, text: str, kind: str = "alias", asset_id: int | None = None
    ) -> tuple[int, int]:
        """Add and index an alias (or the title of an untitled asset). Returns ``(entry_id, index_version)``."""

        def mutate(session: Session, draft: _Draft) -> int:
            entry = self.registry.add_text_entry(brand_id, text, kind, asset_id, session=session)
            self._index_texts(session, draft, [entry])
            return entry.id

        return self._commit(mutate)

    def update_text_entry(self, entry_id: int, text: str) -> int:
        """Change an entry's text (name, alias or title) and re-embed it. Returns the index_version."""

        def mutate(session: Session, draft: _Draft) -> None:
            before = self.registry.get_text_entry(entry_id, session=session)
            entry = self.registry.update_text_entry(entry_id, text, session=session)
            if entry.text != before.text:
                draft.index("text").remove(np.asarray([entry_id], dtype=np.int64))
                self._index_texts(session, draft, [entry])

        return self._commit(mutate)[1]

    def delete_text_entry(self, entry_id: int) -> int:
        """Delete an alias or title entry and remove it from the text index. Returns the index_version."""

        def mutate(session: Session, draft: _Draft) -> None:
            self.registry.delete_text_entry(entry_id, session=session)
            self._unindex_texts(draft, [entry_id])

        return self._commit(mutate)[1]

    # ------------------------------------------------------------------------------------------------ rebuild
    def rebuild(self, progress: ProgressFn | None = None) -> int:
        """Rebuild all three indexes from the registry's active rows and write a fresh manifest.

        Vectors cached for this embedder's ``model_id`` are reused; everything else is re-embedded from the stored
        PNGs and texts (and cached). IVF factories are trained here when enough vectors exist.

        Args:
            progress: Called as ``progress(done, total)`` over all vectors (cached ones included).

        Returns:
            The new index_version.
        """
        with self._lock:
            started = time.perf_counter()
            _, members = self._read_members()
            total = sum(len(m) for m in members.values())
            done = 0
            built: dict[str, VectorIndex] = {}
            for name in INDEX_NAMES:
                ids = sorted(members[name])
                owner = "text" if name == "text" else "asset"
                vectors = self.registry.load_vectors(owner, ids, self._vector_key(name))
                done += len(vectors)
                if progress is not None:
                    progress(done, total)
                missing = [i for i in ids if i not in vectors]
                log.info(
                    "rebuild %s: %d rows, %d cached vectors, %d to embed", name, len(ids), len(vectors), len(missing)
                )
                for start in range(0, len(missing), self.batch_size):
                    chunk = missing[start : start + self.batch_size]
                    fresh = self._embed_stored(name, chunk)
                    self.registry.store_vectors(owner, fresh, self._vector_key(name))  # commits: a crash keeps work
                    vectors.update(fresh)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                matrix = (
                    np.stack([vectors[i] for i in ids]) if ids else np.zeros((0, self._dim(name)), np.float32)
                )
                built[name] = VectorIndex.build(
                    self._dim(name),
                    np.asarray(ids, dtype=np.int64),
                    matrix,
                    self.index_factory,
                    nprobe=self.nprobe,
                )

            def mutate(session: Session, draft: _Draft) -> None:
                if self._read_members(session)[1] != members:
                    raise CatalogError("the registry changed during rebuild; run rebuild() again")
                for name, index in built.items():
                    draft.replace(name, index)
                draft.asset_brands = {**members["image_authentic"], **members["image_known_fake"]}
                draft.text_brands = dict(members["text"])

            _, version = self._commit(mutate, adopt_registry_version=True)
            log.info(
                "rebuilt catalog %s at index_version %d in %.2fs (%s)",
                self.home,
                version,
                time.perf_counter() - started,
                ", ".join(f"{n}={built[n].ntotal} [{built[n].effective_factory}]" for n in INDEX_NAMES),
            )
            return version

    def _embed_stored(self, name: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Vectors of index ``name`` for stored rows ``ids``: asset PNGs, or entry texts for the text index."""
        if name == "text":
            entries = self.registry.list_text_entries(ids=ids)
            return dict(zip([e.id for e in entries], self._embed_texts([e.text for e in entries]), strict=True))
        stored = self.asset_images(ids)
        return dict(zip(ids, self._embed_images([stored[asset_id] for asset_id in ids], name), strict=True))

    # ------------------------------------------------------------------------------------------------ reload
    def reload_if_changed(self) -> bool:
        """Pick up a newer index_version written by another process.

        Returns:
            True if newer indexes were loaded; False if nothing changed or the writer has not finished yet (its
            manifest is not written), in which case the current indexes keep serving.

        Raises:
            IndexMismatchError: The registry moved on but what is on disk does not match it.
        """
        db_version = self.registry.get_index_version()
        if db_version == self._state.version:
            return False
        with self._lock:
            state, report = self._load_verified()
            if state is not None:
                self._state = state
                log.info("reloaded catalog %s at index_version %d", self.home, state.version)
                return True
            if report.manifest_version != report.index_version or self.registry.get_index_version() != db_version:
                log.info(
                    "catalog %s: a writer is mid-update (db %d, manifest %s); will retry",
                    self.home,
                    report.index_version,
                    report.manifest_version,
                )
                return False
            raise IndexMismatchError(report)

    # ------------------------------------------------------------------------------------------------ reads
    @property
    def index_version(self) -> int:
        """Version of the indexes being served."""
        return self._state.version

    def ntotal(self, name: str) -> int:
        """Vectors in one of :data:`INDEX_NAMES`."""
        return self._state.indexes[name].ntotal

    def describe(self) -> dict[str, Any]:
        """Served version, embedder and per-index description (for health/metadata endpoints)."""
        state = self._state
        return {
            "index_version": state.version,
            "embedder": self._embedder_ids(),
            "index_factory": self.index_factory,
            "indexes": {name: state.indexes[name].describe() for name in INDEX_NAMES},
        }

    def _search(self, name: str, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(query_vectors, dtype=np.float32)
        dim = self._dim(name)
        if q.ndim not in (2, 3) or q.shape[-1] != dim:
            raise ValueError(f"{name} query vectors must be (N, {dim}) or (N, R, {dim}), got {q.shape}")
        index = self._state.indexes[name]
        sims, ids = index.search(q.reshape(-1, q.shape[-1]), k)
        return sims.reshape(*q.shape[:-1], k), ids.reshape(*q.shape[:-1], k)

    def search_images(
        self, query_vectors: np.ndarray, kind: str = "authentic", k: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest reference images of one kind.

        Args:
            query_vectors: (N, dim) photo embeddings or (N, R, dim) region embeddings for ``"authentic"``;
                (N, fingerprint_dim) or (N, V, fingerprint_dim) photo fingerprints
                (``Embedder.embed_query_regions``) for ``"known_fake"``.
            kind: ``"authentic"`` or ``"known_fake"``.
            k: Neighbours per query vector.

        Returns:
            ``(sims, asset_ids)`` shaped (N, k) or (N, R, k), best first; empty slots hold id
            :data:`~indexes.index.PAD_ID` (-1) and sim ``-inf``.
        """
        return self._search(_image_index(kind), query_vectors, k)

    def search_texts(self, query_vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Nearest brand names/aliases/titles: ``(sims, text_entry_ids)`` shaped like :meth:`search_images`."""
        return self._search("text", query_vectors, k)

    def brand_of_asset(self, asset_id: int) -> int | None:
        """Brand of an active (indexed) asset, else None."""
        return self._state.asset_brands.get(int(asset_id))

    def brand_of_text_entry(self, entry_id: int) -> int | None:
        """Brand of an indexed text entry, else None."""
        return self._state.text_brands.get(int(entry_id))

    def asset_images(self, asset_ids: Sequence[int]) -> dict[int, Image.Image]:
        """Stored images of assets by id (as stored: longest side at most ``image_config.max_side``); deleted or
        unknown ids are absent."""
        blobs = self.registry.get_asset_images(list(asset_ids))
        out = {}
        for asset_id, blob in blobs.items():
            try:
                # Stored PNGs were produced by prepare_image, so they are within limits; bound them anyway.
                out[asset_id] = decode_image(blob, max_pixels=self.image_config.max_pixels, max_bytes=1 << 31)
            except ImageError as exc:
                raise CatalogError(f"stored image of asset {asset_id} cannot be decoded: {exc.reason}") from None
        return out

    def lookup_asset_brands(self, asset_ids: np.ndarray) -> np.ndarray:
        """Brand ids for an array of asset ids (e.g. search results); -1 for padding/unknown ids."""
        return self._lookup(self._state.asset_brands, asset_ids)

    def lookup_text_brands(self, entry_ids: np.ndarray) -> np.ndarray:
        """Brand ids for an array of text-entry ids; -1 for padding/unknown ids."""
        return self._lookup(self._state.text_brands, entry_ids)

    @staticmethod
    def _lookup(mapping: Mapping[int, int], ids: np.ndarray) -> np.ndarray:
        arr = np.asarray(ids, dtype=np.int64)
        flat = [mapping.get(int(i), PAD_ID) for i in arr.ravel()]
        return np.asarray(flat, dtype=np.int64).reshape(arr.shape)

    # ------------------------------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release the database connections."""
        self.registry.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.home)!r}, index_version={self._state.version}, model_id={self.embedder.model_id!r})"
