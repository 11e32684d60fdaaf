"""End to end over HTTP: a real ``detector serve`` process (BentoML) on a free port with a temporary home.

One server serves the whole module; the last test stops it and starts a second one on the same home (with the token
variables unset, so that start generates ``tokens.json``) to show that nothing was lost.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from detector.api import MAX_IMAGES, MAX_LISTINGS, ROUTES
from indexes.registry import Registry
from training.render import compose_listing_photo, get_icon, make_reupload, render_logo, render_reference

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BRAND_TOKEN = "e2e-brand-token-4d7a9c1f0b2e"
MOD_TOKEN = "e2e-moderator-token-8f3b6e2a1c9d"
BRAND = {"Authorization": f"Bearer {BRAND_TOKEN}"}
MOD = {"Authorization": f"Bearer {MOD_TOKEN}"}
MAX_BODY = 4_000_000
START_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120  # generous: OCR may be switched on in a later default model (0.3 s per photo)
SLUGS = ("nike", "adidas", "puma")


# ------------------------------------------------------------------------------------------------------ server
@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, log_path: Path, tokens: bool = True) -> Server:
    """Run ``python -m detector.cli serve`` and wait until ``/readyz`` answers 200."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    env.update({
        "BENTOML_HOME": str(home.parent / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DETECTOR_MAX_BODY_BYTES": str(MAX_BODY),
        "DETECTOR_READY_CACHE_S": "0",  # every /readyz runs Catalog.check()
    })
    if tokens:
        env.update({"DETECTOR_BRAND_TOKENS": BRAND_TOKEN, "DETECTOR_MODERATOR_TOKENS": MOD_TOKEN})
    port = _free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "detector.cli", "serve", "--home", str(home), "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_text()[-4000:]}")
            try:
                if client.get("/readyz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"server not ready after {START_TIMEOUT_S}s:\n{server.log_text()[-4000:]}")


def stop_server(server: Server) -> None:
    """SIGTERM the CLI (it forwards to bentoml); kill its process group if it does not stop."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.proc.pid, signal.SIGKILL)  # the group this test created (start_new_session)
    except ProcessLookupError:
        pass
    server.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "home"


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    srv = start_server(home, home.parent / "server1.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


# ------------------------------------------------------------------------------------------------------ data
def enc(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return enc(buf.getvalue())


def listing_photo(slug: str, seed: int) -> Image.Image:
    return compose_listing_photo(render_logo(get_icon(slug), 256), np.random.default_rng(seed), product="tshirt")


@dataclass
class Registered:
    brand_ids: dict[str, int]
    authentic: dict[str, list[int]]
    fake_photo: Image.Image
    fake_asset_id: int


@pytest.fixture(scope="module")
def registered(client: httpx.Client) -> Registered:
    """Three brands with two reference logos each, and one known-fake photo of Nike, registered over HTTP."""
    brand_ids, authentic = {}, {}
    for slug in SLUGS:
        icon = get_icon(slug)
        r = client.post("/v1/brands", headers=BRAND, json={
            "name": icon.title, "aliases": [slug], "authorized_sellers": [f"{slug}-official"], "min_price": 40.0,
        })
        assert r.status_code == 200, r.text
        brand_ids[slug] = r.json()["brand_id"]
        authentic[slug] = []
        for variant in ("light", "dark"):
            r = client.post("/v1/assets", headers=BRAND, json={
                "brand_id": brand_ids[slug], "kind": "authentic", "image_b64": b64(render_reference(icon, variant)),
                "title": f"{icon.title} logo ({variant})", "source": "simple-icons",
            })
            assert r.status_code == 200, r.text
            authentic[slug].append(r.json()["asset_id"])
    fake = listing_photo("nike", seed=7)
    r = client.post("/v1/assets", headers=BRAND, json={
        "brand_id": brand_ids["nike"], "kind": "known_fake", "image_b64": b64(fake, "JPEG", quality=90),
        "title": "seized counterfeit tee",
    })
    assert r.status_code == 200, r.text
    return Registered(brand_ids, authentic, fake, r.json()["asset_id"])


def listing(listing_id: str, slug: str = "nike", seed: int = 1, **fields: object) -> dict:
    body = {"listing_id": listing_id, "title": f"{get_icon(slug).title} t-shirt, brand new",
            "description": "fast shipping", "price": 12.5, "currency": "USD", "seller_id": "seller-42",
            "images_b64": [b64(listing_photo(slug, seed), "JPEG", quality=90)]}
    body.update(fields)
    return body


def score(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/score", headers=MOD, json=body)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------------------------------------ tests
def test_probes_need_no_token(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_readyz_fails_while_the_indexes_disagree_with_the_registry(client: httpx.Client, home: Path) -> None:
    manifest = home / "indexes" / "manifest.json"
    moved = manifest.with_name("manifest.json.moved")
    manifest.rename(moved)
    try:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        moved.rename(manifest)
    assert client.get("/readyz").status_code == 200


def test_auth_roles(client: httpx.Client) -> None:
    body = {"listing_id": "auth-1"}
    assert client.post("/v1/score", json=body).status_code == 401
    r = client.post("/v1/score", json=body, headers={"Authorization": "Bearer not-a-known-token-at-all"})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
    r = client.post("/v1/score", json=body, headers={"Authorization": f"Basic {MOD_TOKEN}"})
    assert r.status_code == 401
    r = client.post("/v1/score", json=body, headers=BRAND)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = client.post("/v1/brands", json={"name": "Forbidden Brand"}, headers=MOD)
    assert r.status_code == 403
    for path in ("/v1/assets", "/v1/assets/delete"):
        assert client.post(path, json={}, headers=MOD).status_code == 403
    assert client.post("/v1/feedback", json={"listing_id": "x", "verdict": "authentic"}, headers=BRAND).status_code == 403
    for headers in (BRAND, MOD):
        assert client.post("/v1/brands/list", json={}, headers=headers).status_code == 200


def test_brands_are_listed_with_asset_counts(client: httpx.Client, registered: Registered) -> None:
    r = client.post("/v1/brands/list", json={}, headers=MOD)
    brands = {b["brand_id"]: b for b in r.json()["brands"]}
    nike = brands[registered.brand_ids["nike"]]
    assert nike["name"] == "Nike" and nike["aliases"] == []  # the alias "nike" only repeats the name
    assert (nike["n_authentic"], nike["n_known_fakes"], nike["currency"]) == (2, 1, "USD")
    assert nike["authorized_sellers"] == ["nike-official"] and nike["min_price"] == 40.0
    assert all(brands[registered.brand_ids[s]]["n_authentic"] == 2 for s in SLUGS)
    r = client.post("/v1/brands", json={"name": "NIKE"}, headers=BRAND)
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["existing_id"]) == (
        409, "conflict", registered.brand_ids["nike"])


def test_score_one_listing(client: httpx.Client, registered: Registered) -> None:
    out = score(client, listing("single-1"))
    assert out["listing_id"] == "single-1"
    assert 0.0 <= out["risk"] <= 1.0 and out["decision"] in ("allow", "review", "block")
    assert out["brand"] is not None and out["brand"]["brand_id"] == registered.brand_ids["nike"]
    assert out["brand"]["name"] == "Nike" and 0.0 <= out["brand"]["confidence"] <= 1.0
    assert out["evidence"], "a branded listing comes with evidence"
    sims = [e["similarity"] for e in out["evidence"]]
    assert all(e["modality"] in ("image", "text") for e in out["evidence"])
    assert any(e["brand_id"] == registered.brand_ids["nike"] for e in out["evidence"])
    assert sims[:10] == sorted(sims[:10], reverse=True)  # best first (close known fakes may follow the top 10)
    assert out["signals"]["n_images"] == 1 and isinstance(out["signals"]["title_obfuscated"], bool)
    assert out["model_version"] and out["index_version"] >= 1 + 3 * 3  # 3 brands, 6 logos, 1 fake
    assert isinstance(out["score_id"], int)


def test_known_fake_evidence_and_deletion(client: httpx.Client, registered: Registered) -> None:
    reupload = make_reupload(registered.fake_photo, np.random.default_rng(3), caption="Best Quality")
    body = listing("fake-1", images_b64=[b64(reupload, "JPEG", quality=85)])
    before = score(client, body)
    fakes = [e for e in before["evidence"] if e["kind"] == "known_fake"]
    # Whitened fingerprints: re-uploads score 0.36-0.73 (5-95 %) against their known fake, other photos ~0.1.
    assert fakes and fakes[0]["asset_id"] == registered.fake_asset_id and fakes[0]["similarity"] > 0.3
    assert before["signals"]["known_fake_similarity"] >= fakes[0]["similarity"] - 1e-6

    r = client.post("/v1/assets/delete", json={"asset_id": registered.fake_asset_id}, headers=BRAND)
    assert r.status_code == 200 and r.json()["deleted"] is True
    version = r.json()["index_version"]
    assert version > before["index_version"]
    after = score(client, body)  # the very next score, no restart
    assert after["index_version"] == version
    assert registered.fake_asset_id not in {e["asset_id"] for e in after["evidence"]}
    assert all(e["kind"] != "known_fake" for e in after["evidence"])
    again = client.post("/v1/assets/delete", json={"asset_id": registered.fake_asset_id}, headers=BRAND).json()
    assert again == {"deleted": False, "index_version": version}
    counts = {b["brand_id"]: b for b in client.post("/v1/brands/list", json={}, headers=BRAND).json()["brands"]}
    assert counts[registered.brand_ids["nike"]]["n_known_fakes"] == 0


def test_score_batch_matches_single_scores(client: httpx.Client, registered: Registered) -> None:
    bodies = [listing(f"batch-{slug}", slug=slug, seed=11) for slug in SLUGS]
    bodies.append({"listing_id": "batch-text-only", "title": "plain cotton t-shirt, no logo"})
    r = client.post("/v1/score_batch", json={"listings": bodies}, headers=MOD)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["listing_id"] for x in results] == [b["listing_id"] for b in bodies]
    for body, batched in zip(bodies, results):
        single = score(client, body)
        assert single["risk"] == pytest.approx(batched["risk"], abs=1e-3)
        assert single["decision"] == batched["decision"] or abs(single["risk"] - batched["risk"]) < 1e-3
        assert (single["brand"] or {}).get("brand_id") == (batched["brand"] or {}).get("brand_id")
    assert results[3]["signals"]["n_images"] == 0
    assert client.post("/v1/score_batch", json={"listings": []}, headers=MOD).json() == {"results": []}


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


def test_brand_updates_hold_from_the_next_score(client: httpx.Client, registered: Registered) -> None:
    adidas = registered.brand_ids["adidas"]
    body = listing("update-1", slug="adidas", seed=5, seller_id="adidas-outlet-eu", price=15.0)
    before = score(client, body)
    assert before["brand"]["brand_id"] == adidas and before["signals"]["authorized_seller"] is False
    assert before["signals"]["price_ratio"] == pytest.approx(15.0 / 40.0, abs=1e-3)

    r = client.post("/v1/brands/update", headers=BRAND, json={
        "brand_id": adidas, "authorized_sellers": ["adidas-official", "adidas-outlet-eu"], "min_price": None,
        "aliases": ["Three Stripes Co"]})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["index_version"] > before["index_version"]
    assert updated["brand"]["authorized_sellers"] == ["adidas-official", "adidas-outlet-eu"]
    assert updated["brand"]["min_price"] is None and updated["brand"]["aliases"] == ["Three Stripes Co"]
    assert updated["brand"]["currency"] == "USD" and updated["brand"]["n_authentic"] == 2  # left out: unchanged

    after = score(client, body)  # the very next score, no restart
    assert after["index_version"] == updated["index_version"]
    assert after["signals"]["authorized_seller"] is True and after["signals"]["price_ratio"] is None
    assert after["decision"] != "block"  # authorised sellers are never auto-blocked
    alias = score(client, {"listing_id": "update-2", "title": "Three Stripes Co track jacket"})
    assert alias["signals"]["candidate_brand_id"] == adidas and alias["signals"]["title_brand_score"] > 0.9

    r = client.post("/v1/brands/update", headers=BRAND, json={"brand_id": adidas, "min_price": -1})
    assert (r.status_code, r.json()["error"]["field"]) == (422, "min_price")
    r = client.post("/v1/brands/update", headers=MOD, json={"brand_id": adidas, "min_price": 1})
    assert r.status_code == 403
    r = client.post("/v1/brands/update", headers=BRAND, json={"brand_id": 987654, "min_price": 1})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "brand_id")
    r = client.post("/v1/brands/update", headers=BRAND, json={
        "brand_id": adidas, "authorized_sellers": ["adidas-official"], "min_price": 40.0, "aliases": []})
    assert r.status_code == 200 and r.json()["brand"]["min_price"] == 40.0  # as registered, for the tests below
    assert score(client, body)["signals"]["authorized_seller"] is False


def test_concurrent_clients_share_model_calls(server: Server, registered: Registered) -> None:
    bodies = [listing(f"conc-{i}", slug=SLUGS[i % 3], seed=100 + i) for i in range(8)]
    with server.client() as c:
        before = c.get("/metrics").text

        def one(body: dict) -> dict:
            with server.client() as own:
                return score(own, body)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, bodies))
        after = c.get("/metrics").text
    assert [r["listing_id"] for r in results] == [b["listing_id"] for b in bodies]
    calls = _metric(after, "detector_batch_listings_count") - _metric(before, "detector_batch_listings_count")
    scored = _metric(after, "detector_batch_listings_sum") - _metric(before, "detector_batch_listings_sum")
    assert scored == 8 and calls < 8, f"{calls} model calls for 8 concurrent listings: nothing was merged"


def test_feedback_joins_the_recorded_score(client: httpx.Client, registered: Registered, home: Path) -> None:
    body = listing("fb-1")
    scored = score(client, body)
    r = client.post("/v1/feedback", headers=MOD, json={
        "listing_id": "fb-1", "verdict": "counterfeit", "brand_id": registered.brand_ids["nike"],
        "reviewer": "mod-7", "note": "logo misprinted",
    })
    assert r.status_code == 200 and isinstance(r.json()["feedback_id"], int)
    registry = Registry(f"sqlite:///{home / 'registry.db'}")  # a second reader, as a retraining job would be
    try:
        [row] = [x for x in registry.export_feedback() if x["feedback_id"] == r.json()["feedback_id"]]
    finally:
        registry.close()
    assert row["verdict"] == "counterfeit" and row["risk"] == pytest.approx(scored["risk"])
    [digest] = row["image_sha256s"]  # the photo was kept for retraining, named by the hash of the stored JPEG
    kept = home / "listing-images" / f"{digest}.jpg"
    assert kept.is_file() and hashlib.sha256(kept.read_bytes()).hexdigest() == digest
    assert "images_b64" not in row["request"] and row["request"]["title"] == body["title"]
    assert row["index_version"] == scored["index_version"] and row["decision"] == scored["decision"]
    r = client.post("/v1/feedback", headers=MOD, json={"listing_id": "fb-1", "verdict": "unbranded", "brand_id": 9999})
    assert (r.status_code, r.json()["error"]["field"]) == (404, "brand_id")


def _image_bytes(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_a_brand_registered_with_its_svg_logo_is_found_in_photos(client: httpx.Client, registered: Registered) -> None:
    # Brand teams have their logo as SVG: simple-icons' real file (one path, no fill: it renders black, tight).
    icon = get_icon("spotify")
    r = client.post("/v1/brands", headers=BRAND, json={"name": icon.title})
    assert r.status_code == 200, r.text
    brand_id = r.json()["brand_id"]
    r = client.post("/v1/assets", headers=BRAND, json={
        "brand_id": brand_id, "kind": "authentic", "image_b64": enc(icon.svg.encode()), "title": "logo (SVG)"})
    assert r.status_code == 200, r.text
    svg_asset = r.json()["asset_id"]
    assert r.json()["warnings"] == []  # rendered at 512 px
    out = score(client, listing("svg-1", slug="spotify", seed=3, title="round speaker, great sound"))
    image_hits = [e for e in out["evidence"] if e["modality"] == "image" and e["kind"] == "authentic"]
    assert image_hits[0]["asset_id"] == svg_asset and image_hits[0]["brand_id"] == brand_id
    assert out["brand"] is not None and out["brand"]["brand_id"] == brand_id
    # A small raster logo is added too, with advice.
    r = client.post("/v1/assets", headers=BRAND, json={
        "brand_id": brand_id, "kind": "authentic", "image_b64": b64(render_reference(icon, "dark", size=96))})
    assert r.status_code == 200, r.text
    assert len(r.json()["warnings"]) == 1 and "67 px" in r.json()["warnings"][0]
    # Listing photos stay raster-only.
    r = client.post("/v1/score", headers=MOD, json=listing("svg-2", images_b64=[enc(icon.svg.encode())]))
    assert r.status_code == 422 and r.json()["error"]["field"] == "images_b64[0]"


def test_awkward_but_valid_images_are_accepted(client: httpx.Client, registered: Registered) -> None:
    photo = listing_photo("adidas", seed=5)
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed rotated
    images = [
        b64(photo.rotate(-90, expand=True), "JPEG", exif=exif),
        b64(photo.convert("CMYK"), "JPEG"),
        b64(photo.convert("RGBA").quantize(64), "PNG"),
        b64(Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257)), "PNG"),
        b64(photo, "WEBP"),
        b64(photo, "GIF"),
        b64(photo, "BMP"),
    ]
    out = score(client, listing("awkward-1", slug="adidas", images_b64=images))
    assert out["signals"]["n_images"] == len(images)


def bad_cases(registered: Registered) -> list[tuple[str, str, dict | bytes, int, str, str | None]]:
    """(name, route, body, status, error code, field) for every kind of bad input."""
    png = _image_bytes(Image.new("RGB", (64, 64), "red"), "PNG")
    jpeg = _image_bytes(listing_photo("puma", 2), "JPEG")
    bomb = _image_bytes(Image.new("1", (6000, 6000)), "PNG")  # 36 Mpx in a few kB
    tiff = _image_bytes(Image.new("RGB", (16, 16)), "TIFF")
    ok_image = enc(png)
    return [
        ("bad base64", "/v1/score", {"listing_id": "b", "images_b64": ["%%%not-base64"]}, 422, "invalid_base64",
         "images_b64[0]"),
        ("not an image", "/v1/score", {"listing_id": "b", "images_b64": [enc(b"just some text")]}, 422,
         "invalid_image", "images_b64[0]"),
        ("truncated", "/v1/score", {"listing_id": "b", "images_b64": [ok_image, enc(jpeg[: len(jpeg) // 2])]}, 422,
         "invalid_image", "images_b64[1]"),
        ("bomb", "/v1/score", {"listing_id": "b", "images_b64": [enc(bomb)]}, 422, "invalid_image",
         "images_b64[0]"),
        ("tiff", "/v1/score", {"listing_id": "b", "images_b64": [enc(tiff)]}, 422, "invalid_image", "images_b64[0]"),
        ("too many images", "/v1/score", {"listing_id": "b", "images_b64": [ok_image] * (MAX_IMAGES + 1)}, 422,
         "invalid_field", "images_b64"),
        ("too many listings", "/v1/score_batch", {"listings": [{"listing_id": "b"}] * (MAX_LISTINGS + 1)}, 422,
         "invalid_field", "listings"),
        ("bad image in batch", "/v1/score_batch",
         {"listings": [{"listing_id": "a"}, {"listing_id": "b", "images_b64": ["@@"]}]}, 422, "invalid_base64",
         "listings[1].images_b64[0]"),
        ("body too large", "/v1/score", {"listing_id": "b", "description": "x" * MAX_BODY}, 413, "body_too_large",
         None),
        ("NaN price", "/v1/score", b'{"listing_id": "b", "price": NaN}', 422, "invalid_field", "price"),
        ("negative price", "/v1/score", {"listing_id": "b", "price": -3}, 422, "invalid_field", "price"),
        ("price as string", "/v1/score", {"listing_id": "b", "price": "12"}, 422, "invalid_field", "price"),
        ("id as number", "/v1/score", {"listing_id": 12}, 422, "invalid_field", "listing_id"),
        ("missing id", "/v1/score", {"title": "no id"}, 422, "invalid_field", "listing_id"),
        ("long title", "/v1/score", {"listing_id": "b", "title": "t" * 501}, 422, "invalid_field", "title"),
        ("long description", "/v1/score", {"listing_id": "b", "description": "d" * 10_001}, 422, "invalid_field",
         "description"),
        ("unknown field", "/v1/score", {"listing_id": "b", "image_b64": ok_image}, 422, "invalid_field",
         "image_b64"),
        ("malformed json", "/v1/score", b'{"listing_id": ', 400, "malformed_json", None),
        ("not an object", "/v1/score", b"[1, 2, 3]", 422, "invalid_field", None),
        ("unknown brand", "/v1/assets", {"brand_id": 9999, "kind": "authentic", "image_b64": ok_image}, 404,
         "not_found", "brand_id"),
        ("bad kind", "/v1/assets", {"brand_id": registered.brand_ids["nike"], "kind": "logo", "image_b64": ok_image},
         422, "invalid_field", "kind"),
        ("asset not an image", "/v1/assets",
         {"brand_id": registered.brand_ids["nike"], "kind": "authentic", "image_b64": enc(b"GIF89a-nope")}, 422,
         "invalid_image", "image_b64"),
        ("SVG with an XML entity", "/v1/assets",
         {"brand_id": registered.brand_ids["nike"], "kind": "authentic", "image_b64": enc(
             b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
             b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><text>&x;</text></svg>')}, 422,
         "invalid_image", "image_b64"),
        ("unknown asset", "/v1/assets/delete", {"asset_id": 987654}, 404, "not_found", "asset_id"),
        ("duplicate asset", "/v1/assets", {"brand_id": registered.brand_ids["nike"], "kind": "authentic",
                                           "image_b64": b64(render_reference(get_icon("nike"), "light"))}, 409,
         "conflict", "image_b64"),
        ("empty brand name", "/v1/brands", {"name": "  "}, 422, "invalid_field", "name"),
        ("bad currency", "/v1/brands", {"name": "Some Brand", "currency": "dollars"}, 422, "invalid_field",
         "currency"),
        ("bad verdict", "/v1/feedback", {"listing_id": "b", "verdict": "maybe"}, 422, "invalid_field", "verdict"),
    ]


def test_bad_input_gets_4xx_naming_the_field(client: httpx.Client, registered: Registered) -> None:
    for name, route, body, status, code, field in bad_cases(registered):
        headers = BRAND if ROUTES[route].roles == {"brand"} else MOD
        if isinstance(body, bytes):
            r = client.post(route, content=body, headers={**headers, "Content-Type": "application/json"})
        else:
            r = client.post(route, json=body, headers=headers)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
        error = r.json()["error"]
        assert (error["code"], error["field"]) == (code, field), f"{name}: {error}"
        assert error["message"]
    r = client.post("/v1/score", data={"listing_id": "form"}, headers=MOD)
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media")


def test_openapi_describes_every_route(client: httpx.Client) -> None:
    spec = client.get("/docs.json").json()
    schemas = spec["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    for path, route in ROUTES.items():
        op = spec["paths"][path]["post"]
        body = resolve(op["requestBody"]["content"]["application/json"]["schema"])
        assert set(body["properties"]) == set(route.request.model_fields), path
        assert resolve(op["responses"]["200"]["content"]["application/json"]["schema"])["properties"], path
    listing_schema = resolve({"$ref": "#/components/schemas/ListingIn"})
    assert listing_schema["properties"]["images_b64"]["maxItems"] == MAX_IMAGES


def test_metrics_have_stage_histograms_and_decisions(client: httpx.Client, registered: Registered) -> None:
    score(client, listing("metrics-1"))
    text = client.get("/metrics").text
    for stage in ("decode", "embed", "search", "ocr", "text", "classify", "record"):
        assert re.search(rf'^detector_stage_seconds_bucket{{[^}}]*stage="{stage}"', text, re.M), stage
        count = re.search(rf'^detector_stage_seconds_count{{[^}}]*stage="{stage}"[^}}]*}} ([0-9.e+]+)$', text, re.M)
        assert count and float(count.group(1)) >= 1, stage
    assert _metric(text, "detector_decisions_total") >= 1
    assert re.search(r'^detector_decisions_total{[^}]*decision="(allow|review|block)"', text, re.M)


def test_logs_are_json_lines_without_secrets(server: Server, client: httpx.Client) -> None:
    score(client, listing("log-1"))
    time.sleep(0.5)  # let the log line reach the file
    text = server.log_text()
    access = [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"detector.access"' in line]
    scored = [a for a in access if a["route"] == "/v1/score" and a["status"] == 200]
    assert scored and all({"route", "status", "latency_ms", "listings"} <= set(a) for a in scored)
    assert any(a["status"] == 401 for a in access) and any(a["status"] == 413 for a in access)
    assert BRAND_TOKEN not in text and MOD_TOKEN not in text
    assert not re.search(r"[A-Za-z0-9+/]{200,}", text), "image bytes in the log"


def test_restart_loses_nothing(server: Server, home: Path, registered: Registered) -> None:
    probe = listing("restart-1", seed=21)
    with server.client() as c:
        brands = c.post("/v1/brands/list", json={}, headers=MOD).json()
        before = score(c, probe)
    stop_server(server)
    assert not (home / "tokens.json").exists()
    second = start_server(home, home.parent / "server2.log", tokens=False)  # tokens.json is generated now
    try:
        path = home / "tokens.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        tokens = json.loads(path.read_text())
        assert second.log_text().count("Generated API tokens") == 1 and tokens["moderator"][0] in second.log_text()
        mod = {"Authorization": f"Bearer {tokens['moderator'][0]}"}
        with second.client() as c:
            assert c.post("/v1/brands/list", json={}, headers=MOD).status_code == 401  # env tokens are gone
            assert c.post("/v1/brands/list", json={}, headers=mod).json() == brands
            r = c.post("/v1/score", json=probe, headers=mod)
            assert r.status_code == 200, r.text
            after = r.json()
            r = c.post("/v1/brands/list", json={}, headers={"Authorization": f"Bearer {tokens['brand'][0]}"})
            assert r.status_code == 200
    finally:
        stop_server(second)
    assert after["index_version"] == before["index_version"]
    assert after["model_version"] == before["model_version"]
    assert after["risk"] == pytest.approx(before["risk"], abs=1e-6) and after["decision"] == before["decision"]
    assert after["brand"] == before["brand"]
    assert [(e["asset_id"], e["kind"]) for e in after["evidence"]] == [(e["asset_id"], e["kind"]) for e in
                                                                        before["evidence"]]
    assert after["score_id"] > before["score_id"]


def test_bentoml_build_packages_the_service(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "-m", "bentoml", "build", str(ROOT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [src] = list((tmp_path / "bentos" / "counterfeit-detector").glob("*/src"))
    files = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    assert {"detector/service.py", "detector/api.py", "indexes/catalog.py", "detector/models/default/model.json",
            "detector/configs/policies/default.json"} <= files
    assert not any(f.startswith(("training/", "tests/")) or "__pycache__" in f for f in files)
    requirements = (src.parent / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.14.1" in requirements and "faiss-cpu" in requirements
