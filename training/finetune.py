"""Contrastive fine-tuning of the embedder so a logo inside a product photo lands next to the brand's references.

LiT-style: the image trunk and the text transformer stay frozen (their features are computed once and cached); the
image head (projection) and the text projection are trained with InfoNCE and in-batch negatives:

* photo <-> clean reference render: a photo's score for a brand is a soft maximum over its region embeddings
  (multiple-instance: we do not need the logo's box, and inference also takes the best region);
* photo <-> brand name text (weight ``text_weight``);
* reference render <-> brand name text, which keeps the reference and text spaces aligned.

Photos are rendered fresh from simple-icons logos of non-held-out brands with strong augmentation
(``training.render``). Held-out brands (sha1(slug) % 10 == 0) are used only to report generalisation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from detector.embedder import Embedder, create_embedder
from training import render
from training.pipeline import progress_bar
from training.splits import is_heldout_brand

__all__ = ["FinetuneConfig", "finetune", "render_brand_set", "cache_features", "evaluate_retrieval"]

log = logging.getLogger(__name__)


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
    seed: int = 0

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


def render_brand_set(icons: list[render.Icon], photos_per_brand: int, seed: int, progress: bool = True) -> BrandSet:
    """Two clean references (light, dark) and ``photos_per_brand`` product photos per brand."""
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


def _standardize_init(proj: torch.nn.Linear, feats: torch.Tensor) -> None:
    """Fold per-channel standardisation of the frozen features into the projection (a better starting point)."""
    mu, sd = feats.mean(0), feats.std(0) + 1e-3
    with torch.no_grad():
        w = proj.weight / sd
        proj.weight.copy_(w)
        if proj.bias is not None:
            proj.bias.copy_(-(w @ mu))


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
    train_icons = [i for i in icons if not is_heldout_brand(i.slug) and i.slug not in exclude_slugs]
    heldout_icons = [i for i in icons if is_heldout_brand(i.slug)]
    rng = np.random.default_rng(config.seed)
    if config.n_brands is not None and config.n_brands < len(train_icons):
        train_icons = [train_icons[i] for i in sorted(rng.choice(len(train_icons), config.n_brands, replace=False))]
    eval_icons = [heldout_icons[i] for i in sorted(rng.choice(len(heldout_icons),
                                                                 min(config.eval_brands, len(heldout_icons)),
                                                                 replace=False))]
    assert not any(is_heldout_brand(i.slug) for i in train_icons)

    train_set = render_brand_set(train_icons, config.photos_per_brand, config.seed, progress)
    eval_set = render_brand_set(eval_icons, config.eval_photos_per_brand, config.seed + 1, progress)
    t_render = time.time()
    tr_photo = cache_features(embedder, train_set.photos, True, progress, "train photos")
    tr_ref = cache_features(embedder, train_set.refs, False, progress, "train references")
    ev_photo = cache_features(embedder, eval_set.photos, True, progress, "held-out photos")
    ev_ref = cache_features(embedder, eval_set.refs, False, progress, "held-out references")
    tr_text = _text_features(embedder, train_set.names)
    t_cache = time.time()

    head = copy.deepcopy(embedder.model.visual.head).float().train()
    _standardize_init(head.proj, torch.cat([tr_photo.reshape(-1, tr_photo.shape[-1]), tr_ref]).float())
    text_proj = copy.deepcopy(embedder.model.text.proj).float().train()
    for p in (*head.parameters(), *text_proj.parameters()):
        p.requires_grad_(True)
    logit_scale = torch.nn.Parameter(torch.tensor(np.log(1.0 / config.init_temperature), dtype=torch.float32))
    params = [*head.parameters(), *text_proj.parameters(), logit_scale]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    n_brands = len(train_set.slugs)
    steps_per_epoch = max(1, n_brands // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps, pct_start=0.1)
    photos_by_brand = [np.flatnonzero(train_set.photo_brand == b) for b in range(n_brands)]
    refs_by_brand = [np.flatnonzero(train_set.ref_brand == b) for b in range(n_brands)]

    before = evaluate_retrieval(embedder.model.visual.head.float(), ev_photo, eval_set.photo_brand, ev_ref,
                                eval_set.ref_brand)
    history = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"fine-tuning ({total_steps} steps)", total=total_steps)
        for epoch in range(config.epochs):
            order = rng.permutation(n_brands)
            for s in range(steps_per_epoch):
                brands = order[s * config.batch_size : (s + 1) * config.batch_size]
                pi = [rng.choice(photos_by_brand[b]) for b in brands]
                ri = [rng.choice(refs_by_brand[b]) for b in brands]
                q = F.normalize(head(tr_photo[pi].float()), dim=-1)
                k = F.normalize(head(tr_ref[ri].float()), dim=-1)
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
                            "temperature": round(float(1.0 / logit_scale.exp()), 4)})
            log.info("epoch %d %s", epoch, history[-1])
    head.eval()
    after = evaluate_retrieval(head, ev_photo, eval_set.photo_brand, ev_ref, eval_set.ref_brand)
    train_fit = evaluate_retrieval(head, tr_photo[: 2000], train_set.photo_brand[:2000], tr_ref,
                                   train_set.ref_brand)
    delta = {f"visual.head.{k}": v.detach().clone() for k, v in head.state_dict().items()}
    delta.update({f"text.proj.{k}": v.detach().clone() for k, v in text_proj.state_dict().items()})
    report = {
        "config": dataclasses.asdict(config),
        "n_train_brands": n_brands,
        "n_train_photos": int(len(train_set.photos)),
        "heldout_retrieval_before": before,
        "heldout_retrieval_after": after,
        "train_retrieval_after": train_fit,
        "history": history,
        "wall_time_s": {"render": round(t_render - t0, 1), "features": round(t_cache - t_render, 1),
                        "train": round(time.time() - t_cache, 1), "total": round(time.time() - t0, 1)},
    }
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
    return delta, report
