"""ONNX Runtime for the embedder's image tower (feature-map region embeddings).

The exported graph maps a preprocessed batch ``(B, 3, S, S)`` to L2-normalised region embeddings ``(B, R, D)``:
``trunk.forward_features`` -> :meth:`Embedder.pool_regions` -> ``visual.head`` -> normalise, exactly what
:meth:`Embedder.embed_image_regions` computes with torch. The batch axis is dynamic; ``S`` (and so the region
grid) is fixed per file: one file for the main input size and one beside it for each of the config's
``regions.extra_sizes`` (:func:`extra_size_path`).

Every ``.onnx`` file carries a JSON sidecar (same stem, ``.json``) naming the embedder that produced it, its
shapes, the file's sha256 and the library versions; :class:`OnnxImageTower` refuses a file whose sidecar names
another embedder or whose bytes do not match the recorded hash.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. It works offline with torch 2.14 and
needs only the ``onnx`` package; the dynamo exporter would also need ``onnxscript``, which is not a dependency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from detector.embedder import Embedder

__all__ = [
    "OnnxImageTower",
    "export_image_tower",
    "export_image_tower_cached",
    "read_sidecar",
    "sidecar_path",
    "default_cache_dir",
    "config_fingerprint",
    "extra_size_path",
]

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
INPUT_NAME = "pixels"
OUTPUT_NAME = "region_embeddings"


class _RegionTower(torch.nn.Module):
    """The traced graph: preprocessed pixels -> L2-normalised region embeddings (``views``: then the fingerprint
    views' regions, see :attr:`Embedder.fingerprint_views`)."""

    def __init__(self, embedder: "Embedder", views: bool = False) -> None:
        super().__init__()
        self.trunk = embedder.model.visual.trunk
        self.head = embedder.model.visual.head
        self.pool_regions = embedder.pool_regions  # a bound method: regions stay defined in one place
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regions = self.head(self.pool_regions(self.trunk.forward_features(x), views=self.views))
        return F.normalize(regions, dim=-1)


def extra_size_path(path: str | Path, size: int) -> Path:
    """Where the tower for extra input size ``size`` lives, beside the main size's ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-{size}{path.suffix}")


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar that describes an exported ``.onnx`` file."""
    return Path(path).with_suffix(".json")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read the sidecar of an exported ``.onnx`` file (FileNotFoundError when it has none)."""
    side = sidecar_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"{path}: no sidecar {side.name}; export it with export_image_tower")
    return json.loads(side.read_text())


def config_fingerprint(embedder: "Embedder") -> str:
    """Short hash of the embedder's full config: a config edited under the same name is a different export."""
    blob = json.dumps(embedder.config.to_dict(), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def default_cache_dir(kind: str = "onnx") -> Path:
    """Where :func:`export_image_tower_cached` keeps exports unless told otherwise (other ``kind``: other caches
    derived from an embedder, such as :func:`detector.plain_marks.plain_mark_bank`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "counterfeit-detector" / kind


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {"torch": torch.__version__}
    for pkg in ("onnx", "onnxruntime", "timm", "open_clip_torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def export_image_tower(embedder: "Embedder", path: str | Path, opset: int = 17, size: int | None = None) -> Path:
    """Export the embedder's image tower (region embeddings) to ONNX, with a JSON sidecar.

    Args:
        embedder: a ``feature_map`` embedder (conv tower); its current weights are exported.
        path: the ``.onnx`` file to write; the sidecar goes to ``path.with_suffix(".json")``.
        opset: ONNX opset version.
        size: input side of the graph (default: the config's main ``preprocess.image_size``).

    Returns:
        The path of the written ``.onnx`` file.

    Raises:
        ValueError: the embedder uses the ``crops`` region strategy (no single-pass region graph to export).
        torch.onnx.OnnxExporterError: the ``onnx`` package is not installed.
    """
    if embedder.config.regions.strategy != "feature_map":
        raise ValueError(f"{embedder.model_id}: only 'feature_map' region towers can be exported to ONNX")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = int(size or embedder.config.preprocess.image_size)
    if size not in embedder.boxes_by_size:
        raise ValueError(f"{embedder.model_id}: {size} px is not one of its input sizes {list(embedder.boxes_by_size)}")
    views = size == embedder.config.preprocess.image_size  # the main size's tower also pools fingerprint views
    n_regions = len(embedder.boxes_by_size[size]) + (embedder.n_view_regions if views else 0)
    tower = _RegionTower(embedder, views=views).eval()
    example = torch.zeros(2, 3, size, size)
    # Write beside the target and rename, so a concurrent reader never sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    t0 = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns that the feature-map side becomes a constant: intended, S is fixed by the config.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # Deprecation notices about the TorchScript exporter: chosen knowingly (see the module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            tower, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    os.replace(tmp, path)
    meta = {
        "format_version": SIDECAR_FORMAT,
        "kind": "image_tower_regions",
        "model_id": embedder.model_id,
        "config_name": embedder.config.name,
        "config_fingerprint": config_fingerprint(embedder),
        "image_size": size,
        "regions": n_regions,
        "dim": int(embedder.dim),
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, size, size], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", n_regions, int(embedder.dim)], "dtype": "float32"},
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=False)",
        "sha256": _sha256(path),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "library_versions": _versions(),
    }
    side = sidecar_path(path)
    side_tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    side_tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(side_tmp, side)
    log.info("exported %s image tower to %s in %.1f s", embedder.model_id, path, time.perf_counter() - t0)
    return path


def _cache_is_fresh(path: Path, embedder: "Embedder") -> bool:
    """Whether a cached export was made from this embedder and its bytes are intact."""
    if not path.is_file() or not sidecar_path(path).is_file():
        return False
    try:
        meta = read_sidecar(path)
    except (OSError, json.JSONDecodeError):
        return False
    return (meta.get("model_id") == embedder.model_id
            and meta.get("config_fingerprint") == config_fingerprint(embedder)
            and meta.get("sha256") == _sha256(path))


def export_image_tower_cached(embedder: "Embedder", cache_dir: str | Path | None = None, opset: int = 17) -> Path:
    """Export the image tower once into ``cache_dir`` (keyed by model id and config) and reuse that file afterwards.

    Returns the main input size's file; those of ``regions.extra_sizes`` lie beside it (:func:`extra_size_path`).
    Two configs of one model (e.g. with and without ``fingerprints.query_subgrids``) keep separate files. A cached
    file whose sidecar names another model id or config, or whose bytes no longer match its hash, is exported again.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = re.sub(r"[^A-Za-z0-9@._-]+", "_", f"{embedder.model_id}_{config_fingerprint(embedder)}")
    path = cache_dir / f"{stem}.onnx"
    for size in (None, *embedder.config.regions.extra_sizes):
        file = path if size is None else extra_size_path(path, size)
        if _cache_is_fresh(file, embedder):
            log.info("reusing ONNX export %s", file)
        else:
            export_image_tower(embedder, file, opset=opset, size=size)
    return path


class OnnxImageTower:
    """An ONNX Runtime session over an exported image tower; ``tower(batch)`` returns region embeddings.

    Refuses a file whose sidecar names another model id than ``model_id`` or whose bytes do not match the
    sidecar's sha256. ``InferenceSession.run`` is thread-safe, so one tower can serve concurrent requests.

    ``allow_spinning`` keeps ORT's idle intra-op threads busy-waiting for the next op. That helps a process that
    only runs this session, but it starves whatever runs next on the same cores. In scoring, the torch text
    tower runs right after the image tower, and with spinning on it took 8x longer on a busy 2-core machine.
    """

    def __init__(self, path: str | Path, model_id: str, num_threads: int | None = None,
                 allow_spinning: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.meta = read_sidecar(self.path)
        if self.meta.get("model_id") != model_id:
            raise ValueError(f"{self.path} was exported from embedder {self.meta.get('model_id')!r}, "
                             f"not {model_id!r}; export it again with export_image_tower")
        digest = _sha256(self.path)
        if digest != self.meta.get("sha256"):
            raise ValueError(f"{self.path}: sha256 {digest[:12]} does not match its sidecar "
                             f"({str(self.meta.get('sha256'))[:12]}); the file was changed after export")
        self.model_id = model_id
        self.num_threads = int(num_threads or torch.get_num_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1  # the graph is one chain: parallelism is inside the convolutions
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.image_size = int(self.meta["image_size"])
        self.regions = int(self.meta["regions"])
        self.dim = int(self.meta["dim"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Region embeddings ``(B, R, D)`` (float32, unit norm) of a preprocessed ``(B, 3, S, S)`` batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        expected = (3, self.image_size, self.image_size)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"expected a batch of shape (B, {', '.join(map(str, expected))}), got {batch.shape}")
        return self.session.run(None, {self.input_name: batch})[0]

    def __repr__(self) -> str:
        return f"OnnxImageTower({str(self.path)!r}, model_id={self.model_id!r}, threads={self.num_threads})"
