"""Named decision policies: risk thresholds for review / block and the brand-confidence thresholds."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from detector.dataclass_config import build_config

__all__ = ["PolicyConfig", "list_policies", "get_policy", "decide"]

POLICY_DIR = Path(__file__).parent / "configs" / "policies"
TEXT_SCORES = ("title_score", "desc_score", "ocr_score")  # candidate features that name a brand in text


@dataclass
class PolicyConfig:
    """Turns a calibrated risk into allow / review / block."""

    name: str
    review_threshold: float = 0.5  # risk at or above -> review
    block_threshold: float = 0.9  # risk at or above -> block
    brand_threshold: float = 0.5  # brand confidence at or above -> the brand is reported as present
    # A candidate named in the listing's own text (title, description or text read in the photos, match score at
    # least text_named_score) is reported at this confidence instead; None: brand_threshold. Training chooses it,
    # when not None, from the brand-less validation listings whose text names a brand ("compatible with X"), as it
    # chooses brand_threshold from those showing an unregistered brand's logo, which no text names.
    text_brand_threshold: float | None = None
    text_named_score: float = 0.75
    never_block_authorized: bool = True  # an authorised seller is at most sent to review
    # Block only listings that name the brand they infringe (see ``names``); a high risk with
    # no brand named is sent to review: a block is explained by the brand it protects.
    block_needs_brand: bool = False
    target_block_precision: float = 0.99  # what training aimed for when it chose block_threshold on validation
    target_review_precision: float = 0.8  # likewise for review_threshold
    max_authentic_blocked: float = 0.005  # and at most this share of authentic listings blocked on validation
    # ... shown with this one-sided confidence (None: the observed share): a few hundred authentic validation
    # listings cannot show 0.5 %, so then none of them may be blocked
    authentic_blocked_confidence: float | None = None
    # brand_threshold: at most this share of listings showing an unregistered brand's logo get a registered brand,
    # shown on validation with this one-sided confidence (few such listings: the bound, not the rate, must meet it)
    max_unregistered_attribution: float = 0.03
    attribution_confidence: float = 0.9
    description: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.review_threshold <= self.block_threshold <= 1.0:
            raise ValueError(f"policy {self.name!r}: need 0 <= review <= block <= 1")
        if self.text_brand_threshold is not None and not 0.0 <= self.text_brand_threshold <= 1.0:
            raise ValueError(f"policy {self.name!r}: text_brand_threshold must be in [0, 1] or null")

    def named_in_text(self, features: Mapping[str, float]) -> bool:
        """Whether a candidate with these features is named in the listing's title, description or photo text."""
        return max(features.get(k, 0.0) for k in TEXT_SCORES) >= self.text_named_score

    def threshold_for(self, features: Mapping[str, float]) -> float:
        """The brand confidence at which a candidate with these features is reported as present."""
        if self.text_brand_threshold is not None and self.named_in_text(features):
            return self.text_brand_threshold
        return self.brand_threshold

    def names(self, candidate: Any) -> bool:
        """Whether a candidate brand (``detector.features.Candidate`` or None) is reported as present."""
        return candidate is not None and candidate.confidence >= self.threshold_for(candidate.features)

    def can_block(self, authorized_seller: bool, brand_named: bool) -> bool:
        """Whether a listing may be blocked at all: not an authorised seller's (of the named brand) when those are
        never blocked, and naming a brand when blocks need one. Training chooses thresholds among these listings."""
        return (not (authorized_seller and self.never_block_authorized)
                and (brand_named or not self.block_needs_brand))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyConfig":
        return build_config(cls, d, "policy")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def list_policies() -> list[str]:
    """Names of the policies shipped with the package."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.json"))


def get_policy(name: str | Path | PolicyConfig) -> PolicyConfig:
    """A shipped policy by name, or a policy JSON file; unknown names list the known ones."""
    if isinstance(name, PolicyConfig):
        return name
    path = Path(name)
    if not path.suffix == ".json":
        path = POLICY_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown policy {str(name)!r}; known: {list_policies()}")
    return PolicyConfig.from_dict(json.loads(path.read_text()))


def decide(risk: float, policy: PolicyConfig, authorized_seller: bool = False, brand_named: bool = True) -> str:
    """``allow``, ``review`` or ``block`` for a calibrated risk; ``brand_named``: the listing's brand is reported."""
    if risk >= policy.block_threshold and policy.can_block(authorized_seller, brand_named):
        return "block"
    if risk >= policy.review_threshold:
        return "review"
    return "allow"
