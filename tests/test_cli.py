"""The detector CLI through main(argv): brands, assets (files and folders), score, index check/rebuild, data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.cli import main
from training import render


def run(capsys, *argv: str) -> tuple[int, object]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip().startswith(("{", "[")) else out)


@pytest.fixture(scope="module")
def logos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logos")
    icon = render.get_icon("spotify")
    (folder / "refs").mkdir()
    for variant in render.REFERENCE_VARIANTS:
        render.render_reference(icon, variant).save(folder / "refs" / f"spotify-{variant}.png")
    photo = render.compose_listing_photo(render.render_logo(icon, 256), np.random.default_rng(3))
    photo.save(folder / "listing.jpg")
    return folder


def test_cli_end_to_end(tmp_path, logos, capsys):
    home = str(tmp_path / "home")
    code, out = run(capsys, "brands", "add", "Spotify", "--alias", "Spotify AB", "--seller", "spotify-store",
                    "--min-price", "30", "--home", home)
    assert code == 0
    brand_id = out["brand_id"]
    code, out = run(capsys, "brands", "list", "--json", "--home", home)
    assert code == 0 and out[0]["name"] == "Spotify" and out[0]["aliases"] == ["Spotify AB"]

    code, out = run(capsys, "assets", "add", "Spotify", str(logos / "refs"), "--home", home)
    assert code == 0 and len(out["asset_ids"]) == 2
    svg = tmp_path / "spotify.svg"
    svg.write_text(render.get_icon("spotify").svg)  # the logo as brand teams have it
    code, out = run(capsys, "assets", "add", "Spotify", str(svg), "--home", home)
    assert code == 0 and len(out["asset_ids"]) == 1
    svg.write_text("<svg")
    capsys.readouterr()
    assert main(["assets", "add", "Spotify", str(svg), "--home", home]) == 2
    assert "spotify.svg: cannot read SVG" in capsys.readouterr().err
    code, out = run(capsys, "assets", "add", str(brand_id), str(logos / "listing.jpg"), "--kind", "known_fake",
                    "--home", home)
    assert code == 0 and len(out["asset_ids"]) == 1
    fake_id = out["asset_ids"][0]

    code, out = run(capsys, "score", "--image", str(logos / "listing.jpg"), "--title", "Sp0tify hoodie replica 1:1",
                    "--price", "4.5", "--seller", "cheap-deals", "--home", home)
    assert code == 0
    assert out["brand"]["name"] == "Spotify" and out["decision"] in ("review", "block")
    assert out["signals"]["title_obfuscated"] is True and "replica" in out["signals"]["replica_terms"]
    assert any(e["asset_id"] == fake_id and e["kind"] == "known_fake" for e in out["evidence"])

    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps({"listing_id": "L1", "title": "Spotify logo tee", "price": 35.0,
                                   "seller_id": "spotify-store", "images": [str(logos / "listing.jpg")]}))
    code, out = run(capsys, "score", str(listing), "--home", home)
    assert code == 0 and out["listing_id"] == "L1" and out["decision"] != "block"
    assert out["signals"]["authorized_seller"] is True

    code, out = run(capsys, "brands", "update", "Spotify AB", "--clear-sellers", "--alias", "Spotify Music",
                    "--min-price", "20", "--home", home)
    assert code == 0 and out["brand"]["authorized_sellers"] == [] and out["brand"]["min_price"] == 20.0
    assert out["brand"]["aliases"] == ["Spotify Music"]
    code, out = run(capsys, "score", str(listing), "--home", home)
    assert code == 0 and out["signals"]["authorized_seller"] is False
    capsys.readouterr()
    assert main(["brands", "update", "Spotify", "--min-price", "5", "--clear-min-price", "--home", home]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["brands", "update", "Spotify", "--currency", "dollars", "--home", home]) == 2
    assert "ISO 4217" in capsys.readouterr().err

    code, out = run(capsys, "assets", "delete", str(fake_id), "--home", home)
    assert code == 0 and out["results"] == [{"asset_id": fake_id, "deleted": True}]
    code, out = run(capsys, "score", "--image", str(logos / "listing.jpg"), "--title", "hoodie", "--home", home)
    assert fake_id not in [e["asset_id"] for e in out["evidence"]]

    code, out = run(capsys, "index", "check", "--home", home)
    assert code == 0 and out["ok"] is True
    manifest = tmp_path / "home" / "indexes" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"index_version"', '"index_versio"'))
    code, out = run(capsys, "index", "check", "--home", home)
    assert code == 1 and out["ok"] is False and out["problems"]
    code, out = run(capsys, "index", "rebuild", "--home", home)
    assert code == 0 and out["ok"] is True
    code, out = run(capsys, "index", "check", "--home", home)
    assert code == 0


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["assets", "add", "1", str(tmp_path / "missing.png"), "--home", str(tmp_path)]) != 0
    assert main(["no-such-command"]) != 0
    assert main(["assets", "add", "1", str(tmp_path), "--kind", "bogus", "--home", str(tmp_path)]) != 0


def test_cli_generates_data(tmp_path, capsys):
    code, out = run(capsys, "data", "generate", str(tmp_path / "d"), "--n-brands", "12", "--listings-per-brand", "3")
    assert code == 0
    written = (tmp_path / "d" / "listings.jsonl").read_text().splitlines()
    assert len(written) == sum(sum(by_label.values()) for by_label in out["listings"].values()) > 0


def test_cli_data_config_keeps_its_seed_unless_one_is_given(tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"n_brands": 8, "listings_per_brand": 2, "seed": 3}))
    seeds = {}
    for name, extra in (("from_config", []), ("given", ["--seed", "5"]), ("default", None)):
        args = ["--config", str(config), *extra] if extra is not None else ["--n-brands", "8", "--listings-per-brand", "2"]
        code, _ = run(capsys, "data", "generate", str(tmp_path / name), *args)
        assert code == 0
        seeds[name] = json.loads((tmp_path / name / "manifest.json").read_text())["seed"]
    assert seeds == {"from_config": 3, "given": 5, "default": 0}
