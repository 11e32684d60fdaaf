"""The ``detector`` command line: registry, assets, indexes, scoring and serving.

Training-side commands (``data``, ``train``, ``evaluate``, ``demo``) are contributed by the ``training`` package
through the ``detector.commands`` entry-point group, so this runtime package never imports training code.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import Progress, track
from rich.table import Table

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["app", "main", "open_catalog", "HomeOption", "ModelOption"]

log = logging.getLogger(__name__)
console = Console(stderr=True)

app = typer.Typer(help="Counterfeit detector: brand registry, FAISS indexes, scoring.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
brands_app = typer.Typer(help="Register and list brands.", no_args_is_help=True)
assets_app = typer.Typer(help="Add and delete reference assets (authentic logos, known fakes).", no_args_is_help=True)
index_app = typer.Typer(help="Check and rebuild the FAISS indexes.", no_args_is_help=True)
app.add_typer(brands_app, name="brands")
app.add_typer(assets_app, name="assets")
app.add_typer(index_app, name="index")

HomeOption = Annotated[Path, typer.Option("--home", envvar="DETECTOR_HOME", help="Registry + indexes directory.")]
ModelOption = Annotated[str, typer.Option("--model", envvar="DETECTOR_MODEL",
                                          help="Model directory, 'default' or a BentoML model tag.")]
FactoryOption = Annotated[str, typer.Option("--index-factory", envvar="DETECTOR_INDEX_FACTORY",
                                            help="FAISS factory string for new indexes.")]
DATABASE_URL_ENV = "DETECTOR_DATABASE_URL"  # SQLAlchemy URL of the registry (default: SQLite in the home folder)
DEFAULT_HOME = Path("var/home")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".svg"}  # SVG: logos, rendered when added


def open_catalog(home: Path, model: str = "default", index_factory: str = "IDMap2,Flat", repair: bool = False):
    """Load the model bundle and open (or create) the catalog in ``home``."""
    from detector.bundle import load_model
    from indexes.catalog import Catalog

    bundle = load_model(model)
    catalog = Catalog.open(home, bundle.embedder, index_factory=index_factory, repair=repair,
                           database_url=os.environ.get(DATABASE_URL_ENV))
    return bundle, catalog


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@brands_app.command("add")
def brands_add(
    name: str,
    alias: Annotated[Optional[list[str]], typer.Option("--alias", help="Other names (repeatable).")] = None,
    seller: Annotated[Optional[list[str]], typer.Option("--seller", help="Authorised seller id (repeatable).")] = None,
    min_price: Annotated[Optional[float], typer.Option(help="Price floor of genuine goods.")] = None,
    currency: str = "USD",
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Register a brand."""
    _, catalog = open_catalog(home, model, index_factory)
    brand_id, version = catalog.add_brand(name, aliases=alias or [], authorized_sellers=seller or [],
                                          min_price=min_price, currency=currency)
    _echo_json({"brand_id": brand_id, "index_version": version})


@brands_app.command("update")
def brands_update(
    brand: Annotated[str, typer.Argument(help="Brand id, name or alias.")],
    alias: Annotated[Optional[list[str]], typer.Option("--alias", help="Replace the aliases (repeatable).")] = None,
    clear_aliases: Annotated[bool, typer.Option("--clear-aliases", help="Remove all aliases.")] = False,
    seller: Annotated[Optional[list[str]], typer.Option(
        "--seller", help="Replace the authorised sellers (repeatable).")] = None,
    clear_sellers: Annotated[bool, typer.Option("--clear-sellers", help="Remove all authorised sellers.")] = False,
    min_price: Annotated[Optional[float], typer.Option(help="New price floor of genuine goods.")] = None,
    clear_min_price: Annotated[bool, typer.Option("--clear-min-price", help="Remove the price floor.")] = False,
    currency: Annotated[Optional[str], typer.Option(help="Currency of the price floor.")] = None,
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Change a brand's aliases, authorised sellers or price floor; options left out keep their values."""
    from indexes.registry import UNSET, RegistryError

    for given, clear, names in ((alias, clear_aliases, "--alias and --clear-aliases"),
                                (seller, clear_sellers, "--seller and --clear-sellers"),
                                (min_price, clear_min_price, "--min-price and --clear-min-price")):
        if given is not None and clear:
            raise typer.BadParameter(f"{names} contradict each other")
    _, catalog = open_catalog(home, model, index_factory)
    try:
        record, version = catalog.update_brand(
            _resolve_brand(catalog.registry, brand), aliases=[] if clear_aliases else alias,
            authorized_sellers=[] if clear_sellers else seller,
            min_price=None if clear_min_price else UNSET if min_price is None else min_price, currency=currency)
    except RegistryError as err:
        raise typer.BadParameter(str(err)) from None
    _echo_json({"brand": record.to_dict(), "index_version": version})


@brands_app.command("list")
def brands_list(
    home: HomeOption = DEFAULT_HOME,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered brands with their asset counts."""
    from indexes.registry import Registry

    url = os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{(Path(home) / 'registry.db').resolve()}"
    rows = [b.to_dict() for b in Registry(url).list_brands()]
    if as_json:
        _echo_json(rows)
        return
    table = Table("id", "name", "aliases", "sellers", "min price", "authentic", "known fakes")
    for b in rows:
        table.add_row(str(b["brand_id"]), b["name"], ", ".join(b["aliases"]), ", ".join(b["authorized_sellers"]),
                      "" if b["min_price"] is None else f"{b['min_price']:.2f} {b['currency']}",
                      str(b["n_authentic"]), str(b["n_known_fakes"]))
    Console().print(table)


def _resolve_brand(registry: Any, ref: str) -> int:
    """A brand id from an id or a (case-insensitive) name or alias."""
    from indexes.registry import NotFound

    try:
        brand = registry.get_brand(int(ref)) if ref.isdigit() else registry.find_brand_by_name(ref)
    except NotFound:
        brand = None
    if brand is None:
        raise typer.BadParameter(f"no brand {ref!r} (give a brand id, name or alias)")
    return brand.id


def _image_files(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise typer.BadParameter(f"{p} does not exist")
    return files


def _read_asset(path: Path) -> bytes | Image.Image:
    """File bytes (checked when added), or the rendered logo of an SVG file."""
    from indexes.images import ImageError, decode_image

    if path.suffix.lower() != ".svg":
        return path.read_bytes()
    try:
        return decode_image(path.read_bytes(), svg=True)
    except ImageError as err:
        raise typer.BadParameter(f"{path}: {err.reason}") from None


@assets_app.command("add")
def assets_add(
    brand: Annotated[str, typer.Argument(help="Brand id or name.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    kind: Annotated[str, typer.Option(help="authentic or known_fake.")] = "authentic",
    title: Optional[str] = None,
    source: Optional[str] = None,
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Add reference images of a brand (files or whole folders)."""
    if kind not in ("authentic", "known_fake"):
        raise typer.BadParameter("kind must be 'authentic' or 'known_fake'")
    from indexes.catalog import AssetInput

    _, catalog = open_catalog(home, model, index_factory)
    brand_id = _resolve_brand(catalog.registry, brand)
    files = _image_files(paths)
    items = [AssetInput(brand_id, kind, _read_asset(f), title or f.stem, source or str(f))
             for f in track(files, description="reading", console=console)]
    with Progress(console=console) as bar:
        task = bar.add_task(f"embedding {len(items)} images", total=len(items))
        ids, version = catalog.add_assets(items, progress=lambda done, total: bar.update(task, completed=done))
    _echo_json({"asset_ids": ids, "index_version": version})


@assets_app.command("delete")
def assets_delete(
    asset_ids: list[int],
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Delete assets: they leave the indexes at once."""
    _, catalog = open_catalog(home, model, index_factory)
    out = [{"asset_id": a, "deleted": catalog.delete_asset(a)[0]} for a in asset_ids]
    _echo_json({"results": out, "index_version": catalog.index_version})


@index_app.command("check")
def index_check(
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Compare the indexes on disk with the registry; exit 1 on any mismatch (repair with `index rebuild`)."""
    from indexes.catalog import IndexMismatchError

    try:
        _, catalog = open_catalog(home, model, index_factory)
        report = catalog.check()
    except IndexMismatchError as err:
        report = err.report
    _echo_json({"ok": report.ok, "problems": report.problems})
    if not report.ok:
        raise typer.Exit(1)


@index_app.command("rebuild")
def index_rebuild(
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Rebuild every index from the registry (re-embedding where the model changed)."""
    _, catalog = open_catalog(home, model, index_factory, repair=True)
    with Progress(console=console) as bar:
        task = bar.add_task("re-indexing", total=None)
        catalog.rebuild(progress=lambda done, total: bar.update(task, completed=done, total=total))
    report = catalog.check()
    _echo_json({"ok": report.ok, "index_version": catalog.index_version, "problems": report.problems})


@app.command("score")
def score(
    listing_json: Annotated[Optional[Path], typer.Argument(help="Listing JSON file (fields as in the HTTP API; "
                                                           "'images' may hold file paths), or - for stdin.")] = None,
    image: Annotated[Optional[list[Path]], typer.Option("--image", help="Photo file (repeatable).")] = None,
    title: str = "",
    description: str = "",
    price: Optional[float] = None,
    currency: Optional[str] = None,
    seller: Optional[str] = None,
    listing_id: str = "cli",
    home: HomeOption = DEFAULT_HOME,
    model: ModelOption = "default",
    index_factory: FactoryOption = "IDMap2,Flat",
) -> None:
    """Score a listing and print the verdict with its evidence."""
    from detector.listing import Listing
    from detector.scoring import Scorer
    from indexes.images import decode_image

    if listing_json is not None:
        raw = sys.stdin.read() if str(listing_json) == "-" else listing_json.read_text()
        d = json.loads(raw)
        base = listing_json.parent if str(listing_json) != "-" else Path.cwd()
        files = [base / p for p in d.get("images", [])]
        listing = Listing(str(d.get("listing_id", listing_id)), d.get("title", ""), d.get("description", ""),
                          d.get("price"), d.get("currency"), d.get("seller_id"),
                          [decode_image(f.read_bytes()) for f in files])
    else:
        listing = Listing(listing_id, title, description, price, currency, seller,
                          [decode_image(f.read_bytes()) for f in image or []])
    bundle, catalog = open_catalog(home, model, index_factory)
    result = Scorer(bundle, catalog).score(listing)
    _echo_json(result.to_dict())


@app.command("serve")
def serve(
    home: HomeOption = DEFAULT_HOME,
    port: int = 3000,
    host: str = "127.0.0.1",
    model: ModelOption = "default",
) -> None:
    """Serve the HTTP API with BentoML (the service named in bentofile.yaml)."""
    import signal
    import subprocess
    import threading

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DETECTOR_HOME": str(Path(home).resolve()), "DETECTOR_MODEL": model}
    cmd = [sys.executable, "-m", "bentoml", "serve", "detector.service:CounterfeitDetector",
           "--host", host, "--port", str(port), "--working-dir", str(root)]
    proc = subprocess.Popen(cmd, env=env)
    # A supervisor's SIGTERM reaches only this process: pass it on, or the server would outlive its parent.
    forward = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate()) if forward else None
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl+C reached the server too (same process group): let it shut down
        code = proc.wait()
    finally:
        if forward:
            signal.signal(signal.SIGTERM, previous)
    raise typer.Exit(code)


def _load_plugins() -> None:
    for ep in entry_points(group="detector.commands"):
        try:
            ep.load()(app)
        except Exception as err:  # a broken plugin must not take down the runtime commands
            log.warning("could not load detector command plugin %s: %s", ep.name, err)


_plugins_loaded = False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (tests call this directly); returns the exit code."""
    global _plugins_loaded
    logging.basicConfig(level=os.environ.get("DETECTOR_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _plugins_loaded:
        _load_plugins()
        _plugins_loaded = True
    try:
        result = app(args=argv if argv is not None else sys.argv[1:], prog_name="detector", standalone_mode=False)
    except typer.Exit as err:
        return err.exit_code
    except typer.Abort:
        return 1
    except typer.TyperException as err:  # usage errors and bad parameters: the message, not a traceback
        err.show()
        return getattr(err, "exit_code", 2)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
