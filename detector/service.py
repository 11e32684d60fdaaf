"""The BentoML service: validate (see :mod:`detector.api`), batch, call the library, shape the response.

Run it with ``detector serve --home DIR`` (or ``bentoml serve detector.service:CounterfeitDetector`` with
``DETECTOR_HOME`` set). One worker process owns the catalog (a single-writer design): scoring goes through an asyncio
micro-batcher into one scoring thread, registry writes run in one writer thread, so neither blocks the event loop
and scoring continues while a brand uploads assets.

Observability: JSON log lines (``detector.*`` loggers, including one access line per ``/v1`` request), and on
``/metrics`` the ``detector_stage_seconds`` histogram (stages decode, embed, search, ocr, text, classify, record),
``detector_decisions_total`` and ``detector_batch_listings``, next to BentoML's own request metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import bentoml
from PIL import Image
from pythonjsonlogger.json import JsonFormatter

from detector.api import (
    ApiGate,
    AssetCreated,
    AssetDeleted,
    AssetDeleteRequest,
    AssetRequest,
    BrandCreated,
    BrandListRequest,
    BrandListResponse,
    BrandOut,
    BrandRequest,
    BrandUpdated,
    BrandUpdateRequest,
    DecodedListing,
    FeedbackCreated,
    FeedbackRequest,
    ListingIn,
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreRequest,
    ScoreResponse,
    ServiceConfig,
    decode_b64_image,
    decode_listing,
    reference_warnings,
    translate_errors,
)
from detector.auth import TokenStore, load_tokens
from detector.batching import BatchConfig, MicroBatcher
from detector.listing import DECISIONS, Listing
from indexes.registry import UNSET

__all__ = ["CounterfeitDetector", "ServiceMetrics", "configure_logging", "get_metrics"]

log = logging.getLogger(__name__)
R = TypeVar("R")

STAGES = ("decode", "embed", "search", "ocr", "text", "classify", "record")


class ServiceMetrics:
    """The service's Prometheus metrics, exported on ``/metrics`` next to BentoML's own.

    Created in the worker by :func:`get_metrics`, never at import: BentoML switches prometheus_client to its
    multi-process mode after importing the service module, and a client imported earlier would write nowhere.
    """

    def __init__(self) -> None:
        import prometheus_client as prom

        self.stage_seconds = prom.Histogram(
            "detector_stage_seconds",
            "Latency of each scoring stage: decode per request, the others per model batch.",
            ["stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        )
        self.decisions = prom.Counter("detector_decisions", "Scored listings by decision.", ["decision"])
        self.batch_listings = prom.Histogram(
            "detector_batch_listings",
            "Listings per model call (how well concurrent requests are merged).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        for stage in STAGES:  # export every series from the start, not only after the first score
            self.stage_seconds.labels(stage=stage)
        for decision in DECISIONS:
            self.decisions.labels(decision=decision)


@functools.cache
def get_metrics() -> ServiceMetrics:
    """The process's metrics (prometheus_client refuses to register the same name twice)."""
    return ServiceMetrics()


def configure_logging(level: str | None = None) -> None:
    """Send the ``detector`` and ``indexes`` loggers to stdout as JSON lines (level from ``DETECTOR_LOG_LEVEL``)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    ))
    level = level or os.environ.get("DETECTOR_LOG_LEVEL", "INFO")
    for name in ("detector", "indexes"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # BentoML's server logging config (dictConfig) disables loggers that existed before it ran; ours must log.
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and name.split(".")[0] in ("detector", "indexes"):
            logger.disabled = False


class _Runtime:
    """What the gate middleware needs from the service instance, which BentoML creates after the middleware."""

    tokens: TokenStore | None = None


_runtime = _Runtime()


@bentoml.service(
    name="counterfeit-detector",
    description="Finds counterfeit and IP-infringing marketplace listings. See the README's HTTP API section.",
    workers=1,  # the catalog is a single-writer design: one process owns it
    traffic={"timeout": 600},  # a full /v1/score_batch with OCR on takes minutes on a small CPU
    logging={"access": {"enabled": False}},  # ApiGate writes JSON access lines instead
)
class CounterfeitDetector:
    """Brand registry writes (role ``brand``) and listing scoring and feedback (role ``moderator``)."""

    def __init__(self) -> None:
        """Load the model, open the catalog in ``DETECTOR_HOME``, warm the model up."""
        from detector.bundle import load_model
        from detector.scoring import Scorer
        from indexes.catalog import Catalog
        from indexes.images import ImageConfig
        from indexes.listing_images import ListingImageStore, encode_listing_image

        configure_logging()
        self.config = ServiceConfig.from_env()
        started = time.perf_counter()
        _runtime.tokens = load_tokens(self.config.home)
        self.bundle = load_model(self.config.model, num_threads=self.config.torch_threads)
        image_config = ImageConfig(max_bytes=self.config.max_image_bytes, max_pixels=self.config.max_pixels)
        # An inconsistent home raises IndexMismatchError here: better not to start than to serve wrong evidence
        # (repair with `detector index rebuild --home DIR`).
        self.catalog = Catalog.open(self.config.home, self.bundle.embedder, index_factory=self.config.index_factory,
                                    image_config=image_config)
        self.scorer = Scorer(self.bundle, self.catalog)
        # Recorded image hashes always name canonical JPEGs (see indexes.listing_images), kept on disk or not.
        self._image_sha256: Callable[[Image.Image], str] = (
            ListingImageStore(self.config.home).put if self.config.keep_listing_images
            else lambda image: encode_listing_image(image)[1])
        self.metrics = get_metrics()
        self.batcher: MicroBatcher[DecodedListing, ScoreResponse] = MicroBatcher(
            self._score_decoded,
            BatchConfig(self.config.batch_max_listings, self.config.batch_max_wait_ms),
            on_batch=lambda n, _groups: self.metrics.batch_listings.observe(n),
        )
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="catalog-writer")
        self._ready: tuple[int, float] | None = None  # (index_version, monotonic time) of the last passed check
        # The first call pays for lazy initialisation in torch and scikit-learn; do it before reporting ready.
        self.scorer.score(Listing("warm-up", "warm-up", images=[Image.new("RGB", (64, 64), "white")]))
        log.info("service started", extra={"home": str(self.config.home), "model_version": self.bundle.version,
                                           "index_version": self.catalog.index_version,
                                           "startup_s": round(time.perf_counter() - started, 2)})

    # ------------------------------------------------------------------------------------------------ lifecycle
    def __is_ready__(self) -> bool:
        """Ready when the registry and the indexes on disk and in memory agree (``Catalog.check``)."""
        version = self.catalog.index_version
        now = time.monotonic()
        if self._ready is not None and self._ready[0] == version and now - self._ready[1] < self.config.ready_cache_s:
            return True
        report = self.catalog.check()
        if not report.ok:
            log.warning("not ready: catalog check failed", extra={"problems": list(report.problems)})
            self._ready = None
            return False
        self._ready = (version, now)
        return True

    @bentoml.on_shutdown
    async def close(self) -> None:
        """Fail queued scores, finish writes, release the database."""
        await self.batcher.close()
        self._writer.shutdown(wait=True)
        self.catalog.close()

    # ------------------------------------------------------------------------------------------------ registry
    @bentoml.api(route="/v1/brands")
    @translate_errors(conflict_field="name")
    async def add_brand(self, body: BrandRequest, /) -> BrandCreated:
        """Register a brand (role brand); its name and aliases are indexed for text matching at once."""
        brand_id, version = await self._write(self.catalog.add_brand, body.name, body.aliases,
                                              body.authorized_sellers, body.min_price, body.currency)
        return BrandCreated(brand_id=brand_id, index_version=version)

    @bentoml.api(route="/v1/brands/update")
    @translate_errors(not_found_field="brand_id")
    async def update_brand(self, body: BrandUpdateRequest, /) -> BrandUpdated:
        """Change a brand's aliases, authorised sellers, price floor or currency (role brand); fields left out keep
        their values. Scores from the returned index version on use the change."""
        brand, version = await self._write(
            self.catalog.update_brand, body.brand_id, aliases=body.aliases, authorized_sellers=body.authorized_sellers,
            min_price=body.min_price if "min_price" in body.model_fields_set else UNSET, currency=body.currency)
        return BrandUpdated(brand=BrandOut(**brand.to_dict()), index_version=version)

    @bentoml.api(route="/v1/brands/list")
    @translate_errors()
    async def list_brands(self, body: BrandListRequest, /) -> BrandListResponse:
        """All brands with their active asset counts (role brand or moderator)."""
        records = await asyncio.to_thread(self.catalog.registry.list_brands)
        return BrandListResponse(brands=[BrandOut(**b.to_dict()) for b in records])

    @bentoml.api(route="/v1/assets")
    @translate_errors(not_found_field="brand_id", conflict_field="image_b64")
    async def add_asset(self, body: AssetRequest, /) -> AssetCreated:
        """Add a reference image of a brand (role brand): an authentic logo/product photo or a known fake."""
        image, _ = await asyncio.to_thread(decode_b64_image, body.image_b64, "image_b64", self.config,
                                            svg=True)
        warnings = await asyncio.to_thread(reference_warnings, image, body.kind)
        asset_id, version = await self._write(self.catalog.add_asset, body.brand_id, body.kind, image, body.title,
                                              body.source)
        return AssetCreated(asset_id=asset_id, index_version=version, warnings=warnings)

    @bentoml.api(route="/v1/assets/delete")
    @translate_errors(not_found_field="asset_id")
    async def delete_asset(self, body: AssetDeleteRequest, /) -> AssetDeleted:
        """Delete an asset (role brand); it stops being evidence from the next score on."""
        deleted, version = await self._write(self.catalog.delete_asset, body.asset_id)
        return AssetDeleted(deleted=deleted, index_version=version)

    # ------------------------------------------------------------------------------------------------ scoring
    @bentoml.api(route="/v1/score")
    @translate_errors()
    async def score(self, body: ScoreRequest, /) -> ScoreResponse:
        """Score one listing (role moderator): risk, decision, the brand present and the evidence."""
        decoded = await self._decode([body], prefixed=False)
        return (await self.batcher.submit(decoded))[0]

    @bentoml.api(route="/v1/score_batch")
    @translate_errors()
    async def score_batch(self, body: ScoreBatchRequest, /) -> ScoreBatchResponse:
        """Score up to 64 listings (role moderator); results in request order."""
        decoded = await self._decode(body.listings, prefixed=True)
        return ScoreBatchResponse(results=await self.batcher.submit(decoded))

    @bentoml.api(route="/v1/feedback")
    @translate_errors(not_found_field="brand_id")
    async def add_feedback(self, body: FeedbackRequest, /) -> FeedbackCreated:
        """Record a moderator's verdict on a listing (role moderator), joined later to its recorded scores."""
        feedback_id = await asyncio.to_thread(
            self.catalog.registry.add_feedback, body.listing_id, body.verdict, brand_id=body.brand_id,
            reviewer=body.reviewer, note=body.note,
        )
        return FeedbackCreated(feedback_id=feedback_id)

    # ------------------------------------------------------------------------------------------------ helpers
    async def _write(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a catalog write in the writer thread (writes are serialised; scoring goes on meanwhile)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, functools.partial(fn, *args, **kwargs))

    async def _decode(self, listings: list[ListingIn], prefixed: bool) -> list[DecodedListing]:
        """Decode the listings' photos in a worker thread; errors name the field (``listings[i].images_b64[j]``)."""

        def work() -> list[DecodedListing]:
            t0 = time.perf_counter()
            out = [decode_listing(x, self.config, f"listings[{i}]." if prefixed else "") for i, x in enumerate(listings)]
            self.metrics.stage_seconds.labels(stage="decode").observe(time.perf_counter() - t0)
            return out

        return await asyncio.to_thread(work)

    def _score_decoded(self, items: list[DecodedListing]) -> list[ScoreResponse]:
        """The batch function (scoring thread): score, record each score, count decisions."""
        results = self.scorer.score_batch([d.listing for d in items])
        if results:
            for stage, ms in results[0].timings_ms.items():  # per-batch timings, shared by all its listings
                self.metrics.stage_seconds.labels(stage=stage).observe(ms / 1000.0)
        t0 = time.perf_counter()
        out = []
        for decoded, result in zip(items, results, strict=True):
            self.metrics.decisions.labels(decision=result.decision).inc()
            out.append(ScoreResponse.model_validate({**result.to_dict(), "score_id": self._record(decoded, result)}))
        self.metrics.stage_seconds.labels(stage="record").observe(time.perf_counter() - t0)
        return out

    def _record(self, decoded: DecodedListing, result: Any) -> int | None:
        """Store the score (and its photos, see ``keep_listing_images``) for joining feedback later.

        A failure is logged and never fails the other listings.
        """
        try:
            hashes = [self._image_sha256(image) for image in decoded.listing.images]
            return self.catalog.registry.record_score(
                result.listing_id, request=decoded.request, image_sha256s=hashes, risk=result.risk,
                decision=result.decision, brand_id=result.brand.brand_id if result.brand else None,
                signals=result.signals, model_version=result.model_version, index_version=result.index_version,
            )
        except Exception:  # the verdict is still valid; the response says score_id null
            log.exception("could not record a score", extra={"listing_id": result.listing_id})
            return None


CounterfeitDetector.add_asgi_middleware(ApiGate, tokens=lambda: _runtime.tokens)
