"""Training-side commands for the ``detector`` CLI (entry-point group ``detector.commands``).

Adds ``detector data generate``, ``detector train``, ``detector evaluate``, ``detector compare``, ``detector demo``
and ``detector feedback export``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]

log = logging.getLogger(__name__)

DEMO_DATA = Path("var/demo-data")
DEMO_HEADLINE = ("brand_top1_photo", "brand_top1_photo_ocr", "title_top1", "obfuscated_title_top1", "auc",
                 "recall_at_1pct_fpr", "known_fake_reupload_recall", "unregistered_logo_attribution_rate",
                 "authentic_blocked_rate")


def register(app: typer.Typer) -> None:
    """Attach the training commands to the runtime CLI."""
    data_app = typer.Typer(help="Generate listing datasets from real brand logos.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("generate")
    def data_generate(
        out: Path,
        n_brands: Annotated[Optional[int], typer.Option(help="Brands to use (default: all).")] = None,
        listings_per_brand: Annotated[Optional[int], typer.Option()] = None,
        seed: Annotated[Optional[int], typer.Option(help="Random seed (default: the config's, else 0).")] = None,
        workers: int = 1,
        config: Annotated[Optional[Path], typer.Option(help="JSON file of DataConfig fields; options given "
                                                           "override them.")] = None,
        overwrite: bool = False,
    ) -> None:
        """Render logos into marketplace listings (JSONL + images, see docs/data_format.md)."""
        from training.data import DataConfig, generate_dataset

        fields = json.loads(config.read_text()) if config else {}
        if seed is not None:
            fields["seed"] = seed
        if n_brands is not None:
            fields["n_brands"] = n_brands
        if listings_per_brand is not None:
            fields["listings_per_brand"] = listings_per_brand
        path = generate_dataset(out, DataConfig(**fields), progress=True, workers=workers, overwrite=overwrite)
        typer.echo(json.dumps(json.loads((path / "manifest.json").read_text())["counts"], indent=2))

    @app.command("train")
    def train_cmd(
        data: Path,
        out: Path,
        config: Annotated[str, typer.Option(help="Train config name or JSON file.")] = "quick",
        extra_data: Annotated[Optional[list[Path]], typer.Option(
            "--extra-data", help="Dataset folder whose train/val listings are appended (repeatable).")] = None,
        companion_data: Annotated[Optional[list[Path]], typer.Option(
            "--companion-data", help="Another marketplace (e.g. listings drawn by another photo composer), featurized "
                                     "against its own registry; its train/val listings join training and validation "
                                     "(repeatable).")] = None,
        embedder_from: Annotated[Optional[str], typer.Option(
            "--embedder-from", help="Reuse this model's embedder (directory, 'default' or BentoML tag) instead of "
                                    "fine-tuning; retrains only the classifier and policy.")] = None,
    ) -> None:
        """Train a model directory (OUT/model) on a dataset's train/val splits (plus any --extra-data)."""
        from training.train import get_train_config, train

        train_config = get_train_config(config)
        train_config.extra_data = [*train_config.extra_data, *(str(p) for p in extra_data or [])]
        train_config.companion_data = [*train_config.companion_data, *(str(p) for p in companion_data or [])]
        model_dir = train(train_config, data, out, embedder_from=embedder_from)
        meta = json.loads((model_dir / "model.json").read_text())
        typer.echo(json.dumps({"model_dir": str(model_dir), "version": meta["version"],
                               "metrics": meta["metrics"]}, indent=2))

    feedback_app = typer.Typer(help="Turn moderators' verdicts into training data.", no_args_is_help=True)
    app.add_typer(feedback_app, name="feedback")

    @feedback_app.command("export")
    def feedback_export(
        out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")],
        home: Annotated[Path, typer.Option("--home", envvar="DETECTOR_HOME",
                                           help="Service home (registry + listing-images).")] = Path("var/home"),
        since: Annotated[Optional[str], typer.Option(help="Only feedback from this ISO 8601 time on (UTC).")] = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        overwrite: bool = False,
    ) -> None:
        """Export reviewed listings, brands and assets as a dataset folder for `detector train --extra-data`."""
        import os

        from training.feedback import export_feedback_dataset

        # DETECTOR_DATABASE_URL points the registry elsewhere, as for the runtime commands; photos stay in the home.
        source = os.environ.get("DETECTOR_DATABASE_URL") or home
        path = export_feedback_dataset(source, out, since, val_fraction, seed, images_home=home, overwrite=overwrite)
        typer.echo(json.dumps(json.loads((path / "manifest.json").read_text())["counts"], indent=2))

    @app.command("evaluate")
    def evaluate_cmd(
        data: Path,
        out: Path,
        model: str = "default",
        split: str = "test",
        gallery: str = "all",
        max_listings: Optional[int] = None,
    ) -> None:
        """Evaluate a model on a split (held-out brands); writes metrics.json and report.html."""
        from training.evaluate import evaluate

        metrics = evaluate(model, data, out, split, gallery, max_listings)
        typer.echo(json.dumps(metrics, indent=2))

    @app.command("compare")
    def compare_cmd(
        model_a: str,
        model_b: str,
        data: Path,
        out: Path,
        split: str = "test",
        gallery: str = "all",
        max_listings: Optional[int] = None,
    ) -> None:
        """Evaluate two models (dirs, 'default' or BentoML tags) on the same split and print the deltas (b - a)."""
        from rich.console import Console
        from rich.table import Table

        from training.evaluate import compare

        result = compare(model_a, model_b, data, out, split, gallery, max_listings)
        table = Table("metric", f"a {result['version_a']}", f"b {result['version_b']}", "delta")
        for key, row in result["metrics"].items():
            table.add_row(key, str(row["a"]), str(row["b"]), f"{row['delta']:+}")
        Console(stderr=True).print(table)
        typer.echo(json.dumps(result, indent=2))

    @app.command("demo")
    def demo_cmd(
        home: Annotated[Path, typer.Option(envvar="DETECTOR_HOME")] = Path("var/home"),
        data: Path = DEMO_DATA,
        n_brands: int = 300,
        max_listings: int = 300,
        model: Annotated[str, typer.Option(envvar="DETECTOR_MODEL")] = "default",
        serve: bool = False,
        port: int = 3000,
    ) -> None:
        """Register a few hundred real brands, score held-out test listings, print the metrics; optionally serve."""
        from detector.bundle import load_model
        from training.data import DataConfig, generate_dataset
        from training.evaluate import score_split
        from training.metrics import compute_metrics

        if not (data / "manifest.json").is_file():
            generate_dataset(data, DataConfig(n_brands=n_brands, listings_per_brand=6, seed=0), progress=True,
                             workers=2)
        bundle = load_model(model)
        scored, risks = score_split(bundle, data, "test", "all", max_listings=max_listings, home=home)
        metrics = compute_metrics(scored, risks, bundle.policy)
        headline = {k: metrics[k] for k in DEMO_HEADLINE}
        typer.echo(json.dumps({"model_version": bundle.version, "n_test_listings": metrics["n_listings"],
                               **headline, "decisions": metrics["decisions"]}, indent=2))
        if serve:
            import subprocess
            import sys

            typer.echo(_curl_example(home, port, data), err=True)
            raise typer.Exit(subprocess.call([sys.executable, "-m", "detector.cli", "serve", "--home", str(home),
                                              "--port", str(port), "--model", model]))


def _curl_example(home: Path, port: int, data: Path) -> str:
    """A ready-to-paste request against the demo server (tokens are read from the home's tokens.json)."""
    from training.data import load_dataset

    dataset = load_dataset(data)
    rec = next(r for r in dataset.listings_for("test") if r["label"] == "counterfeit")
    photo = dataset.image_path(rec["images"][0])
    title = re.sub(r"[^\w .,:;!?&%+/()-]", "", rec["title"])  # nothing the shell would interpret
    return f"""
Serving on http://localhost:{port} (OpenAPI: /docs.json). In another shell, once /readyz answers 200:

  MOD=$(python3 -c "import json; print(json.load(open('{home}/tokens.json'))['moderator'][0])")
  curl -s localhost:{port}/v1/score -H "Authorization: Bearer $MOD" -H 'Content-Type: application/json' \\
    -d "{{\\"listing_id\\": \\"{rec['listing_id']}\\", \\"title\\": \\"{title}\\", \\"price\\": {rec['price']}, \\"seller_id\\": \\"{rec['seller_id']}\\", \\"images_b64\\": [\\"$(base64 -w0 {photo.resolve()})\\"]}}"
"""
