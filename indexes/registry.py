"""The brand registry: brands, reference images, indexed texts, cached embeddings, scores and reviewer feedback.

SQLAlchemy 2.0 ORM over any database URL (SQLite by default; only portable column types, so PostgreSQL works too).
The registry is the source of truth: FAISS indexes (see :mod:`indexes.catalog`) are derived from its active rows and
use its row ids as vector ids.

Public methods return frozen record dataclasses, never live ORM objects, so callers cannot lazy-load after the session
closed. Methods that take ``session=`` join the caller's transaction (see :meth:`Registry.transaction`); without it
each call commits on its own. Errors are :class:`RegistryError` subclasses that an HTTP layer maps to status codes:
:class:`NotFound` (404), :class:`Conflict` (409), :class:`Invalid` (422).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from indexes.images import ImageConfig, ImageError, PreparedImage, prepare_image

__all__ = [
    "ASSET_KINDS",
    "FEEDBACK_VERDICTS",
    "SCHEMA_VERSION",
    "TEXT_KINDS",
    "UNSET",
    "Unset",
    "AssetRecord",
    "Base",
    "BrandRecord",
    "Conflict",
    "Invalid",
    "NotFound",
    "Registry",
    "RegistryError",
    "TextEntryRecord",
    "normalize_name",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # bump with any table change; a registry with another version is refused rather than misread
ASSET_KINDS = ("authentic", "known_fake")
TEXT_KINDS = ("name", "alias", "title")
FEEDBACK_VERDICTS = ("counterfeit", "authentic", "unbranded")
VECTOR_OWNERS = ("asset", "text")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_NAME = 200
_MAX_TEXT = 1000
_IN_CHUNK = 500  # ids per IN (...) clause; stays far below every backend's bound-parameter limit


# ---------------------------------------------------------------------------------------------------------- errors
class RegistryError(Exception):
    """Base class of registry errors."""


class NotFound(RegistryError):
    """A referenced row does not exist (HTTP 404)."""


class Conflict(RegistryError):
    """The change collides with existing data (HTTP 409); ``existing_id`` names the row it collides with."""

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class Invalid(RegistryError, ValueError):
    """An argument is malformed or out of range (HTTP 422)."""


class Unset(enum.Enum):
    """Type of :data:`UNSET`, the default of an update argument that may also be set to None."""

    UNSET = "unset"


UNSET = Unset.UNSET


# ---------------------------------------------------------------------------------------------------------- tables
def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite drops tzinfo; every stored datetime is UTC, so put it back."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of the registry tables."""


class BrandRow(Base):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(_MAX_NAME))
    name_key: Mapped[str] = mapped_column(String(_MAX_NAME), unique=True)  # normalize_name(name): case-insensitive
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    authorized_sellers: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class AssetRow(Base):
    __tablename__ = "assets"
    __table_args__ = (CheckConstraint("kind IN ('authentic', 'known_fake')", name="ck_assets_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(_MAX_TEXT), nullable=True)
    source: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)  # of image_bytes (the re-encoded PNG)
    image_bytes: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # loaded only when asked for
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)


class TextEntryRow(Base):
    __tablename__ = "text_entries"
    __table_args__ = (CheckConstraint("kind IN ('name', 'alias', 'title')", name="ck_text_entries_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"), index=True)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(String(_MAX_TEXT))


class VectorRow(Base):
    __tablename__ = "vectors"
    __table_args__ = (UniqueConstraint("owner", "owner_id", "model_id", name="uq_vectors_owner_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(8))  # "asset" or "text"
    owner_id: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32


class ScoredListingRow(Base):
    __tablename__ = "scored_listings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(200), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    image_sha256s: Mapped[list[str]] = mapped_column(JSON, default=list)
    risk: Mapped[float] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(32))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), nullable=True)
    signals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version: Mapped[str] = mapped_column(String(200))
    index_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("verdict IN ('counterfeit', 'authentic', 'unbranded')", name="ck_feedback_verdict"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[str] = mapped_column(String(200), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), nullable=True)
    reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class MetaRow(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# ---------------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class BrandRecord:
    """A brand; the counts are filled by :meth:`Registry.list_brands` and :meth:`Registry.get_brand`."""

    id: int
    name: str
    aliases: tuple[str, ...]
    authorized_sellers: tuple[str, ...]
    min_price: float | None
    currency: str
    created_at: datetime
    n_authentic: int = 0
    n_known_fakes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The public (HTTP / CLI) view of a brand."""
        return {"brand_id": self.id, "name": self.name, "aliases": list(self.aliases),
                "authorized_sellers": list(self.authorized_sellers), "min_price": self.min_price,
                "currency": self.currency, "n_authentic": self.n_authentic, "n_known_fakes": self.n_known_fakes}


@dataclass(frozen=True)
class AssetRecord:
    """A reference image's metadata (the PNG bytes come from :meth:`Registry.get_asset_image`)."""

    id: int
    brand_id: int
    kind: str
    title: str | None
    source: str | None
    image_sha256: str
    width: int
    height: int
    created_at: datetime
    deleted_at: datetime | None

    @property
    def active(self) -> bool:
        """False once soft-deleted."""
        return self.deleted_at is None


@dataclass(frozen=True)
class TextEntryRecord:
    """One indexed text: a brand name, an alias or an asset title."""

    id: int
    brand_id: int
    asset_id: int | None
    kind: str
    text: str


def _brand_record(row: BrandRow, n_authentic: int = 0, n_known_fakes: int = 0) -> BrandRecord:
    return BrandRecord(
        id=row.id,
        name=row.name,
        aliases=tuple(row.aliases or ()),
        authorized_sellers=tuple(row.authorized_sellers or ()),
        min_price=row.min_price,
        currency=row.currency,
        created_at=_aware(row.created_at),
        n_authentic=int(n_authentic),
        n_known_fakes=int(n_known_fakes),
    )


def _asset_record(row: AssetRow) -> AssetRecord:
    return AssetRecord(
        id=row.id,
        brand_id=row.brand_id,
        kind=row.kind,
        title=row.title,
        source=row.source,
        image_sha256=row.image_sha256,
        width=row.width,
        height=row.height,
        created_at=_aware(row.created_at),
        deleted_at=_aware(row.deleted_at),
    )


def _text_record(row: TextEntryRow) -> TextEntryRecord:
    return TextEntryRecord(id=row.id, brand_id=row.brand_id, asset_id=row.asset_id, kind=row.kind, text=row.text)


# ---------------------------------------------------------------------------------------------------------- validation
def normalize_name(name: str) -> str:
    """Key for case-insensitive name matching: NFKC, casefolded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _clean_text(value: Any, what: str, max_len: int = _MAX_TEXT, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string, got {type(value).__name__}")
    text = " ".join(unicodedata.normalize("NFKC", value).split())
    if not text:
        if required:
            raise Invalid(f"{what} must not be empty")
        return None
    if len(text) > max_len:
        raise Invalid(f"{what} is {len(text)} characters; the limit is {max_len}")
    return text


def _clean_id(value: Any, what: str, max_len: int = 200) -> str:
    """External identifiers are kept verbatim (only surrounding whitespace is stripped)."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{what} must be a non-empty string")
    if len(value.strip()) > max_len:
        raise Invalid(f"{what} is longer than {max_len} characters")
    return value.strip()


def _clean_list(values: Iterable[str] | None, what: str, exclude_keys: Iterable[str] = ()) -> list[str]:
    """Strip, drop empties and case-insensitive duplicates (and anything in ``exclude_keys``), keep order."""
    if values is None:
        return []
    if isinstance(values, str):
        raise Invalid(f"{what} must be a list of strings, not a single string")
    seen = set(exclude_keys)
    out = []
    for value in values:
        text = _clean_text(value, f"{what} entry", _MAX_NAME, required=False)
        if text is None:
            continue
        key = normalize_name(text)
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out


def _clean_price(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"min_price must be a number, got {type(value).__name__}")
    price = float(value)
    if not math.isfinite(price) or price < 0:
        raise Invalid(f"min_price must be a finite number >= 0, got {value}")
    return price


def _clean_currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY_RE.match(value.strip().upper()):
        raise Invalid(f"currency must be a 3-letter ISO 4217 code, got {value!r}")
    return value.strip().upper()


def _check_choice(value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise Invalid(f"{what} must be one of {list(allowed)}, got {value!r}")
    return value


def _to_jsonable(value: Any, what: str) -> Any:
    """Plain JSON types only: numpy scalars/arrays become Python values; bytes are refused (store hashes instead)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise Invalid(f"{what} contains raw bytes; store image hashes, not image data")
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v, what) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v, what) for v in value]
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist(), what)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise Invalid(f"{what} contains a {type(value).__name__}, which is not JSON-serialisable")


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    ids = list(ids)
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


# ---------------------------------------------------------------------------------------------------------- registry
class Registry:
    """Typed access to the registry database."""

    def __init__(self, database_url: str = "sqlite:///registry.db", *, image_config: ImageConfig | None = None) -> None:
        """Connect (creating the tables if missing).

        Args:
            database_url: SQLAlchemy URL. SQLite files get WAL journaling, foreign keys and a busy timeout; their
                parent folder is created. ``sqlite://`` is an in-memory database shared by all sessions.
            image_config: Limits and stored size for asset images.

        Raises:
            RegistryError: The database holds a registry of another schema version.
        """
        self.url = make_url(database_url)
        self.image_config = image_config or ImageConfig()
        self.engine = self._create_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        Base.metadata.create_all(self.engine)
        self._init_meta()

    def _create_engine(self, database_url: str) -> Engine:
        is_sqlite = self.url.get_backend_name() == "sqlite"
        in_memory = is_sqlite and self.url.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {}
        if in_memory:
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif is_sqlite:
            Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        engine = create_engine(database_url, **kwargs)
        if is_sqlite:
            event.listen(engine, "connect", _configure_sqlite_connection)
        return engine

    def _init_meta(self) -> None:
        for attempt in range(2):
            try:
                with self.transaction() as session:
                    schema = session.get(MetaRow, "schema_version")
                    if schema is None:
                        session.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
                    elif int(schema.value) != SCHEMA_VERSION:
                        raise RegistryError(
                            f"{self.url.render_as_string(hide_password=True)} holds registry schema "
                            f"v{schema.value}; this code reads v{SCHEMA_VERSION}"
                        )
                    if session.get(MetaRow, "index_version") is None:
                        session.add(MetaRow(key="index_version", value="0"))
                return
            except IntegrityError:
                if attempt:  # another process created the rows between our read and our insert; re-read once
                    raise

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on error; pass it as ``session=``."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def _scope(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.transaction() as own:
                yield own

    # ------------------------------------------------------------------------------------------------------ meta
    def get_index_version(self, session: Session | None = None) -> int:
        """Current index version (0 for a new registry)."""
        with self._scope(session) as s:
            return int(s.execute(select(MetaRow.value).where(MetaRow.key == "index_version")).scalar_one())

    def bump_index_version(self, session: Session | None = None) -> int:
        """Increment the index version atomically and return the new value."""
        with self._scope(session) as s:
            # An UPDATE first takes the write lock (SQLite) / row lock (PostgreSQL): concurrent bumps serialise.
            s.execute(
                update(MetaRow)
                .where(MetaRow.key == "index_version")
                .values(value=cast(cast(MetaRow.value, Integer) + 1, String))
            )
            return int(s.execute(select(MetaRow.value).where(MetaRow.key == "index_version")).scalar_one())

    def get_meta(self, key: str, session: Session | None = None) -> str | None:
        """A raw meta value, or None."""
        with self._scope(session) as s:
            row = s.get(MetaRow, key)
            return row.value if row else None

    # ------------------------------------------------------------------------------------------------------ brands
    def add_brand(
        self,
        name: str,
        aliases: Sequence[str] = (),
        authorized_sellers: Sequence[str] = (),
        min_price: float | None = None,
        currency: str = "USD",
        *,
        session: Session | None = None,
    ) -> BrandRecord:
        """Create a brand and its ``name``/``alias`` text entries.

        Raises:
            Invalid: A field is malformed. Conflict: a brand with the same name (ignoring case) exists.
        """
        name = _clean_text(name, "brand name", _MAX_NAME)
        key = normalize_name(name)
        aliases = _clean_list(aliases, "aliases", exclude_keys=[key])
        sellers = _clean_list(authorized_sellers, "authorized_sellers")
        price = _clean_price(min_price)
        currency = _clean_currency(currency)
        with self._scope(session) as s:
            existing = s.execute(select(BrandRow.id).where(BrandRow.name_key == key)).scalar_one_or_none()
            if existing is not None:
                raise Conflict(f"brand {name!r} already exists (id {existing})", existing_id=existing)
            row = BrandRow(
                name=name, name_key=key, aliases=aliases, authorized_sellers=sellers, min_price=price, currency=currency
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise Conflict(f"brand {name!r} already exists") from None
            s.add(TextEntryRow(brand_id=row.id, kind="name", text=name))
            s.add_all(TextEntryRow(brand_id=row.id, kind="alias", text=alias) for alias in aliases)
            s.flush()
            return _brand_record(row)

    def update_brand(
        self,
        brand_id: int,
        *,
        aliases: Sequence[str] | None = None,
        authorized_sellers: Sequence[str] | None = None,
        min_price: float | None | Unset = UNSET,
        currency: str | None = None,
        session: Session | None = None,
    ) -> tuple[BrandRecord, list[int], list[TextEntryRecord]]:
        """Change a brand's aliases, authorised sellers, price floor or currency; ``None`` / ``UNSET`` keep a field.

        ``aliases`` replaces the whole list: alias entries no longer named are deleted, new ones added, unchanged
        ones kept with their cached vectors. ``min_price=None`` removes the floor.

        Returns:
            ``(brand, deleted alias entry ids, added alias entries)`` for the caller to update the text index.

        Raises:
            NotFound: No such brand. Invalid: a field is malformed (nothing is changed).
        """
        sellers = None if authorized_sellers is None else _clean_list(authorized_sellers, "authorized_sellers")
        price = UNSET if min_price is UNSET else _clean_price(min_price)
        currency = None if currency is None else _clean_currency(currency)
        with self._scope(session) as s:
            brand = self._brand_row(s, brand_id)
            deleted: list[int] = []
            added: list[TextEntryRow] = []
            if aliases is not None:
                wanted = _clean_list(aliases, "aliases", exclude_keys=[brand.name_key])
                entries = s.execute(select(TextEntryRow).where(TextEntryRow.brand_id == brand_id,
                                                               TextEntryRow.kind == "alias")).scalars().all()
                kept = {e.text for e in entries if e.text in wanted}
                deleted = [e.id for e in entries if e.text not in kept]
                self._delete_text_rows(s, deleted)
                added = [TextEntryRow(brand_id=brand_id, kind="alias", text=a) for a in wanted if a not in kept]
                s.add_all(added)
                brand.aliases = wanted  # reassign: JSON columns do not track in-place edits
            if sellers is not None:
                brand.authorized_sellers = sellers
            if price is not UNSET:
                brand.min_price = price
            if currency is not None:
                brand.currency = currency
            s.flush()
            counts = self._asset_counts(s, brand_id).get(brand_id, (0, 0))
            return _brand_record(brand, *counts), deleted, [_text_record(r) for r in added]

    def _brand_row(self, s: Session, brand_id: int) -> BrandRow:
        row = s.get(BrandRow, brand_id)
        if row is None:
            raise NotFound(f"brand {brand_id} not found")
        return row

    def _asset_counts(self, s: Session, brand_id: int | None = None) -> dict[int, tuple[int, int]]:
        active = AssetRow.deleted_at.is_(None)
        stmt = select(
            AssetRow.brand_id,
            func.sum(case((and_(active, AssetRow.kind == "authentic"), 1), else_=0)),
            func.sum(case((and_(active, AssetRow.kind == "known_fake"), 1), else_=0)),
        ).group_by(AssetRow.brand_id)
        if brand_id is not None:
            stmt = stmt.where(AssetRow.brand_id == brand_id)
        return {b: (int(a or 0), int(f or 0)) for b, a, f in s.execute(stmt)}

    def get_brand(self, brand_id: int, *, session: Session | None = None) -> BrandRecord:
        """A brand with its active asset counts. Raises NotFound."""
        with self._scope(session) as s:
            row = self._brand_row(s, brand_id)
            return _brand_record(row, *self._asset_counts(s, brand_id).get(brand_id, (0, 0)))

    def list_brands(self, *, session: Session | None = None) -> list[BrandRecord]:
        """All brands by id, with ``n_authentic`` / ``n_known_fakes`` counts of active assets."""
        with self._scope(session) as s:
            counts = self._asset_counts(s)
            rows = s.execute(select(BrandRow).order_by(BrandRow.id)).scalars()
            return [_brand_record(r, *counts.get(r.id, (0, 0))) for r in rows]

    def find_brand_by_name(
        self, name: str, *, include_aliases: bool = True, session: Session | None = None
    ) -> BrandRecord | None:
        """The brand named ``name`` ignoring case/spacing; else (optionally) the first brand with that alias."""
        key = normalize_name(name) if isinstance(name, str) else ""
        if not key:
            return None
        with self._scope(session) as s:
            row = s.execute(select(BrandRow).where(BrandRow.name_key == key)).scalar_one_or_none()
            if row is None and include_aliases:
                # Aliases are a JSON list (portable, not indexable); their text entries are one row each to scan.
                aliases = s.execute(
                    select(TextEntryRow.brand_id, TextEntryRow.text)
                    .where(TextEntryRow.kind == "alias")
                    .order_by(TextEntryRow.brand_id, TextEntryRow.id)
                )
                owner = next((b for b, text in aliases if normalize_name(text) == key), None)
                row = s.get(BrandRow, owner) if owner is not None else None
            if row is None:
                return None
            return _brand_record(row, *self._asset_counts(s, row.id).get(row.id, (0, 0)))

    # ------------------------------------------------------------------------------------------------------ assets
    def add_asset(
        self,
        brand_id: int,
        kind: str,
        image: Any,
        title: str | None = None,
        source: str | None = None,
        *,
        session: Session | None = None,
    ) -> AssetRecord:
        """Store a reference image (decoded, checked and re-encoded as PNG) and its ``title`` text entry.

        Args:
            brand_id: Owning brand.
            kind: ``"authentic"`` or ``"known_fake"``.
            image: Encoded bytes, a PIL image, or a :class:`~indexes.images.PreparedImage` (already checked and
                re-encoded by :func:`~indexes.images.prepare_image`).
            title: Optional listing/product title, indexed as text.
            source: Optional provenance (URL, dataset name).

        Raises:
            NotFound: No such brand. Invalid: bad kind/title or refused image. Conflict: the same image is already
            an active asset of this brand and kind.
        """
        kind = _check_choice(kind, ASSET_KINDS, "asset kind")
        title = _clean_text(title, "title", required=False)
        source = _clean_text(source, "source", 2000, required=False)
        if isinstance(image, PreparedImage):
            prepared = image
        else:
            try:
                _, prepared = prepare_image(image, self.image_config)
            except ImageError as exc:
                raise Invalid(f"image refused: {exc.reason}") from None
        digest = prepared.sha256
        with self._scope(session) as s:
            self._brand_row(s, brand_id)
            duplicate = s.execute(
                select(AssetRow.id).where(
                    AssetRow.brand_id == brand_id,
                    AssetRow.kind == kind,
                    AssetRow.image_sha256 == digest,
                    AssetRow.deleted_at.is_(None),
                )
            ).scalar_one_or_none()
            if duplicate is not None:
                raise Conflict(
                    f"this image is already {kind} asset {duplicate} of brand {brand_id}", existing_id=duplicate
                )
            row = AssetRow(
                brand_id=brand_id,
                kind=kind,
                title=title,
                source=source,
                image_sha256=digest,
                image_bytes=prepared.png,
                width=prepared.width,
                height=prepared.height,
            )
            s.add(row)
            s.flush()
            if title:
                s.add(TextEntryRow(brand_id=brand_id, asset_id=row.id, kind="title", text=title))
                s.flush()
            return _asset_record(row)

    def get_asset(self, asset_id: int, *, session: Session | None = None) -> AssetRecord:
        """An asset, deleted or not (see ``deleted_at``). Raises NotFound."""
        with self._scope(session) as s:
            row = s.get(AssetRow, asset_id)
            if row is None:
                raise NotFound(f"asset {asset_id} not found")
            return _asset_record(row)

    def get_asset_image(self, asset_id: int, *, session: Session | None = None) -> bytes:
        """The stored PNG bytes of an asset. Raises NotFound."""
        with self._scope(session) as s:
            data = s.execute(select(AssetRow.image_bytes).where(AssetRow.id == asset_id)).scalar_one_or_none()
            if data is None:
                raise NotFound(f"asset {asset_id} not found")
            return bytes(data)

    def get_asset_images(self, asset_ids: Sequence[int], *, session: Session | None = None) -> dict[int, bytes]:
        """Stored PNG bytes for several assets (missing ids are absent from the result)."""
        out: dict[int, bytes] = {}
        with self._scope(session) as s:
            for chunk in _chunks(asset_ids):
                for asset_id, data in s.execute(
                    select(AssetRow.id, AssetRow.image_bytes).where(AssetRow.id.in_(chunk))
                ):
                    out[asset_id] = bytes(data)
        return out

    def list_assets(
        self,
        kind: str | None = None,
        brand_id: int | None = None,
        *,
        include_deleted: bool = False,
        session: Session | None = None,
    ) -> list[AssetRecord]:
        """Assets by id; active only unless ``include_deleted``."""
        if kind is not None:
            _check_choice(kind, ASSET_KINDS, "asset kind")
        stmt = select(AssetRow).order_by(AssetRow.id)
        if kind is not None:
            stmt = stmt.where(AssetRow.kind == kind)
        if brand_id is not None:
            stmt = stmt.where(AssetRow.brand_id == brand_id)
        if not include_deleted:
            stmt = stmt.where(AssetRow.deleted_at.is_(None))
        with self._scope(session) as s:
            return [_asset_record(r) for r in s.execute(stmt).scalars()]

    def delete_asset(self, asset_id: int, *, session: Session | None = None) -> bool:
        """Soft-delete an asset and hard-delete its title entry and cached vectors.

        Returns:
            True if it was active, False if it was already deleted. Raises NotFound for an unknown id.
        """
        with self._scope(session) as s:
            row = s.get(AssetRow, asset_id)
            if row is None:
                raise NotFound(f"asset {asset_id} not found")
            if row.deleted_at is not None:
                return False
            row.deleted_at = _utcnow()
            entry_ids = list(s.execute(select(TextEntryRow.id).where(TextEntryRow.asset_id == asset_id)).scalars())
            self._delete_text_rows(s, entry_ids)
            s.execute(delete(VectorRow).where(VectorRow.owner == "asset", VectorRow.owner_id == asset_id))
            s.flush()
            return True

    def map_asset_brands(self, kind: str | None = None, *, session: Session | None = None) -> dict[int, int]:
        """``{asset_id: brand_id}`` of the active assets (of one kind) - exactly the ids an image index holds."""
        stmt = select(AssetRow.id, AssetRow.brand_id).where(AssetRow.deleted_at.is_(None))
        if kind is not None:
            stmt = stmt.where(AssetRow.kind == _check_choice(kind, ASSET_KINDS, "asset kind"))
        with self._scope(session) as s:
            return {a: b for a, b in s.execute(stmt)}

    # ------------------------------------------------------------------------------------------------------ texts
    def add_text_entry(
        self,
        brand_id: int,
        text: str,
        kind: str = "alias",
        asset_id: int | None = None,
        *,
        session: Session | None = None,
    ) -> TextEntryRecord:
        """Add an alias (also appended to ``brands.aliases``) or the title of an untitled asset.

        Brand-name entries are created by :meth:`add_brand` only.

        Raises:
            NotFound: No such brand/asset. Invalid: bad kind or text, or the asset belongs to another brand or is
            deleted. Conflict: the alias exists already or the asset has a title.
        """
        _check_choice(kind, TEXT_KINDS, "text kind")
        text = _clean_text(text, "text")
        with self._scope(session) as s:
            brand = self._brand_row(s, brand_id)
            if kind == "name":
                raise Invalid("brand name entries are created with the brand; add an alias instead")
            if kind == "alias":
                if asset_id is not None:
                    raise Invalid("an alias belongs to a brand, not to an asset")
                key = normalize_name(text)
                if key == brand.name_key or key in {normalize_name(a) for a in brand.aliases or ()}:
                    raise Conflict(f"{text!r} is already a name or alias of brand {brand_id}")
                brand.aliases = [*(brand.aliases or ()), text]  # reassign: JSON columns do not track in-place edits
            else:
                asset = self._active_asset_of(s, brand_id, asset_id)
                if asset.title:
                    raise Conflict(f"asset {asset_id} already has a title; update its entry instead")
                asset.title = text
            row = TextEntryRow(brand_id=brand_id, asset_id=asset_id, kind=kind, text=text)
            s.add(row)
            s.flush()
            return _text_record(row)

    def _active_asset_of(self, s: Session, brand_id: int, asset_id: int | None) -> AssetRow:
        if asset_id is None:
            raise Invalid("a title entry needs asset_id")
        asset = s.get(AssetRow, asset_id)
        if asset is None:
            raise NotFound(f"asset {asset_id} not found")
        if asset.brand_id != brand_id:
            raise Invalid(f"asset {asset_id} belongs to brand {asset.brand_id}, not {brand_id}")
        if asset.deleted_at is not None:
            raise Invalid(f"asset {asset_id} is deleted")
        return asset

    def get_text_entry(self, entry_id: int, *, session: Session | None = None) -> TextEntryRecord:
        """A text entry. Raises NotFound."""
        with self._scope(session) as s:
            row = s.get(TextEntryRow, entry_id)
            if row is None:
                raise NotFound(f"text entry {entry_id} not found")
            return _text_record(row)

    def list_text_entries(
        self,
        brand_id: int | None = None,
        asset_id: int | None = None,
        *,
        ids: Sequence[int] | None = None,
        session: Session | None = None,
    ) -> list[TextEntryRecord]:
        """Text entries by id, optionally filtered by brand, asset or an explicit id list."""
        stmt = select(TextEntryRow).order_by(TextEntryRow.id)
        if brand_id is not None:
            stmt = stmt.where(TextEntryRow.brand_id == brand_id)
        if asset_id is not None:
            stmt = stmt.where(TextEntryRow.asset_id == asset_id)
        with self._scope(session) as s:
            if ids is None:
                return [_text_record(r) for r in s.execute(stmt).scalars()]
            out = []
            for chunk in _chunks(ids):
                out.extend(_text_record(r) for r in s.execute(stmt.where(TextEntryRow.id.in_(chunk))).scalars())
            return sorted(out, key=lambda r: r.id)

    def update_text_entry(self, entry_id: int, text: str, *, session: Session | None = None) -> TextEntryRecord:
        """Change an entry's text, writing through to the brand name, alias list or asset title.

        Cached vectors of the entry are dropped (the text changed). Raises NotFound, Invalid or Conflict.
        """
        text = _clean_text(text, "text")
        with self._scope(session) as s:
            row = s.get(TextEntryRow, entry_id)
            if row is None:
                raise NotFound(f"text entry {entry_id} not found")
            if row.text == text:
                return _text_record(row)
            brand = self._brand_row(s, row.brand_id)
            key = normalize_name(text)
            if row.kind == "name":
                clash = s.execute(
                    select(BrandRow.id).where(BrandRow.name_key == key, BrandRow.id != brand.id)
                ).scalar_one_or_none()
                if clash is not None:
                    raise Conflict(f"brand {text!r} already exists (id {clash})", existing_id=clash)
                brand.name, brand.name_key = text, key
            elif row.kind == "alias":
                old_key = normalize_name(row.text)
                others = {normalize_name(a) for a in brand.aliases or () if normalize_name(a) != old_key}
                if key == brand.name_key or key in others:
                    raise Conflict(f"{text!r} is already a name or alias of brand {brand.id}")
                brand.aliases = [text if normalize_name(a) == old_key else a for a in brand.aliases or ()]
            else:
                asset = s.get(AssetRow, row.asset_id)
                if asset is not None:
                    asset.title = text
            row.text = text
            s.execute(delete(VectorRow).where(VectorRow.owner == "text", VectorRow.owner_id == entry_id))
            try:
                s.flush()
            except IntegrityError:
                raise Conflict(f"brand {text!r} already exists") from None
            return _text_record(row)

    def delete_text_entry(self, entry_id: int, *, session: Session | None = None) -> TextEntryRecord:
        """Delete an alias or title entry (removing it from the brand's aliases / the asset's title).

        Raises:
            NotFound: No such entry. Invalid: it is a brand-name entry.
        """
        with self._scope(session) as s:
            row = s.get(TextEntryRow, entry_id)
            if row is None:
                raise NotFound(f"text entry {entry_id} not found")
            if row.kind == "name":
                raise Invalid("a brand's name entry cannot be deleted")
            record = _text_record(row)
            if row.kind == "alias":
                brand = self._brand_row(s, row.brand_id)
                old_key = normalize_name(row.text)
                brand.aliases = [a for a in brand.aliases or () if normalize_name(a) != old_key]
            elif row.asset_id is not None:
                asset = s.get(AssetRow, row.asset_id)
                if asset is not None:
                    asset.title = None
            self._delete_text_rows(s, [entry_id])
            return record

    def _delete_text_rows(self, s: Session, entry_ids: list[int]) -> None:
        for chunk in _chunks(entry_ids):
            s.execute(delete(VectorRow).where(VectorRow.owner == "text", VectorRow.owner_id.in_(chunk)))
            s.execute(delete(TextEntryRow).where(TextEntryRow.id.in_(chunk)))
        s.flush()

    def map_text_brands(self, *, session: Session | None = None) -> dict[int, int]:
        """``{text_entry_id: brand_id}`` of all entries - exactly the ids the text index holds."""
        with self._scope(session) as s:
            return {e: b for e, b in s.execute(select(TextEntryRow.id, TextEntryRow.brand_id))}

    # ------------------------------------------------------------------------------------------------------ vectors
    def store_vectors(
        self,
        owner: str,
        vectors: Mapping[int, np.ndarray],
        model_id: str,
        *,
        session: Session | None = None,
    ) -> None:
        """Cache embeddings ``{owner_id: vector}`` computed by ``model_id`` (replacing older ones)."""
        _check_choice(owner, VECTOR_OWNERS, "vector owner")
        if not vectors:
            return
        with self._scope(session) as s:
            ids = list(vectors)
            for chunk in _chunks(ids):
                s.execute(
                    delete(VectorRow).where(
                        VectorRow.owner == owner, VectorRow.model_id == model_id, VectorRow.owner_id.in_(chunk)
                    )
                )
            s.add_all(
                VectorRow(
                    owner=owner,
                    owner_id=int(i),
                    model_id=model_id,
                    vector=np.ascontiguousarray(vectors[i], dtype="<f4").tobytes(),
                )
                for i in ids
            )
            s.flush()

    def load_vectors(
        self, owner: str, owner_ids: Sequence[int], model_id: str, *, session: Session | None = None
    ) -> dict[int, np.ndarray]:
        """Cached embeddings by ``model_id`` for ``owner_ids`` (ids without a cached vector are absent)."""
        _check_choice(owner, VECTOR_OWNERS, "vector owner")
        out: dict[int, np.ndarray] = {}
        with self._scope(session) as s:
            for chunk in _chunks([int(i) for i in owner_ids]):
                rows = s.execute(
                    select(VectorRow.owner_id, VectorRow.vector).where(
                        VectorRow.owner == owner, VectorRow.model_id == model_id, VectorRow.owner_id.in_(chunk)
                    )
                )
                for owner_id, blob in rows:
                    out[owner_id] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return out

    # ------------------------------------------------------------------------------------------------------ scores
    def record_score(
        self,
        listing_id: str,
        *,
        request: Mapping[str, Any],
        image_sha256s: Sequence[str],
        risk: float,
        decision: str,
        brand_id: int | None,
        signals: Mapping[str, Any],
        model_version: str,
        index_version: int,
        session: Session | None = None,
    ) -> int:
        """Store one scoring result (the request without image bytes) and return its row id.

        Raises:
            Invalid: Bytes or non-JSON values in ``request``/``signals``, a malformed hash, a non-finite risk.
            NotFound: ``brand_id`` does not exist.
        """
        listing_id = _clean_id(listing_id, "listing_id")
        if not isinstance(request, Mapping):
            raise Invalid("request must be a mapping")
        request_json = _to_jsonable(request, "request")
        signals_json = _to_jsonable(signals, "signals")
        hashes = list(image_sha256s)
        bad = [h for h in hashes if not isinstance(h, str) or not _SHA256_RE.match(h)]
        if bad:
            raise Invalid(f"image_sha256s must be lowercase hex SHA-256 digests, got {bad[:3]}")
        if isinstance(risk, bool) or not isinstance(risk, (int, float, np.floating)) or not math.isfinite(risk):
            raise Invalid(f"risk must be a finite number, got {risk!r}")
        decision = _clean_text(decision, "decision", 32)
        with self._scope(session) as s:
            if brand_id is not None:
                self._brand_row(s, brand_id)
            row = ScoredListingRow(
                listing_id=listing_id,
                request=request_json,
                image_sha256s=hashes,
                risk=float(risk),
                decision=decision,
                brand_id=brand_id,
                signals=signals_json,
                model_version=_clean_text(model_version, "model_version", 200),
                index_version=int(index_version),
            )
            s.add(row)
            s.flush()
            return row.id

    def add_feedback(
        self,
        listing_id: str,
        verdict: str,
        *,
        brand_id: int | None = None,
        reviewer: str | None = None,
        note: str | None = None,
        session: Session | None = None,
    ) -> int:
        """Record a reviewer's verdict on a listing; returns the feedback id. Raises Invalid or NotFound."""
        listing_id = _clean_id(listing_id, "listing_id")
        verdict = _check_choice(verdict, FEEDBACK_VERDICTS, "verdict")
        reviewer = _clean_text(reviewer, "reviewer", 200, required=False)
        if note is not None and not isinstance(note, str):
            raise Invalid("note must be a string")
        with self._scope(session) as s:
            if brand_id is not None:
                self._brand_row(s, brand_id)
            row = FeedbackRow(listing_id=listing_id, verdict=verdict, brand_id=brand_id, reviewer=reviewer, note=note)
            s.add(row)
            s.flush()
            return row.id

    def export_feedback(self, since: datetime | None = None, *, session: Session | None = None) -> list[dict[str, Any]]:
        """Feedback rows joined with the latest scored request of the same listing, oldest first.

        Each dict has ``feedback_id, listing_id, verdict, brand_id, brand_name, reviewer, note, created_at`` and, when
        the listing was scored, ``request, image_sha256s, risk, decision, scored_brand_id, signals, model_version,
        index_version, scored_at`` (None otherwise): what a retraining job needs to rebuild the labelled example.
        """
        latest = (
            select(ScoredListingRow.listing_id, func.max(ScoredListingRow.id).label("scored_id"))
            .group_by(ScoredListingRow.listing_id)
            .subquery()
        )
        stmt = (
            select(FeedbackRow, ScoredListingRow, BrandRow.name)
            .outerjoin(latest, latest.c.listing_id == FeedbackRow.listing_id)
            .outerjoin(ScoredListingRow, ScoredListingRow.id == latest.c.scored_id)
            .outerjoin(BrandRow, BrandRow.id == FeedbackRow.brand_id)
            .order_by(FeedbackRow.id)
        )
        if since is not None:
            # Stored times are UTC; SQLite compares them as text, so the bound value must be UTC as well.
            since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
            stmt = stmt.where(FeedbackRow.created_at >= since)
        out = []
        with self._scope(session) as s:
            for fb, scored, brand_name in s.execute(stmt):
                item: dict[str, Any] = {
                    "feedback_id": fb.id,
                    "listing_id": fb.listing_id,
                    "verdict": fb.verdict,
                    "brand_id": fb.brand_id,
                    "brand_name": brand_name,
                    "reviewer": fb.reviewer,
                    "note": fb.note,
                    "created_at": _aware(fb.created_at).isoformat(),
                }
                item.update(
                    {
                        "request": scored.request if scored else None,
                        "image_sha256s": scored.image_sha256s if scored else None,
                        "risk": scored.risk if scored else None,
                        "decision": scored.decision if scored else None,
                        "scored_brand_id": scored.brand_id if scored else None,
                        "signals": scored.signals if scored else None,
                        "model_version": scored.model_version if scored else None,
                        "index_version": scored.index_version if scored else None,
                        "scored_at": _aware(scored.created_at).isoformat() if scored else None,
                    }
                )
                out.append(item)
        json.dumps(out)  # the contract is "plain JSON"; fail here rather than in the caller's writer
        return out


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; SQLite leaves foreign keys off unless asked on every connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()
