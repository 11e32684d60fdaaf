"""Contrastive fine-tuning of the embedder so a logo inside a product photo lands next to the brand's references.

LiT-style: the text transformer and the image trunk stay frozen (their features are computed once and cached); the
image head (projection) and the text projection are trained with InfoNCE and in-batch negatives. With
``unfreeze_blocks = N`` the last N blocks of the image trunk train too (at ``block_lr``): the input of the first of
them is cached instead, so a step costs only those blocks' forward and backward passes. Losses:

* photo <-> clean reference render: a photo's score for a brand is a soft maximum over its region embeddings
  (multiple-instance: we do not need the logo's box, and inference also takes the best region);
* photo <-> brand name text (weight ``text_weight``);
* reference render <-> brand name text, which keeps the reference and text spaces aligned.

Photos are rendered fresh from simple-icons logos of non-held-out brands with strong augmentation
(``training.render``, and optionally the other composers ``training.scenes``, ``training.render3d`` and
``training.snapshots``), optionally beside made-up marks (``training.marks``). Held-out brands (sha1(slug) % 10 == 0)
are used only to report generalisation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from detector.embedder import Embedder, TappedBlocks, create_embedder
from training import marks, render, render3d, scenes, snapshots
from training.pipeline import progress_bar
from training.splits import is_heldout_brand

__all__ = ["FinetuneConfig", "finetune", "trained_slugs", "load_finetune_weights", "render_brand_set",
           "cache_features", "evaluate_retrieval", "TrunkTail"]

log = logging.getLogger(__name__)

WEIGHTS_FILE = "finetune_weights.safetensors"  # written next to finetune.json as soon as fine-tuning ends


@dataclass
class FinetuneConfig:
    """Contrastive fine-tuning of the projections (see module docstring)."""

    n_brands: int | None = 600  # training brands (non-held-out), None = all
    photos_per_brand: int = 3  # fresh product photos rendered per training brand
    epochs: int = 40
    batch_size: int = 128  # brands per step (in-batch negatives)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    init_temperature: float = 0.07  # contrastive temperature (learned)
    region_temperature: float = 0.03  # softness of the max over regions
    text_weight: float = 0.25  # weight of the photo<->brand-name and reference<->name losses
    eval_brands: int = 200  # held-out brands used to report retrieval (never trained on)
    eval_photos_per_brand: int = 2
    unfreeze_blocks: int = 0  # last image-trunk blocks trained too (0 = projections only, LiT)
    block_lr: float = 2e-4  # learning rate of the unfrozen blocks
    # Share of each batch drawn as groups of brands whose references look alike (an anchor and its nearest
    # neighbours under the current model, refreshed every epoch), so in-batch negatives include the marks a photo
    # is confused with; the rest of the batch is drawn uniformly. 0 = uniform batches.
    hard_negatives: float = 0.0
    hard_group: int = 8  # brands per look-alike group
    # Extra photos per training brand drawn by the second composer (training.scenes), from these scenes only (empty:
    # all), so the embedder also sees marks on labels, embossed, tiled, close up, ...; 0 = mock-up photos only.
    scene_photos_per_brand: int = 0
    scenes: tuple[str, ...] = ()
    # Extra photos per training brand drawn by the third composer (training.render3d: the mark as a texture on a
    # ray-cast object, about 0.26 s a photo); 0 = none. A model trained with them has no render3d dataset left as a
    # composer it never saw.
    render3d_photos_per_brand: int = 0
    # Extra photos per training brand drawn by the fourth composer (training.snapshots: a phone snapshot of a tag,
    # sticker, bag, ... that carries the mark); 0 = none. Likewise, a model trained with them has no snapshots
    # dataset left as a composer it never saw.
    snapshot_photos_per_brand: int = 0
    # Made-up marks (training.marks: wordmarks, monograms, badges) trained on beside the brands, as classes of their
    # own with the same photos per mark; 0 = brands only. They are no brand, so no brand split changes.
    made_up_marks: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.hard_negatives <= 1.0:
            raise ValueError(f"hard_negatives={self.hard_negatives}: a share of the batch, in [0, 1]")
        if self.hard_group < 2:
            raise ValueError(f"hard_group={self.hard_group}: a group needs an anchor and at least one neighbour")
        self.scenes = tuple(self.scenes)
        for name in ("scene_photos_per_brand", "render3d_photos_per_brand", "snapshot_photos_per_brand",
                     "made_up_marks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: a count, >= 0")
        unknown = [s for s in self.scenes if s not in scenes.SCENES]
        if unknown or len(set(self.scenes)) != len(self.scenes):
            raise ValueError(f"finetune scenes {list(self.scenes)}: distinct names of {', '.join(scenes.SCENES)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "FinetuneConfig":
        return cls(**(d or {}))


@dataclass
class BrandSet:
    """Rendered photos and references of some brands."""

    slugs: list[str]
    names: list[str]
    photos: list[Image.Image]
    photo_brand: np.ndarray  # index into slugs
    refs: list[Image.Image]
    ref_brand: np.ndarray


def render_brand_set(icons: list[render.Icon], photos_per_brand: int, seed: int, progress: bool = True,
                     scene_photos_per_brand: int = 0, scene_names: Sequence[str] = (),
                     render3d_photos_per_brand: int = 0, snapshot_photos_per_brand: int = 0) -> BrandSet:
    """Two clean references (light, dark), ``photos_per_brand`` mock-up photos, ``scene_photos_per_brand`` photos
    of the scenes ``scene_names`` (all when empty; :mod:`training.scenes`), ``render3d_photos_per_brand`` photos
    of :mod:`training.render3d` objects and ``snapshot_photos_per_brand`` :mod:`training.snapshots` photos per
    brand, in that order. Each composer draws from its own generator, so the photos of one are those of a set
    without the others."""
    scene_rng = np.random.default_rng([seed, 1])
    # the composers that take no options: how many photos each draws per brand, from a generator of its own
    others = ((render3d_photos_per_brand, render3d.compose_3d_photo, np.random.default_rng([seed, 2])),
              (snapshot_photos_per_brand, snapshots.compose_snapshot_photo, np.random.default_rng([seed, 3])))
    scene_names = tuple(scene_names) or tuple(scenes.SCENES)
    rng = np.random.default_rng(seed)
    photos, photo_brand, refs, ref_brand = [], [], [], []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"rendering {len(icons)} brands", total=len(icons))
        for b, icon in enumerate(icons):
            for variant in render.REFERENCE_VARIANTS:
                refs.append(render.render_reference(icon, variant))
                ref_brand.append(b)
            logo = render.render_logo(icon, 256)
            for _ in range(photos_per_brand):
                photos.append(render.compose_listing_photo(logo, rng, 320))
                photo_brand.append(b)
            for _ in range(scene_photos_per_brand):
                scene = scene_names[int(scene_rng.integers(len(scene_names)))]
                photos.append(scenes.compose_scene_photo(logo, scene_rng, 320, scene=scene))
                photo_brand.append(b)
            for count, compose, other_rng in others:
                for _ in range(count):
                    photos.append(compose(logo, other_rng, 320))
                    photo_brand.append(b)
            bar.advance(task)
    return BrandSet([i.slug for i in icons], [i.title for i in icons], photos, np.array(photo_brand), refs,
                    np.array(ref_brand))


@torch.inference_mode()
def cache_features(embedder: Embedder, images: list[Image.Image], regions: bool, progress: bool = True,
                   description: str = "trunk features") -> torch.Tensor:
    """Frozen-trunk features pooled per region ``(N, R, C)`` (or whole-image ``(N, C)``), as float16."""
    trunk = embedder.model.visual.trunk
    out = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{description} ({len(images)})", total=len(images))
        for start in range(0, len(images), embedder.batch_size):
            chunk = images[start : start + embedder.batch_size]
            x = torch.stack([embedder.preprocess(im.convert("RGB")) for im in chunk])
            fmap = trunk.forward_features(x.contiguous(memory_format=torch.channels_last))
            pooled = embedder.pool_regions(fmap, whole_only=not regions)
            out.append((pooled if regions else pooled[:, 0]).to(torch.float16))
            bar.advance(task, len(chunk))
    return torch.cat(out)


class TrunkTail(torch.nn.Module):
    """The last ``n`` blocks of the (tapped) EfficientNet trunk, run from the cached input of the first of them."""

    def __init__(self, embedder: Embedder, n: int) -> None:
        super().__init__()
        blocks = embedder.model.visual.trunk.blocks
        if not isinstance(blocks, TappedBlocks) or not 1 <= n < len(blocks.blocks):
            raise ValueError(f"unfreeze_blocks={n}: needs a tapped EfficientNet trunk with more than {n} blocks")
        self.start = len(blocks.blocks) - n
        if any(t < self.start - 1 for t in blocks.taps):
            raise ValueError(f"unfreeze_blocks={n}: tapped blocks {blocks.taps} would lie before the cached input")
        self.blocks = blocks

    @torch.inference_mode()
    def cache_inputs(self, embedder: Embedder, images: list[Image.Image], progress: bool, description: str
                     ) -> torch.Tensor:
        """The frozen part's output ``(N, C, h, w)`` for each image, as float16."""
        trunk, out = embedder.model.visual.trunk, []
        with progress_bar(progress) as bar:
            task = bar.add_task(f"{description} ({len(images)})", total=len(images))
            for start in range(0, len(images), embedder.batch_size):
                chunk = images[start : start + embedder.batch_size]
                x = torch.stack([embedder.preprocess(im.convert("RGB")) for im in chunk])
                x = trunk.bn1(trunk.conv_stem(x.contiguous(memory_format=torch.channels_last)))
                for block in self.blocks.blocks[: self.start]:
                    x = block(x)
                out.append(x.to(torch.float16))
                bar.advance(task, len(chunk))
        return torch.cat(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks.forward_from(x.float().contiguous(memory_format=torch.channels_last), self.start)

    def pooled(self, embedder: Embedder, cached: torch.Tensor, regions: bool, batch: int = 64) -> torch.Tensor:
        """Region (or whole-image) features of cached inputs, without gradients."""
        with torch.inference_mode():
            out = [embedder.pool_regions(self(cached[i : i + batch]), whole_only=not regions)
                   for i in range(0, len(cached), batch)]
        feats = torch.cat(out)
        return feats if regions else feats[:, 0]


@torch.inference_mode()
def _text_features(embedder: Embedder, texts: list[str]) -> torch.Tensor:
    """Pooled (pre-projection) text features from the frozen text transformer."""
    text = embedder.model.text
    out = []
    for start in range(0, len(texts), 64):
        tokens = embedder.tokenizer(texts[start : start + 64])
        mask = (tokens != text.config.pad_token_id).long()
        hidden = text.transformer(input_ids=tokens, attention_mask=mask)
        out.append(text.pooler(hidden, mask))
    return torch.cat(out)


def _soft_region_scores(photo_regions: torch.Tensor, targets: torch.Tensor, tau_r: float) -> torch.Tensor:
    """Score of every photo against every target: soft maximum over the photo's regions. ``(B, R, D) x (T, D)``."""
    sims = torch.einsum("brd,td->btr", photo_regions, targets)
    return tau_r * torch.logsumexp(sims / tau_r, dim=-1)


def evaluate_retrieval(head: torch.nn.Module, photo_feats: torch.Tensor, photo_brand: np.ndarray,
                       ref_feats: torch.Tensor, ref_brand: np.ndarray) -> dict[str, float]:
    """Brand top-1 / top-5 of photos against the references (max over regions and over a brand's references)."""
    with torch.inference_mode():
        q = F.normalize(head(photo_feats.float()), dim=-1)
        k = F.normalize(head(ref_feats.float()), dim=-1)
        sims = (q @ k.T).amax(dim=1)  # (N, M): best region of each photo
        n_brands = int(ref_brand.max()) + 1
        per_brand = torch.full((sims.shape[0], n_brands), -2.0)
        per_brand.scatter_reduce_(1, torch.as_tensor(ref_brand).expand(sims.shape[0], -1), sims, reduce="amax")
        rank = (per_brand > per_brand.gather(1, torch.as_tensor(photo_brand)[:, None])).sum(1)
    return {"top1": float((rank == 0).float().mean()), "top5": float((rank < 5).float().mean()),
            "n_photos": int(len(photo_brand)), "n_brands": n_brands}


def nearest_brands(brand_vecs: torch.Tensor, k: int) -> np.ndarray:
    """Each brand's ``k`` most similar other brands ``(n, k)``, nearest first (cosine of unit vectors)."""
    sims = brand_vecs @ brand_vecs.T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(min(k, len(brand_vecs) - 1), dim=1).indices.numpy()


def epoch_batches(n_brands: int, batch_size: int, steps: int, rng: np.random.Generator,
                  neighbours: np.ndarray | None = None, hard_fraction: float = 0.0, group: int = 8
                  ) -> list[np.ndarray]:
    """The brands of each step of an epoch, every brand at most once.

    With ``neighbours`` (:func:`nearest_brands`), ``hard_fraction`` of each batch is made of groups: a random anchor
    and its nearest neighbours not used yet this epoch (up to ``group`` brands); the rest is drawn uniformly.
    """
    if neighbours is None or hard_fraction <= 0.0:
        order = rng.permutation(n_brands)
        return [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]
    if steps * batch_size > n_brands:
        raise ValueError(f"{steps} steps of {batch_size} brands need more than {n_brands} brands")
    used = np.zeros(n_brands, dtype=bool)
    anchors = iter(rng.permutation(n_brands))
    n_hard = int(round(hard_fraction * batch_size))
    batches = []
    for _ in range(steps):
        batch: list[int] = []
        while len(batch) < n_hard:
            anchor = next(a for a in anchors if not used[a])
            members = [int(anchor)] + [int(b) for b in neighbours[anchor] if not used[b] and b != anchor]
            members = members[: min(group, n_hard - len(batch))]
            used[members] = True
            batch += members
        rest = rng.choice(np.flatnonzero(~used), batch_size - len(batch), replace=False)
        used[rest] = True
        batches.append(np.array(batch + [int(b) for b in rest]))
    return batches


def _standardize_init(proj: torch.nn.Linear, feats: torch.Tensor) -> None:
    """Fold per-channel standardisation of the frozen features into the projection (a better starting point)."""
    mu, sd = feats.mean(0), feats.std(0) + 1e-3
    with torch.no_grad():
        w = proj.weight / sd
        proj.weight.copy_(w)
        if proj.bias is not None:
            proj.bias.copy_(-(w @ mu))


def _training_icons(icons: Sequence[render.Icon], config: FinetuneConfig, exclude_slugs: set[str] | frozenset[str],
                    rng: np.random.Generator) -> list[render.Icon]:
    """The brands ``finetune`` trains on: ``config.n_brands`` of the icons neither held out nor excluded, drawn by
    ``rng`` (seeded with ``config.seed``; its first draw)."""
    train_icons = [i for i in icons if not is_heldout_brand(i.slug) and i.slug not in exclude_slugs]
    if config.n_brands is not None and config.n_brands < len(train_icons):
        train_icons = [train_icons[i] for i in sorted(rng.choice(len(train_icons), config.n_brands, replace=False))]
    return train_icons


def trained_slugs(run_dir: str | Path) -> set[str]:
    """The brands a finished fine-tuning run in ``run_dir`` trained on, drawn again from its ``finetune.json``.

    So a pilot can be judged on listings of brands it never saw beyond its validation brands (``training.probe
    --unseen-by``). Made-up marks are no brand and are not included.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``finetune.json``.
        ValueError: the draw does not give as many brands as the run reports (another simple-icons pack).
    """
    path = Path(run_dir) / "finetune.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a finished fine-tuning run folder")
    report = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    config = FinetuneConfig.from_dict({k: v for k, v in report["config"].items() if k in known})
    icons = _training_icons(render.list_icons(), config, frozenset(report.get("excluded_slugs", ())),
                            np.random.default_rng(config.seed))
    if len(icons) != report["n_train_brands"]:
        raise ValueError(f"{path}: drawing its brands again gives {len(icons)}, the run trained on "
                         f"{report['n_train_brands']} (another simple-icons pack?)")
    return {i.slug for i in icons}


def finetune(config: FinetuneConfig, embedder_config: str = "effnet-lite0-minilm", out_dir: str | Path | None = None,
             progress: bool = True, exclude_slugs: set[str] | frozenset[str] = frozenset(),
             ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train the projections; returns ``(weights_delta, report)`` (the delta goes into the model directory).

    Held-out brands and ``exclude_slugs`` (e.g. the classifier's validation brands) are never trained on.
    """
    t0 = time.time()
    torch.manual_seed(config.seed)
    embedder = create_embedder(embedder_config)
    icons = render.list_icons()
    rng = np.random.default_rng(config.seed)
    train_icons = _training_icons(icons, config, exclude_slugs, rng)
    heldout_icons = [i for i in icons if is_heldout_brand(i.slug)]
    eval_icons = [heldout_icons[i] for i in sorted(rng.choice(len(heldout_icons),
                                                                 min(config.eval_brands, len(heldout_icons)),
                                                                 replace=False))]
    assert not any(is_heldout_brand(i.slug) for i in train_icons)
    train_icons += marks.make_marks(config.made_up_marks, seed=[config.seed, 4])  # after the brands: their photos stay

    train_set = render_brand_set(train_icons, config.photos_per_brand, config.seed, progress,
                                 config.scene_photos_per_brand, config.scenes, config.render3d_photos_per_brand,
                                 config.snapshot_photos_per_brand)
    eval_set = render_brand_set(eval_icons, config.eval_photos_per_brand, config.seed + 1, progress)
    t_render = time.time()
    tail = TrunkTail(embedder, config.unfreeze_blocks) if config.unfreeze_blocks else None
    if tail is None:  # frozen trunk: cache the pooled features themselves
        tr_photo = cache_features(embedder, train_set.photos, True, progress, "train photos")
        tr_ref = cache_features(embedder, train_set.refs, False, progress, "train references")
        ev_photo = cache_features(embedder, eval_set.photos, True, progress, "held-out photos")
        ev_ref = cache_features(embedder, eval_set.refs, False, progress, "held-out references")
        pool_init = torch.cat([tr_photo.reshape(-1, tr_photo.shape[-1]), tr_ref]).float()
    else:  # cache the unfrozen blocks' input; features are recomputed as the blocks learn
        tr_photo = tail.cache_inputs(embedder, train_set.photos, progress, "train photos")
        tr_ref = tail.cache_inputs(embedder, train_set.refs, progress, "train references")
        ev_photo_in = tail.cache_inputs(embedder, eval_set.photos, progress, "held-out photos")
        ev_ref_in = tail.cache_inputs(embedder, eval_set.refs, progress, "held-out references")
        ev_photo = tail.pooled(embedder, ev_photo_in, regions=True)
        ev_ref = tail.pooled(embedder, ev_ref_in, regions=False)
        sample = torch.as_tensor(rng.choice(len(tr_photo), min(512, len(tr_photo)), replace=False))
        pool_init = torch.cat([tail.pooled(embedder, tr_photo[sample], regions=True).flatten(0, 1),
                               tail.pooled(embedder, tr_ref[sample.clamp(max=len(tr_ref) - 1)], regions=False)])
    tr_text = _text_features(embedder, train_set.names)
    t_cache = time.time()

    def photo_features(idx: list[int]) -> torch.Tensor:
        return tr_photo[idx].float() if tail is None else embedder.pool_regions(tail(tr_photo[idx]))

    def ref_features(idx: list[int]) -> torch.Tensor:
        return tr_ref[idx].float() if tail is None else embedder.pool_regions(tail(tr_ref[idx]), whole_only=True)[:, 0]

    head = copy.deepcopy(embedder.model.visual.head).float().train()
    _standardize_init(head.proj, pool_init)
    text_proj = copy.deepcopy(embedder.model.text.proj).float().train()
    for p in (*head.parameters(), *text_proj.parameters()):
        p.requires_grad_(True)
    logit_scale = torch.nn.Parameter(torch.tensor(np.log(1.0 / config.init_temperature), dtype=torch.float32))
    params = [*head.parameters(), *text_proj.parameters(), logit_scale]
    groups = [{"params": params, "lr": config.lr}]
    if tail is not None:
        tail.eval()  # batch-norm statistics stay those of ImageNet; conv and affine weights train
        block_params = [p for i in range(tail.start, len(tail.blocks.blocks))
                        for p in tail.blocks.blocks[i].parameters()]
        for p in block_params:
            p.requires_grad_(True)
        groups.append({"params": block_params, "lr": config.block_lr})
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    n_brands = len(train_set.slugs)
    steps_per_epoch = max(1, n_brands // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total_steps,
                                                pct_start=0.1)
    photos_by_brand = [np.flatnonzero(train_set.photo_brand == b) for b in range(n_brands)]
    refs_by_brand = [np.flatnonzero(train_set.ref_brand == b) for b in range(n_brands)]

    before = evaluate_retrieval(embedder.model.visual.head.float(), ev_photo, eval_set.photo_brand, ev_ref,
                                eval_set.ref_brand)
    first_ref = [int(refs[0]) for refs in refs_by_brand]

    def look_alikes() -> np.ndarray | None:
        """Every brand's nearest brands by reference embedding under the model as it is now."""
        if config.hard_negatives <= 0.0:
            return None
        with torch.no_grad():
            vecs = torch.cat([F.normalize(head(ref_features(first_ref[i : i + 256])), dim=-1)
                              for i in range(0, n_brands, 256)])
        return nearest_brands(vecs, 4 * config.hard_group)

    history = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"fine-tuning ({total_steps} steps)", total=total_steps)
        for epoch in range(config.epochs):
            batches = epoch_batches(n_brands, config.batch_size, steps_per_epoch, rng, look_alikes(),
                                    config.hard_negatives, config.hard_group)
            for brands in batches:
                pi = [rng.choice(photos_by_brand[b]) for b in brands]
                ri = [rng.choice(refs_by_brand[b]) for b in brands]
                q = F.normalize(head(photo_features(pi)), dim=-1)
                k = F.normalize(head(ref_features(ri)), dim=-1)
                t = F.normalize(text_proj(tr_text[brands].float()), dim=-1)
                scale = logit_scale.exp().clamp(max=100.0)
                labels = torch.arange(len(brands))
                s_ref = scale * _soft_region_scores(q, k, config.region_temperature)
                s_txt = scale * _soft_region_scores(q, t, config.region_temperature)
                s_rt = scale * (k @ t.T)
                loss_ref = (F.cross_entropy(s_ref, labels) + F.cross_entropy(s_ref.T, labels)) / 2
                loss_txt = (F.cross_entropy(s_txt, labels) + F.cross_entropy(s_txt.T, labels)) / 2
                loss_rt = (F.cross_entropy(s_rt, labels) + F.cross_entropy(s_rt.T, labels)) / 2
                loss = loss_ref + config.text_weight * (loss_txt + loss_rt)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.advance(task)
            history.append({"epoch": epoch, "loss": round(loss.item(), 4), "loss_ref": round(loss_ref.item(), 4),
                            "temperature": round(1.0 / logit_scale.exp().item(), 4)})
            log.info("epoch %d %s", epoch, history[-1])
    head.eval()
    if tail is not None:
        for p in tail.parameters():
            p.requires_grad_(False)
        ev_photo, ev_ref = tail.pooled(embedder, ev_photo_in, regions=True), tail.pooled(embedder, ev_ref_in, False)
        tr_photo, tr_ref = tail.pooled(embedder, tr_photo[:2000], regions=True), tail.pooled(embedder, tr_ref, False)
    after = evaluate_retrieval(head, ev_photo, eval_set.photo_brand, ev_ref, eval_set.ref_brand)
    train_fit = evaluate_retrieval(head, tr_photo[: 2000], train_set.photo_brand[:2000], tr_ref,
                                   train_set.ref_brand)
    delta = {f"visual.head.{k}": v.detach().clone() for k, v in head.state_dict().items()}
    delta.update({f"text.proj.{k}": v.detach().clone() for k, v in text_proj.state_dict().items()})
    if tail is not None:  # the trained blocks (their batch-norm statistics are unchanged, but kept together)
        trunk_prefix = "visual.trunk.blocks.blocks"
        for i in range(tail.start, len(tail.blocks.blocks)):
            delta.update({f"{trunk_prefix}.{i}.{k}": v.detach().clone()
                          for k, v in tail.blocks.blocks[i].state_dict().items()})
    report = {
        "config": dataclasses.asdict(config),
        "n_train_brands": n_brands - config.made_up_marks,
        "n_made_up_marks": config.made_up_marks,
        "n_train_photos": int(len(train_set.photos)),
        "heldout_retrieval_before": before,
        "heldout_retrieval_after": after,
        "train_retrieval_after": train_fit,
        "history": history,
        "excluded_slugs": sorted(exclude_slugs),  # what a run going on from these weights must not validate beyond
        "wall_time_s": {"render": round(t_render - t0, 1), "features": round(t_cache - t_render, 1),
                        "train": round(time.time() - t_cache, 1), "total": round(time.time() - t0, 1)},
    }
    if out_dir is not None:  # the weights too, so they can be probed while the rest of a training run goes on
        from safetensors.torch import save_file

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
        save_file({k: v.to(torch.float16).contiguous() for k, v in delta.items()}, str(Path(out_dir) / WEIGHTS_FILE))
    return delta, report


def load_finetune_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights delta a fine-tuning run saved (``out_dir / WEIGHTS_FILE``, float16 on disk) as float32."""
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path)).items()}
