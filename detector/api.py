"""The HTTP contract: request/response models, limits, input decoding, error bodies and the gate middleware.

Everything here is independent of the model: :mod:`detector.service` wires it to the scorer and the catalog. The
pydantic models are the API schema (BentoML publishes them in ``/docs.json``) and are validated twice on purpose:
once by :class:`ApiGate` in front of the app, which answers bad input with this API's error body, and once by
BentoML itself (cheap; it never fails after the gate passed a body).

Every error the API itself produces has the body ``{"error": {"code": ..., "message": ..., "field": ...}}``:

======  =====================  ===========================================================================
status  code                   when
======  =====================  ===========================================================================
400     ``malformed_json``     the body is not JSON
401     ``unauthorized``       no, malformed or unknown bearer token
403     ``forbidden``          the token's role may not use the route
404     ``not_found``          an unknown ``brand_id`` / ``asset_id``
409     ``conflict``           a brand name or an asset image that already exists
413     ``body_too_large``     the body is larger than ``max_body_bytes`` (checked before it is parsed)
415     ``unsupported_media``  a ``Content-Type`` other than ``application/json``
422     ``invalid_field``      a field has the wrong type, is missing, out of range or too long
422     ``invalid_base64``     an image is not valid base64
422     ``invalid_image``      an image is not an allowed format, truncated, too large or a decompression bomb
500     ``internal``           a bug; the server log has the traceback
503     ``not_ready``          the service has not finished starting (or ``shutting_down``)
======  =====================  ===========================================================================
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.responses import JSONResponse

from detector.auth import BRAND, MODERATOR, AuthError, TokenStore
from detector.batching import BatcherClosed
from detector.listing import Listing
from indexes.images import ImageError, decode_image, logo_box
from indexes.registry import Conflict, Invalid, NotFound

__all__ = [
    "MAX_IMAGES",
    "MAX_LISTINGS",
    "ROUTES",
    "ApiError",
    "ApiGate",
    "AssetCreated",
    "AssetDeleteRequest",
    "AssetDeleted",
    "AssetRequest",
    "BrandCreated",
    "BrandListRequest",
    "BrandListResponse",
    "BrandOut",
    "BrandRequest",
    "BrandUpdateRequest",
    "BrandUpdated",
    "DecodedListing",
    "ErrorResponse",
    "EvidenceOut",
    "FeedbackCreated",
    "FeedbackRequest",
    "ListingIn",
    "Route",
    "ScoreBatchRequest",
    "ScoreBatchResponse",
    "ScoreRequest",
    "ScoreResponse",
    "ServiceConfig",
    "decode_b64_image",
    "decode_listing",
    "error_response",
    "reference_warnings",
    "translate_errors",
    "validation_error",
]

log = logging.getLogger(__name__)
access_log = logging.getLogger("detector.access")

# ---------------------------------------------------------------------------------------------------------- limits
MAX_IMAGES = 8  # photos per listing
MAX_LISTINGS = 64  # listings per /v1/score_batch request
MAX_ID_CHARS = 200  # listing, seller and reviewer ids (the registry's limit)
MAX_NAME_CHARS = 200  # brand names and aliases (the registry's limit)
MAX_TITLE_CHARS = 500  # listing and asset titles
MAX_DESCRIPTION_CHARS = 10_000  # listing descriptions
MAX_NOTE_CHARS = 5_000  # reviewer notes and asset sources
MAX_ALIASES = 100
MAX_SELLERS = 1_000


@dataclass(frozen=True)
class ServiceConfig:
    """Runtime settings of the HTTP service; :meth:`from_env` reads the ``DETECTOR_*`` variables named here."""

    home: Path = Path("var/home")  # DETECTOR_HOME: registry database, FAISS indexes, tokens.json
    model: str = "default"  # DETECTOR_MODEL: model directory, "default" or a BentoML model tag
    index_factory: str = "IDMap2,Flat"  # DETECTOR_INDEX_FACTORY: FAISS factory string for new indexes
    max_body_bytes: int = 32 * 1024 * 1024  # DETECTOR_MAX_BODY_BYTES: larger requests get 413 before parsing
    max_image_bytes: int = 10 * 1024 * 1024  # DETECTOR_MAX_IMAGE_BYTES: one decoded (not base64) image file
    max_pixels: int = 4096 * 4096  # DETECTOR_MAX_PIXELS: width*height, read from the header before decoding
    max_side: int = 1024  # DETECTOR_MAX_SIDE: photos are downscaled to this longest side once decoded
    batch_max_listings: int = 32  # DETECTOR_BATCH_MAX_LISTINGS: listings per model call
    batch_max_wait_ms: float = 5.0  # DETECTOR_BATCH_MAX_WAIT_MS: how long a batch waits for company
    torch_threads: int | None = None  # DETECTOR_TORCH_THREADS: intra-op threads (None: torch's default)
    ready_cache_s: float = 10.0  # DETECTOR_READY_CACHE_S: reuse a passed Catalog.check() this long
    # DETECTOR_KEEP_LISTING_IMAGES: keep scored photos in <home>/listing-images so feedback can become training data
    keep_listing_images: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Defaults overridden by ``DETECTOR_<FIELD>`` environment variables.

        Raises:
            ValueError: A variable that does not parse as its field's type.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"DETECTOR_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            default = f.default
            try:
                if isinstance(default, bool):  # before int: bool is an int subclass
                    values[f.name] = _parse_bool(raw)
                elif isinstance(default, Path):
                    values[f.name] = Path(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                elif isinstance(default, int) or f.name == "torch_threads":
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise ValueError(f"DETECTOR_{f.name.upper()}={raw!r} is not a valid {f.name}") from None
        return cls(**values)


def _parse_bool(raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); anything else is a ValueError."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


# ---------------------------------------------------------------------------------------------------------- types
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_CHARS)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_ID_CHARS)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)]
Alias = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NAME_CHARS)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TITLE_CHARS)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_CHARS)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NOTE_CHARS)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Currency = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")]
RowId = Annotated[int, Field(ge=1)]
Base64Image = Annotated[str, Field(min_length=1, description="Base64 of a JPEG, PNG, WebP, GIF or BMP file")]


class _Body(BaseModel):
    # strict: "12" is not a price and 1.0 is not an id; extra="forbid": a misspelt field is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------------------------------------------------- requests
class ListingIn(_Body):
    """A marketplace listing to score."""

    listing_id: Identifier = Field(description="The marketplace's listing id (echoed back, used to join feedback)")
    title: Title = ""
    description: Description = ""
    price: Price | None = Field(None, description="Listing price in `currency`; null when unknown")
    currency: Currency | None = Field(None, description="ISO 4217 code, e.g. USD")
    seller_id: ShortText | None = None
    images_b64: Annotated[list[Base64Image], Field(max_length=MAX_IMAGES)] = Field(
        default_factory=list, description=f"0 to {MAX_IMAGES} photos, base64-encoded"
    )


class ScoreRequest(ListingIn):
    """Body of ``/v1/score``: one listing."""


class ScoreBatchRequest(_Body):
    """Body of ``/v1/score_batch``."""

    listings: Annotated[list[ListingIn], Field(max_length=MAX_LISTINGS)] = Field(
        description=f"Up to {MAX_LISTINGS} listings; results come back in the same order"
    )


class BrandRequest(_Body):
    """Body of ``/v1/brands``: a brand to register."""

    name: Name
    aliases: Annotated[list[Alias], Field(max_length=MAX_ALIASES)] = Field(default_factory=list)
    authorized_sellers: Annotated[list[ShortText], Field(max_length=MAX_SELLERS)] = Field(
        default_factory=list, description="Seller ids allowed to sell the brand (never blocked, at most reviewed)"
    )
    min_price: Price | None = Field(None, description="Price floor of genuine goods, in `currency`")
    currency: Currency = "USD"


class BrandUpdateRequest(_Body):
    """Body of ``/v1/brands/update``: the fields to change; a field left out keeps its value.

    ``aliases`` and ``authorized_sellers`` replace the whole list (send ``[]`` to clear); ``"min_price": null``
    removes the price floor.
    """

    brand_id: RowId
    aliases: Annotated[list[Alias], Field(max_length=MAX_ALIASES)] | None = None
    authorized_sellers: Annotated[list[ShortText], Field(max_length=MAX_SELLERS)] | None = Field(
        None, description="Seller ids allowed to sell the brand (replaces the list)"
    )
    min_price: Price | None = Field(None, description="Price floor of genuine goods, in `currency`; null removes it")
    currency: Currency | None = None


class BrandListRequest(_Body):
    """Body of ``/v1/brands/list``: ``{}``."""


class AssetRequest(_Body):
    """Body of ``/v1/assets``: one reference image of a brand."""

    brand_id: RowId
    kind: Literal["authentic", "known_fake"]
    image_b64: Base64Image
    title: Title | None = None
    source: Note | None = Field(None, description="Provenance, e.g. a URL or a case number")


class AssetDeleteRequest(_Body):
    """Body of ``/v1/assets/delete``."""

    asset_id: RowId


class FeedbackRequest(_Body):
    """Body of ``/v1/feedback``: a moderator's verdict on a scored listing."""

    listing_id: Identifier
    verdict: Literal["counterfeit", "authentic", "unbranded"]
    brand_id: RowId | None = None
    reviewer: ShortText | None = None
    note: Note | None = None


# ---------------------------------------------------------------------------------------------------------- responses
class BrandCreated(BaseModel):
    brand_id: int
    index_version: int


class BrandOut(BaseModel):
    brand_id: int
    name: str
    aliases: list[str]
    authorized_sellers: list[str]
    min_price: float | None
    currency: str
    n_authentic: int
    n_known_fakes: int


class BrandUpdated(BaseModel):
    brand: BrandOut
    index_version: int = Field(description="The change holds for scores from this index version on")


class BrandListResponse(BaseModel):
    brands: list[BrandOut]


class AssetCreated(BaseModel):
    asset_id: int
    index_version: int
    warnings: list[str] = Field(default_factory=list,
                                description="Why this asset may work less well than it could (it was added anyway)")


MIN_LOGO_SIDE = 128  # px; smaller logos are blown up when framed and match photos less well (docs/results.md)


def reference_warnings(image: Image.Image, kind: str) -> list[str]:
    """Advice on an uploaded reference: a small authentic logo (longer side of its box under MIN_LOGO_SIDE)."""
    found = logo_box(image) if kind == "authentic" else None
    if found is None:
        return []
    x0, y0, x1, y1 = found[0]
    side = max(x1 - x0, y1 - y0)
    if side >= MIN_LOGO_SIDE:
        return []
    return [f"the logo is {side} px on its longer side; logos under {MIN_LOGO_SIDE} px match photos less well "
            "(upload a larger or vector version)"]


class AssetDeleted(BaseModel):
    deleted: bool = Field(description="False when the asset had already been deleted")
    index_version: int


class BrandMatch(BaseModel):
    brand_id: int
    name: str
    confidence: float


class EvidenceOut(BaseModel):
    asset_id: int | None = Field(description="Reference image (null for a brand name/alias text match)")
    brand_id: int
    kind: str = Field(description="authentic or known_fake (image), brand_name (text)")
    modality: Literal["image", "text"]
    similarity: float
    image_index: int | None = Field(None, description="Which of the listing's photos matched")
    box: list[float] | None = Field(None, description="Matched region as [x0, y0, x1, y1] fractions of the photo")
    text: str | None = None
    margin: float | None = Field(None, description="known_fake: similarity minus that photo's next known fake's "
                                 "(a re-used photo stands out)")
    inliers: int | None = Field(None, description="known_fake: keypoint matches with that fake's photo that agree on "
                                "one transform (a re-used photo keeps dozens to hundreds; null: not checked)")
    generic: float | None = Field(None, description="authentic: the matched region's cosine to the nearest plain "
                                  "geometric mark (a ring, stripes, dots); close to similarity, the region may be a "
                                  "decoration rather than the brand's mark (null: model does not check)")


class ScoreResponse(BaseModel):
    listing_id: str
    risk: float = Field(ge=0, le=1, description="Calibrated probability that the listing infringes")
    decision: Literal["allow", "review", "block"]
    brand: BrandMatch | None
    evidence: list[EvidenceOut] = Field(description="Best first; close known-fake matches always included")
    signals: dict[str, Any]
    model_version: str
    index_version: int
    timings_ms: dict[str, float] = Field(default_factory=dict)
    score_id: int | None = Field(None, description="Registry row of this score (null if it could not be recorded)")


class ScoreBatchResponse(BaseModel):
    results: list[ScoreResponse]


class FeedbackCreated(BaseModel):
    feedback_id: int


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error this API produces."""

    error: ErrorBody


# ---------------------------------------------------------------------------------------------------------- routes
@dataclass(frozen=True)
class Route:
    """What the gate enforces for one POST route."""

    path: str
    roles: frozenset[str]
    request: type[BaseModel]


ROUTES: dict[str, Route] = {
    r.path: r
    for r in (
        Route("/v1/brands", frozenset({BRAND}), BrandRequest),
        Route("/v1/brands/update", frozenset({BRAND}), BrandUpdateRequest),
        Route("/v1/brands/list", frozenset({BRAND, MODERATOR}), BrandListRequest),
        Route("/v1/assets", frozenset({BRAND}), AssetRequest),
        Route("/v1/assets/delete", frozenset({BRAND}), AssetDeleteRequest),
        Route("/v1/score", frozenset({MODERATOR}), ScoreRequest),
        Route("/v1/score_batch", frozenset({MODERATOR}), ScoreBatchRequest),
        Route("/v1/feedback", frozenset({MODERATOR}), FeedbackRequest),
    )
}


# ---------------------------------------------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error answered with the API's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> JSONResponse:
        """As a Starlette response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """A response with the API's error body."""
    return ApiError(status, code, message, field).response()


def _field_path(loc: tuple[Any, ...]) -> str | None:
    """``("listings", 3, "images_b64", 0)`` -> ``"listings[3].images_b64[0]"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def validation_error(exc: ValidationError) -> ApiError:
    """Turn a pydantic error into a 400 (not JSON) or 422 (bad field) naming the first offending field."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ApiError(400, "malformed_json", f"the body is not valid JSON: {first['msg']}")
    details = [{"field": _field_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]} for e in errors[:20]]
    field = _field_path(tuple(first["loc"]))
    if field is None:
        message = "the body must be a JSON object" if first["type"] == "model_type" else first["msg"]
    elif first["type"] == "extra_forbidden":
        message = f"{field}: unknown field"
    else:
        message = f"{field}: {first['msg']}"
    return ApiError(422, "invalid_field", message, field, details)


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def translate_errors(not_found_field: str | None = None, conflict_field: str | None = None) -> Callable[[F], F]:
    """Decorate an async API method so library errors become the API's error responses.

    :class:`ApiError` -> its own status; registry ``NotFound`` -> 404, ``Conflict`` -> 409 (with ``existing_id``),
    ``Invalid`` -> 422; a closed batcher -> 503; anything else -> 500 (logged). The ``*_field`` arguments name the request field those errors refer to.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except NotFound as exc:
                return error_response(404, "not_found", str(exc), not_found_field)
            except Conflict as exc:
                err = ApiError(409, "conflict", str(exc), conflict_field)
                body = err.body()
                body["error"]["existing_id"] = exc.existing_id
                return JSONResponse(body, status_code=409)
            except Invalid as exc:
                return error_response(422, "invalid_field", str(exc))
            except BatcherClosed:
                return error_response(503, "shutting_down", "the service is shutting down; retry elsewhere")
            except Exception:  # keep the API's error shape for 500s too; the log has the traceback
                log.exception("unhandled error in %s", fn.__name__)
                return error_response(500, "internal", "unexpected error; see the server log")

        return wrapper  # type: ignore[return-value]

    return decorate


# ---------------------------------------------------------------------------------------------------------- decoding
def _b64decode(value: str, field: str, max_bytes: int) -> bytes:
    """Strict base64 (standard alphabet; a ``data:...;base64,`` prefix and line breaks are tolerated)."""
    if value.startswith("data:"):
        head, sep, value = value.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ApiError(422, "invalid_base64", f"{field}: a data URL must be 'data:<type>;base64,<data>'", field)
    value = "".join(value.split())
    if len(value) // 4 * 3 > max_bytes + 3:  # refuse before allocating the decoded bytes
        raise ApiError(422, "invalid_image", f"{field}: the image file is larger than {max_bytes} bytes", field)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, "invalid_base64", f"{field}: not valid base64 ({exc})", field) from None


def decode_b64_image(value: str, field: str, config: ServiceConfig, svg: bool = False) -> tuple[Image.Image, str]:
    """Decode one base64 image with the service's limits.

    Args:
        value: The base64 string from the request.
        field: Its path in the request, for the error (e.g. ``listings[2].images_b64[0]``).
        config: ``max_image_bytes``, ``max_pixels`` and ``max_side`` apply.
        svg: Accept an SVG document too (brand logos; listing photos are raster).

    Returns:
        ``(rgb, sha256)``: the upright RGB image, downscaled to ``max_side``, and the hex SHA-256 of the file bytes.

    Raises:
        ApiError: 422 ``invalid_base64`` or ``invalid_image`` naming ``field``.
    """
    data = _b64decode(value, field, config.max_image_bytes)
    try:
        img = decode_image(data, max_pixels=config.max_pixels, max_bytes=config.max_image_bytes, svg=svg)
    except ImageError as exc:
        raise ApiError(422, "invalid_image", f"{field}: {exc.reason}", field) from None
    if max(img.size) > config.max_side:
        img.thumbnail((config.max_side, config.max_side), Image.Resampling.LANCZOS)
    return img, hashlib.sha256(data).hexdigest()


@dataclass
class DecodedListing:
    """A listing ready to score, with what the registry records about the request."""

    listing: Listing
    request: dict[str, Any]  # the request without image bytes
    image_sha256s: list[str]


def decode_listing(body: ListingIn, config: ServiceConfig, prefix: str = "") -> DecodedListing:
    """Decode a validated listing's photos.

    Raises:
        ApiError: 422 naming the first photo that cannot be used (``<prefix>images_b64[i]``).
    """
    images, hashes = [], []
    for i, value in enumerate(body.images_b64):
        img, digest = decode_b64_image(value, f"{prefix}images_b64[{i}]", config)
        images.append(img)
        hashes.append(digest)
    request = body.model_dump(exclude={"images_b64"})
    request["n_images"] = len(images)
    listing = Listing(body.listing_id, body.title, body.description, body.price, body.currency, body.seller_id, images)
    return DecodedListing(listing, request, hashes)


# ---------------------------------------------------------------------------------------------------------- gate
class ApiGate:
    """ASGI middleware in front of the ``/v1`` routes: auth, content type, body size, schema; then an access log.

    For a POST to a route in ``routes`` it answers, without calling the app: 401/403 (see :mod:`detector.auth`),
    415 for a non-JSON content type, 413 when ``Content-Length`` or the bytes actually received exceed
    ``max_body_bytes`` (so a body is never buffered past the limit), 400/422 when the body does not validate
    against the route's model. Otherwise the buffered body is replayed to the app. Every ``/v1`` request then gets
    one JSON access-log line: route, status, latency, listing and image counts; never headers or bodies.

    Args:
        app: The wrapped ASGI app.
        tokens: Returns the token store, or None while the service is still starting (answered with 503).
        max_body_bytes: Body limit; default from :meth:`ServiceConfig.from_env`.
        routes: The routes to guard.
    """

    def __init__(
        self,
        app: Any,
        *,
        tokens: Callable[[], TokenStore | None],
        max_body_bytes: int | None = None,
        routes: Mapping[str, Route] = ROUTES,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes if max_body_bytes is not None else ServiceConfig.from_env().max_body_bytes
        self.routes = dict(routes)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info: dict[str, Any] = {"route": scope["path"], "method": scope["method"], "status": 500}

        async def send_and_record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
            await send(message)

        try:
            route = self.routes.get(scope["path"])
            if route is None or scope["method"] != "POST":
                await self.app(scope, receive, send_and_record)
                return
            try:
                body, parsed = await self._admit(route, scope, receive)
            except ApiError as exc:
                info["error"] = exc.code
                await exc.response()(scope, receive, send_and_record)
                return
            info.update(_counts(parsed))
            await self.app(scope, _replay(body, receive), send_and_record)
        finally:
            info["latency_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
            access_log.info("request", extra=info)

    async def _admit(self, route: Route, scope: dict[str, Any], receive: Callable) -> tuple[bytes, BaseModel]:
        headers = _headers(scope)
        store = self.tokens()
        if store is None:
            raise ApiError(503, "not_ready", "the service is starting; retry shortly")
        try:
            store.authorize(headers.get("authorization"), route.roles)
        except AuthError as exc:
            extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise ApiError(exc.status, exc.code, exc.message, headers=extra) from None
        media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media != "application/json":
            raise ApiError(415, "unsupported_media", f"Content-Type must be application/json, not {media!r}")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ApiError(413, "body_too_large", f"the body is {declared} bytes; the limit is {self.max_body_bytes}")
        body = await self._read(receive)
        try:
            parsed = route.request.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise validation_error(exc) from None
        return body, parsed

    async def _read(self, receive: Callable) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "client_disconnected", "the client closed the connection")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ApiError(413, "body_too_large", f"the body is over the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _replay(body: bytes, receive: Callable) -> Callable:
    """A ``receive`` that yields the buffered body once, then defers to the real one (disconnect events)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counts(parsed: BaseModel) -> dict[str, int]:
    if isinstance(parsed, ScoreBatchRequest):
        return {"listings": len(parsed.listings), "images": sum(len(x.images_b64) for x in parsed.listings)}
    if isinstance(parsed, ListingIn):
        return {"listings": 1, "images": len(parsed.images_b64)}
    return {}
