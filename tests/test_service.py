"""HTTP layer without a server: micro-batcher, tokens and roles, request validation, image decoding, the gate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import stat
import threading
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from PIL import Image
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute
from starlette.testclient import TestClient

from detector.api import (
    MAX_IMAGES,
    MAX_LISTINGS,
    ROUTES,
    ApiError,
    ApiGate,
    AssetRequest,
    BrandRequest,
    BrandUpdateRequest,
    FeedbackRequest,
    ScoreBatchRequest,
    ScoreRequest,
    ServiceConfig,
    decode_b64_image,
    decode_listing,
    validation_error,
)
from detector.auth import TOKENS_FILE, AuthError, TokenStore, load_tokens
from detector.batching import BatchConfig, BatcherClosed, MicroBatcher

ROOT = Path(__file__).resolve().parent.parent
BRAND_TOKEN = "brand-token-0123456789abcdef"
MOD_TOKEN = "moderator-token-0123456789abcdef"


# ------------------------------------------------------------------------------------------------------ batcher
class Recorder:
    """A batch function that records the batches it saw and fails on a ``"boom"`` item."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        if "boom" in items:
            raise ValueError("boom in batch")
        return [item.upper() for item in items]


def test_batcher_merges_concurrent_groups_and_keeps_order() -> None:
    fn = Recorder()

    async def main() -> list[list[str]]:
        batcher = MicroBatcher(fn, BatchConfig(max_items=100, max_wait_ms=50))
        groups = [[f"g{g}i{i}" for i in range(g + 1)] for g in range(5)]
        try:
            return await asyncio.gather(*(batcher.submit(group) for group in groups))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[f"G{g}I{i}" for i in range(g + 1)] for g in range(5)]
    assert len(fn.batches) == 1 and len(fn.batches[0]) == 15  # all five groups in one call
    assert fn.threads and threading.main_thread().name not in fn.threads  # ran off the event loop


def test_batcher_fills_batches_up_to_max_items_without_splitting_groups() -> None:
    fn = Recorder()

    async def main() -> list[list[str]]:
        batcher = MicroBatcher(fn, BatchConfig(max_items=4, max_wait_ms=50))
        try:
            return await asyncio.gather(
                batcher.submit(["a1", "a2", "a3"]), batcher.submit(["b1", "b2"]), batcher.submit(list("cdefgh"))
            )
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [["A1", "A2", "A3"], ["B1", "B2"], list("CDEFGH")]
    assert fn.batches == [["a1", "a2", "a3"], ["b1", "b2"], list("cdefgh")]  # the 6-item group ran alone


def test_batcher_exception_fails_only_its_own_batch() -> None:
    fn = Recorder(delay_s=0.05)

    async def main() -> tuple[list[object], list[str]]:
        batcher = MicroBatcher(fn, BatchConfig(max_items=2, max_wait_ms=20))
        try:
            first = await asyncio.gather(
                batcher.submit(["ok1", "boom"]), batcher.submit(["ok2", "ok3"]), return_exceptions=True
            )
            later = await batcher.submit(["later"])  # the consumer survived the failure
            return first, later
        finally:
            await batcher.close()

    (failed, succeeded), later = asyncio.run(main())
    assert isinstance(failed, ValueError) and "boom" in str(failed)
    assert succeeded == ["OK2", "OK3"]
    assert later == ["LATER"]
    assert fn.batches == [["ok1", "boom"], ["ok2", "ok3"], ["later"]]


def test_batcher_rejects_wrong_result_count_and_closes() -> None:
    async def main() -> None:
        bad = MicroBatcher(lambda items: items[:-1], BatchConfig(max_wait_ms=0))
        with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
            await bad.submit(["a", "b"])
        assert await bad.submit([]) == []
        await bad.close()
        with pytest.raises(BatcherClosed):
            await bad.submit(["c"])

    asyncio.run(main())


def test_batcher_close_fails_queued_groups() -> None:
    release = threading.Event()

    def slow(items: list[str]) -> list[str]:
        release.wait(5)
        return items

    async def main() -> list[object]:
        batcher = MicroBatcher(slow, BatchConfig(max_items=1, max_wait_ms=0))
        running = asyncio.ensure_future(batcher.submit(["first"]))
        queued = asyncio.ensure_future(batcher.submit(["second"]))
        await asyncio.sleep(0.05)
        await batcher.close()
        release.set()
        return await asyncio.gather(running, queued, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, BatcherClosed) for o in outcomes)


def test_batch_config_validates() -> None:
    with pytest.raises(ValueError):
        BatchConfig(max_items=0)
    with pytest.raises(ValueError):
        BatchConfig(max_wait_ms=-1)


# ------------------------------------------------------------------------------------------------------ auth
def test_token_store_roles_and_errors() -> None:
    store = TokenStore({"brand": [BRAND_TOKEN], "moderator": [MOD_TOKEN, MOD_TOKEN + "-second"]})
    assert store.role_of(BRAND_TOKEN) == "brand"
    assert store.role_of(MOD_TOKEN + "-second") == "moderator"
    assert store.role_of("nope-nope-nope-nope") is None
    assert store.authorize(f"Bearer {MOD_TOKEN}", {"moderator"}) == "moderator"
    assert store.authorize(f"bearer   {BRAND_TOKEN} ", {"brand", "moderator"}) == "brand"
    for header in (None, "", "Bearer", f"Basic {BRAND_TOKEN}", "Bearer unknown-token-123456789"):
        with pytest.raises(AuthError) as info:
            store.authorize(header, {"brand"})
        assert info.value.status == 401
    with pytest.raises(AuthError) as info:
        store.authorize(f"Bearer {MOD_TOKEN}", {"brand"})
    assert info.value.status == 403 and info.value.code == "forbidden"


def test_token_store_refuses_weak_or_shared_tokens() -> None:
    with pytest.raises(ValueError, match="shorter"):
        TokenStore({"brand": ["short"]})
    with pytest.raises(ValueError, match="roles"):
        TokenStore({"brand": [BRAND_TOKEN], "moderator": [BRAND_TOKEN]})
    with pytest.raises(ValueError, match="unknown role"):
        TokenStore({"admin": [BRAND_TOKEN]})


def test_load_tokens_from_env_does_not_touch_home(tmp_path: Path) -> None:
    env = {"DETECTOR_BRAND_TOKENS": f" {BRAND_TOKEN} , ", "DETECTOR_MODERATOR_TOKENS": MOD_TOKEN}
    store = load_tokens(tmp_path, env, announce=pytest.fail)
    assert store.role_of(BRAND_TOKEN) == "brand" and store.role_of(MOD_TOKEN) == "moderator"
    assert not (tmp_path / TOKENS_FILE).exists()


def test_load_tokens_generates_file_once_with_mode_0600(tmp_path: Path) -> None:
    shown: list[str] = []
    home = tmp_path / "home"
    store = load_tokens(home, {}, announce=shown.append)
    path = home / TOKENS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert len(shown) == 1 and saved["brand"][0] in shown[0] and saved["moderator"][0] in shown[0]
    assert store.role_of(saved["brand"][0]) == "brand" and store.role_of(saved["moderator"][0]) == "moderator"
    again = load_tokens(home, {}, announce=shown.append)  # second start: read, not regenerated, not shown
    assert len(shown) == 1 and json.loads(path.read_text()) == saved
    assert again.role_of(saved["moderator"][0]) == "moderator"


# ------------------------------------------------------------------------------------------------------ validation
def _fields(model: type, body: dict) -> list[str | None]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(body))
    err = validation_error(info.value)
    assert err.status == 422 and err.code == "invalid_field"
    return [d["field"] for d in err.details or []]


def test_listing_validation_names_the_field() -> None:
    ok = ScoreRequest.model_validate_json('{"listing_id": " a1 ", "currency": "usd", "price": 12}')
    assert ok.listing_id == "a1" and ok.currency == "USD" and ok.price == 12.0 and ok.images_b64 == []
    assert _fields(ScoreRequest, {"title": "x"}) == ["listing_id"]
    assert _fields(ScoreRequest, {"listing_id": "   "}) == ["listing_id"]
    assert _fields(ScoreRequest, {"listing_id": "a", "price": -1}) == ["price"]
    assert _fields(ScoreRequest, {"listing_id": "a", "price": "12"}) == ["price"]
    assert _fields(ScoreRequest, {"listing_id": "a", "price": True}) == ["price"]
    assert _fields(ScoreRequest, {"listing_id": "a", "title": 5}) == ["title"]
    assert _fields(ScoreRequest, {"listing_id": "a", "title": "t" * 501}) == ["title"]
    assert _fields(ScoreRequest, {"listing_id": "a", "description": "d" * 10_001}) == ["description"]
    assert _fields(ScoreRequest, {"listing_id": "a", "currency": "dollars"}) == ["currency"]
    assert _fields(ScoreRequest, {"listing_id": "a", "images_b64": ["x"] * (MAX_IMAGES + 1)}) == ["images_b64"]
    assert _fields(ScoreRequest, {"listing_id": "a", "images_b64": "abc"}) == ["images_b64"]
    assert _fields(ScoreRequest, {"listing_id": "a", "image_b64": ["abc"]}) == ["image_b64"]  # misspelt: refused
    assert _fields(ScoreBatchRequest, {"listings": [{"listing_id": "a"}] * (MAX_LISTINGS + 1)}) == ["listings"]
    assert _fields(ScoreBatchRequest, {"listings": [{"listing_id": "a"}, {"listing_id": "b", "price": -2}]}) == [
        "listings[1].price"
    ]


def test_nan_and_malformed_json() -> None:
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate_json(b'{"listing_id": "a", "price": NaN}')
    assert validation_error(info.value).field == "price"
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate_json(b'{"listing_id": ')
    err = validation_error(info.value)
    assert (err.status, err.code) == (400, "malformed_json")
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate_json(b"[1, 2]")
    err = validation_error(info.value)
    assert err.field is None and "JSON object" in err.message


def test_registry_request_validation() -> None:
    assert BrandRequest.model_validate({"name": "Nike"}).currency == "USD"
    assert _fields(BrandRequest, {"name": ""}) == ["name"]
    assert _fields(BrandRequest, {"name": "N", "min_price": -5}) == ["min_price"]
    assert _fields(BrandRequest, {"name": "N", "aliases": "nike"}) == ["aliases"]
    assert _fields(AssetRequest, {"brand_id": 1, "kind": "logo", "image_b64": "x"}) == ["kind"]
    assert _fields(AssetRequest, {"brand_id": "1", "kind": "authentic", "image_b64": "x"}) == ["brand_id"]
    assert _fields(AssetRequest, {"brand_id": 1, "kind": "authentic"}) == ["image_b64"]
    assert _fields(FeedbackRequest, {"listing_id": "a", "verdict": "fake"}) == ["verdict"]
    update = BrandUpdateRequest.model_validate({"brand_id": 3, "min_price": None})
    assert update.model_fields_set == {"brand_id", "min_price"} and update.aliases is None  # null is not "left out"
    assert "min_price" not in BrandUpdateRequest.model_validate({"brand_id": 3}).model_fields_set
    assert _fields(BrandUpdateRequest, {"min_price": 3}) == ["brand_id"]
    assert _fields(BrandUpdateRequest, {"brand_id": 3, "authorized_sellers": "shop"}) == ["authorized_sellers"]
    assert _fields(BrandUpdateRequest, {"brand_id": 3, "name": "Renamed"}) == ["name"]  # names are not updated here


# ------------------------------------------------------------------------------------------------------ images
CONFIG = ServiceConfig(max_pixels=2_000_000, max_image_bytes=1_000_000, max_side=256)


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _decode_error(data: bytes | str) -> ApiError:
    value = data if isinstance(data, str) else _b64(data)
    with pytest.raises(ApiError) as info:
        decode_b64_image(value, "images_b64[0]", CONFIG)
    assert info.value.status == 422 and info.value.field == "images_b64[0]"
    return info.value


def test_decode_refuses_bad_images() -> None:
    png = _encode(Image.new("RGB", (64, 48), "red"), "PNG")
    assert _decode_error("not base64!").code == "invalid_base64"
    assert _decode_error("data:image/png,abc").code == "invalid_base64"
    assert _decode_error(b"hello, not an image").code == "invalid_image"
    assert "truncated" in _decode_error(png[: len(png) // 2]).message
    bomb = _encode(Image.new("1", (3000, 3000)), "PNG")  # 9 Mpx in a few kB
    assert len(bomb) < 10_000 and "decompression bomb" in _decode_error(bomb).message
    assert "format" in _decode_error(_encode(Image.new("RGB", (8, 8)), "TIFF")).message
    assert "larger than" in _decode_error(b"\0" * 1_100_000).message


def test_decode_normalises_images() -> None:
    red = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img, digest = decode_b64_image(_b64(_encode(red, "JPEG", exif=exif)), "f", CONFIG)
    assert img.size == (20, 40) and img.mode == "RGB" and len(digest) == 64
    cmyk, _ = decode_b64_image(_b64(_encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")), "f", CONFIG)
    r, g, b = cmyk.getpixel((4, 4))
    assert cmyk.mode == "RGB" and r > 200 and g < 60 and b < 60
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert decode_b64_image(_b64(_encode(clear, "PNG")), "f", CONFIG)[0].getpixel((1, 1)) == (255, 255, 255)
    palette = Image.new("P", (8, 8), 3)
    assert decode_b64_image(_b64(_encode(palette, "GIF")), "f", CONFIG)[0].mode == "RGB"
    deep = Image.new("I;16", (8, 8), 65535)
    assert decode_b64_image(_b64(_encode(deep, "PNG")), "f", CONFIG)[0].getpixel((0, 0)) == (255, 255, 255)
    frames = [Image.new("RGB", (8, 8), c) for c in ("blue", "red")]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    first, _ = decode_b64_image(_b64(gif.getvalue()), "f", CONFIG)
    assert first.getpixel((4, 4))[2] > 200  # the first (blue) frame
    webp = "data:image/webp;base64," + _b64(_encode(Image.new("RGB", (1000, 500), "green"), "WEBP"))
    big, _ = decode_b64_image(webp[:60] + "\n" + webp[60:], "f", CONFIG)  # data URL and a line break are fine
    assert big.size == (256, 128)  # downscaled to max_side
    bmp, _ = decode_b64_image(_b64(_encode(Image.new("RGB", (8, 8), "white"), "BMP")), "f", CONFIG)
    assert bmp.size == (8, 8)


def test_decode_listing_records_request_without_image_bytes() -> None:
    data = _encode(Image.new("RGB", (16, 16), "blue"), "PNG")
    body = ScoreRequest(listing_id="x", title="Nike", price=3.5, currency="USD", images_b64=[_b64(data)])
    decoded = decode_listing(body, CONFIG)
    assert decoded.listing.listing_id == "x" and len(decoded.listing.images) == 1
    assert "images_b64" not in decoded.request and decoded.request["n_images"] == 1
    assert decoded.image_sha256s == [hashlib.sha256(data).hexdigest()]
    bad = ScoreRequest(listing_id="x", images_b64=[_b64(data), "@@"])
    with pytest.raises(ApiError) as info:
        decode_listing(bad, CONFIG, prefix="listings[3].")
    assert info.value.field == "listings[3].images_b64[1]"


# ------------------------------------------------------------------------------------------------------ gate
def _gate_client(max_body_bytes: int = 2_000, ready: bool = True) -> tuple[TestClient, list[bytes]]:
    seen: list[bytes] = []

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        seen.append(body)
        return JSONResponse({"received": len(body)})

    inner = Starlette(routes=[StarletteRoute(path, echo, methods=["POST"]) for path in ROUTES])
    store = TokenStore({"brand": [BRAND_TOKEN], "moderator": [MOD_TOKEN]})
    gate = ApiGate(inner, tokens=lambda: store if ready else None, max_body_bytes=max_body_bytes)
    return TestClient(gate), seen


def test_gate_checks_auth_media_size_and_schema() -> None:
    client, seen = _gate_client()
    mod = {"Authorization": f"Bearer {MOD_TOKEN}"}
    body = {"listing_id": "a", "title": "t"}
    raw = json.dumps(body).encode()
    r = client.post("/v1/score", content=raw, headers={**mod, "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200 and seen == [raw]  # passed through byte for byte
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer wrong-token-1234567890"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {BRAND_TOKEN}"}, 403, "forbidden"),
    ]
    for headers, status, code in cases:
        r = client.post("/v1/score", json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert client.post("/v1/score", json=body).headers["www-authenticate"] == "Bearer"
    r = client.post("/v1/score", data={"listing_id": "a"}, headers=mod)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media")
    r = client.post("/v1/score", json={"listing_id": "a", "title": "x" * 3000}, headers=mod)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large")
    r = client.post("/v1/score", json={"listing_id": "a", "price": -1}, headers=mod)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "price")
    r = client.post("/v1/score", content=b"{oops", headers={**mod, "Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json")
    r = client.post("/v1/brands/list", json={}, headers={"Authorization": f"Bearer {BRAND_TOKEN}"})
    assert r.status_code == 200
    assert len(seen) == 2  # nothing refused reached the app


def test_gate_counts_streamed_bytes_without_content_length() -> None:
    store = TokenStore({"brand": [BRAND_TOKEN], "moderator": [MOD_TOKEN]})
    reached: list[bool] = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        reached.append(True)

    gate = ApiGate(app, tokens=lambda: store, max_body_bytes=1_000)
    chunks = [b'{"listing_id": "a", "title": "', b"x" * 600, b"x" * 600, b'"}']
    sent: list[dict] = []

    async def receive() -> dict:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v1/score", "method": "POST",
             "headers": [(b"authorization", f"Bearer {MOD_TOKEN}".encode()), (b"content-type", b"application/json")]}
    asyncio.run(gate(scope, receive, send))
    assert sent[0]["status"] == 413 and not reached and len(chunks) == 1  # stopped reading at the limit


def test_gate_answers_503_while_starting_and_ignores_other_paths() -> None:
    client, seen = _gate_client(ready=False)
    r = client.post("/v1/score", json={"listing_id": "a"}, headers={"Authorization": f"Bearer {MOD_TOKEN}"})
    assert (r.status_code, r.json()["error"]["code"]) == (503, "not_ready")
    assert client.get("/v1/score").status_code == 405  # not a guarded POST: the app answers
    assert client.get("/healthz").status_code == 404 and not seen


# ------------------------------------------------------------------------------------------------------ wiring
def test_service_config_from_env() -> None:
    cfg = ServiceConfig.from_env({"DETECTOR_HOME": "/x", "DETECTOR_MAX_BODY_BYTES": "10", "DETECTOR_TORCH_THREADS": "2",
                                  "DETECTOR_BATCH_MAX_WAIT_MS": "1.5", "DETECTOR_MODEL": ""})
    assert (cfg.home, cfg.max_body_bytes, cfg.torch_threads, cfg.batch_max_wait_ms) == (Path("/x"), 10, 2, 1.5)
    assert cfg.model == "default" and cfg.max_pixels < 36_000_000
    with pytest.raises(ValueError, match="DETECTOR_MAX_PIXELS"):
        ServiceConfig.from_env({"DETECTOR_MAX_PIXELS": "many"})


def test_service_serves_every_route_with_its_model() -> None:
    from detector.service import CounterfeitDetector

    apis = {m.route: m for m in CounterfeitDetector.apis.values()}
    assert set(apis) == set(ROUTES)
    for path, route in ROUTES.items():
        assert issubclass(apis[path].input_spec, route.request), path


def test_bentofile_matches_pyproject_and_cli() -> None:
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) <= set(bentofile["python"]["packages"])
    assert bentofile["service"] == "detector.service:CounterfeitDetector"
    assert bentofile["service"] in (ROOT / "detector" / "cli.py").read_text()
