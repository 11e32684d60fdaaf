"""Evaluate a running service over HTTP, as an outside evaluator would: register a dataset's brands and assets through
``/v1/brands`` and ``/v1/assets``, score a split through ``/v1/score_batch`` and compute the decision-level metrics
from the JSON answers alone.

``python -m training.http_eval --url http://localhost:3000 --home var/home --data DIR --out DIR`` (tokens from the
home's ``tokens.json``, or ``--brand-token`` / ``--moderator-token``). Use a service with an empty registry: the
metrics assume the registry holds exactly the dataset's registered brands. Writes ``metrics.json`` and
``predictions.jsonl``; :func:`training.evaluate.evaluate` gives the same numbers in process (plus the feature-level
ones), which is what the end-to-end test checks.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import httpx
import numpy as np
from sklearn.metrics import roc_auc_score

from training.data import Dataset, load_dataset
from training.evaluate import GALLERIES, sample_records
from training.metrics import _rate, recall_at_fpr
from training.pipeline import dataset_path, progress_bar

__all__ = ["register_over_http", "score_over_http", "http_metrics", "main"]

log = logging.getLogger(__name__)


class _Api:
    """The two roles' clients of one service."""

    def __init__(self, url: str, brand_token: str, moderator_token: str, timeout_s: float = 300.0) -> None:
        self.brand = httpx.Client(base_url=url, timeout=timeout_s, headers={"Authorization": f"Bearer {brand_token}"})
        self.moderator = httpx.Client(base_url=url, timeout=timeout_s,
                                      headers={"Authorization": f"Bearer {moderator_token}"})

    @staticmethod
    def post(client: httpx.Client, route: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(route, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"POST {route}: {response.status_code} {response.text[:500]}")
        return response.json()

    def close(self) -> None:
        self.brand.close()
        self.moderator.close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def register_over_http(api: _Api, dataset: Dataset, splits: Sequence[str], progress: bool = True) -> dict[str, int]:
    """Register the dataset's registered brands of ``splits`` and their assets; returns slug -> brand_id."""
    splits = set(splits)
    brands = [b for b in dataset.brands if b["registered"] and b["split"] in splits]
    slug_to_id: dict[str, int] = {}
    names: dict[str, int] = {}
    added: set[str] = set()
    for b in brands:
        if b["name"].casefold() in names:  # two dataset brands with one display name: the first one stands
            slug_to_id[b["slug"]] = names[b["name"].casefold()]
            continue
        answer = api.post(api.brand, "/v1/brands", {
            "name": b["name"], "aliases": b["aliases"], "authorized_sellers": b["authorized_sellers"],
            "min_price": b["min_price"], "currency": b["currency"]})
        slug_to_id[b["slug"]] = names[b["name"].casefold()] = answer["brand_id"]
        added.add(b["slug"])
    assets = [a for a in dataset.assets if a["brand_slug"] in added and a["split"] in splits]
    with progress_bar(progress) as bar:
        task = bar.add_task(f"registering {len(assets)} assets of {len(brands)} brands over HTTP", total=len(assets))
        for a in assets:
            body = {"brand_id": slug_to_id[a["brand_slug"]], "kind": a["kind"],
                    "image_b64": _b64(dataset.image_path(a["image"]))}
            body.update({k: a[k] for k in ("title", "source") if a.get(k)})
            api.post(api.brand, "/v1/assets", body)
            bar.advance(task)
    return slug_to_id


def score_over_http(api: _Api, dataset: Dataset, records: Sequence[dict[str, Any]], batch_size: int = 16,
                    progress: bool = True) -> list[dict[str, Any]]:
    """``/v1/score_batch`` answers for dataset records, in order (the photos are sent as their files' bytes)."""
    results: list[dict[str, Any]] = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"scoring {len(records)} listings over HTTP", total=len(records))
        for start in range(0, len(records), batch_size):
            listings = []
            for rec in records[start : start + batch_size]:
                body = {"listing_id": rec["listing_id"], "title": rec.get("title", ""),
                        "description": rec.get("description", ""),
                        "images_b64": [_b64(dataset.image_path(p)) for p in rec.get("images", [])]}
                body.update({k: rec[k] for k in ("price", "currency", "seller_id") if rec.get(k) is not None})
                listings.append(body)
            results += api.post(api.moderator, "/v1/score_batch", {"listings": listings})["results"]
            bar.advance(task, len(listings))
    return results


def _top_known_fake(result: dict[str, Any]) -> int | None:
    """Brand of the known fake that stands out most in the answer's evidence (largest margin, then similarity)."""
    fakes = [e for e in result["evidence"] if e["kind"] == "known_fake"]
    best = max(fakes, key=lambda e: (e.get("margin") or 0.0, e["similarity"]), default=None)
    return best["brand_id"] if best else None


def http_metrics(records: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]],
                 slug_to_id: dict[str, int]) -> dict[str, Any]:
    """Decision-level metrics from the answers alone (the definitions of :func:`training.metrics.compute_metrics`)."""
    labels = [r["label"] for r in records]
    kinds = [(r.get("meta") or {}).get("kind") for r in records]
    truth = [slug_to_id.get(r.get("brand_slug")) if r.get("brand_slug") else None for r in records]
    y = np.array([lab == "counterfeit" for lab in labels], dtype=np.int64)
    risk = np.array([res["risk"] for res in results], dtype=np.float64)
    decisions = [res["decision"] for res in results]
    named = [res["brand"]["brand_id"] if res["brand"] else None for res in results]
    both = 0 < y.sum() < len(y)
    by = {lab: [i for i, x in enumerate(labels) if x == lab] for lab in ("counterfeit", "authentic", "unbranded")}
    n_block = sum(d == "block" for d in decisions)
    return {
        "n_listings": len(records),
        "n_by_label": {lab: len(idx) for lab, idx in by.items()},
        "auc": round(float(roc_auc_score(y, risk)), 4) if both else None,
        "recall_at_1pct_fpr": round(recall_at_fpr(y, risk, 0.01), 4) if both else None,
        "brand_top1_fused": _rate([named[i] == truth[i] for i in range(len(records)) if truth[i] is not None]),
        "unregistered_logo_attribution_rate": _rate([named[i] is not None for i, k in enumerate(kinds)
                                                     if k == "unregistered_logo"]),
        "unbranded_attribution_rate": _rate([named[i] is not None for i in by["unbranded"]]),
        "known_fake_reupload_recall": _rate([_top_known_fake(results[i]) == truth[i] for i, k in enumerate(kinds)
                                             if k == "reupload"]),
        "authentic_blocked_rate": _rate([decisions[i] == "block" for i in by["authentic"]]),
        "counterfeit_blocked_recall": _rate([decisions[i] == "block" for i in by["counterfeit"]]),
        "counterfeit_flagged_recall": _rate([decisions[i] != "allow" for i in by["counterfeit"]]),
        "block_precision": (round(sum(decisions[i] == "block" for i in by["counterfeit"]) / n_block, 4)
                            if n_block else None),
        "decisions": {d: decisions.count(d) for d in ("allow", "review", "block")},
        "model_version": results[0]["model_version"] if results else None,
    }


def _tokens(args: argparse.Namespace) -> tuple[str, str]:
    brand, moderator = args.brand_token, args.moderator_token
    if args.home and not (brand and moderator):
        stored = json.loads((Path(args.home) / "tokens.json").read_text())
        brand, moderator = brand or stored["brand"][0], moderator or stored["moderator"][0]
    if not (brand and moderator):
        raise SystemExit("need --home (for its tokens.json) or both --brand-token and --moderator-token")
    return brand, moderator


def main(argv: list[str] | None = None) -> int:
    """``python -m training.http_eval --url URL --home HOME --data DIR --out DIR``."""
    parser = argparse.ArgumentParser(prog="training.http_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:3000")
    parser.add_argument("--home", help="the service's home, for its tokens.json")
    parser.add_argument("--brand-token")
    parser.add_argument("--moderator-token")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--gallery", choices=sorted(GALLERIES), default="all")
    parser.add_argument("--max-listings", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    dataset = load_dataset(dataset_path(args.data))
    records = sample_records(dataset.listings_for(args.split), args.max_listings, args.seed)  # as training.evaluate
    api = _Api(args.url, *_tokens(args))
    try:
        t0 = time.time()
        slug_to_id = register_over_http(api, dataset, GALLERIES[args.gallery], progress=not args.no_progress)
        t1 = time.time()
        results = score_over_http(api, dataset, records, progress=not args.no_progress)
    finally:
        api.close()
    metrics = http_metrics(records, results, slug_to_id)
    metrics.update(split=args.split, gallery=args.gallery,
                   wall_time_s={"register": round(t1 - t0, 1), "score": round(time.time() - t1, 1)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out / "predictions.jsonl", "w") as f:
        for rec, res in zip(records, results):
            f.write(json.dumps({"listing_id": res["listing_id"], "label": rec["label"], "risk": res["risk"],
                                "decision": res["decision"],
                                "brand_id": res["brand"]["brand_id"] if res["brand"] else None,
                                "known_fake_brand_id": _top_known_fake(res)}) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
