"""The listing a marketplace sends for scoring, and the verdict labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

__all__ = ["Listing", "LABELS", "DECISIONS"]

LABELS = ("counterfeit", "authentic", "unbranded")
DECISIONS = ("allow", "review", "block")


@dataclass
class Listing:
    """One marketplace listing: text, price, seller and decoded RGB images."""

    listing_id: str
    title: str = ""
    description: str = ""
    price: float | None = None  # in ``currency``; None when the listing has no price
    currency: str | None = None  # ISO 4217 code; a price in another currency than the brand floor is not compared
    seller_id: str | None = None
    images: list[Image.Image] = field(default_factory=list)
