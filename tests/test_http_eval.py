"""The HTTP evaluation (an outside evaluator's view) against a real server agrees with the in-process evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_e2e_http import BRAND_TOKEN, MOD_TOKEN, start_server, stop_server
from training import http_eval
from training.evaluate import evaluate

pytestmark = pytest.mark.slow

N_LISTINGS = 24


def test_http_evaluation_matches_the_in_process_one(small_dataset, tmp_path):
    server = start_server(tmp_path / "home", tmp_path / "server.log")
    try:
        assert http_eval.main(["--url", server.url, "--brand-token", BRAND_TOKEN, "--moderator-token", MOD_TOKEN,
                               "--data", str(small_dataset), "--out", str(tmp_path / "http"),
                               "--max-listings", str(N_LISTINGS), "--no-progress"]) == 0
    finally:
        stop_server(server)
    local = evaluate("default", small_dataset, tmp_path / "local", max_listings=N_LISTINGS, progress=False,
                     report=False)
    remote = json.loads((tmp_path / "http" / "metrics.json").read_text())

    def rows(path):
        return {p["listing_id"]: p for p in map(json.loads, path.read_text().splitlines())}

    mine, theirs = rows(tmp_path / "local" / "predictions.jsonl"), rows(tmp_path / "http" / "predictions.jsonl")
    assert sorted(mine) == sorted(theirs) and len(mine) == N_LISTINGS
    ids = sorted(mine)
    # Same code, model and registry (brands registered in the same order): the same risks, to float noise.
    np.testing.assert_allclose([theirs[i]["risk"] for i in ids], [mine[i]["risk"] for i in ids], atol=1e-4)
    assert [theirs[i]["decision"] for i in ids] == [mine[i]["decision"] for i in ids]
    assert [theirs[i]["brand_id"] for i in ids] == [mine[i]["brand_id"] for i in ids]
    for name in ("n_listings", "n_by_label", "decisions", "model_version"):
        assert remote[name] == local[name], name
    for name in ("auc", "recall_at_1pct_fpr", "brand_top1_fused", "unregistered_logo_attribution_rate",
                 "unbranded_attribution_rate", "authentic_blocked_rate", "counterfeit_blocked_recall",
                 "counterfeit_flagged_recall", "block_precision", "known_fake_reupload_recall"):
        assert (remote[name] is None) == (local[name] is None), name
        if local[name] is not None:
            assert remote[name] == pytest.approx(local[name], abs=1e-3), name
