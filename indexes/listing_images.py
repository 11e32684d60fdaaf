"""Content-addressed store of scored listings' photos, kept so that moderator feedback can later become training data.

Layout: ``<home>/listing-images/<sha256>.jpg``. Every photo is stored in one canonical form, made by
:func:`encode_listing_image`: upright 8-bit RGB, longest side at most ``max_side`` (1024) px, JPEG at a fixed quality,
no metadata (EXIF, GPS and ICC are dropped). The file name is the SHA-256 of exactly those JPEG bytes, so

* the hashes the service records with each score (``Registry.record_score(image_sha256s=...)``) name the files here;
* a file can be checked against its name (``sha256(path(sha).read_bytes()) == sha``), which is how a reader detects a
  file damaged after a crash;
* the same photo scored twice is stored once.

The hash is *not* that of the uploaded file: two encodings of one photo give the same stored bytes only if they decode
to the same pixels. Writes go to a temporary file in the same folder and are renamed into place, so a reader never
sees a partial file; a file already present is not written again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path

from PIL import Image

from indexes.images import normalize_image

__all__ = ["LISTING_IMAGES_DIR", "ListingImageStore", "encode_listing_image"]

log = logging.getLogger(__name__)

LISTING_IMAGES_DIR = "listing-images"  # folder of the store inside a home
_MAX_SIDE = 1024
_QUALITY = 90  # visually lossless for marketplace photos at a tenth of the PNG size
_ORIENTATION = 0x0112  # EXIF tag


def encode_listing_image(
    image: Image.Image, max_side: int = _MAX_SIDE, quality: int = _QUALITY
) -> tuple[bytes, str]:
    """Return a photo's canonical JPEG bytes and their hex SHA-256 (the name it is stored under).

    Args:
        image: A decoded photo. An RGB image without an EXIF rotation is used as it is (the service's photos were
            normalised by :func:`~indexes.images.decode_image`); anything else goes through
            :func:`~indexes.images.normalize_image` first. The caller's image is never changed.
        max_side: Longest side of the stored photo; larger photos are downscaled (LANCZOS), smaller ones kept.
        quality: JPEG quality.

    Returns:
        ``(jpeg_bytes, sha256_hex)``.
    """
    upright = image.mode == "RGB" and image.getexif().get(_ORIENTATION, 1) == 1
    rgb = image if upright else normalize_image(image)
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


class ListingImageStore:
    """Listing photos under ``<home>/listing-images``, named by the SHA-256 of their canonical JPEG bytes."""

    def __init__(self, home: str | Path, max_side: int = _MAX_SIDE, quality: int = _QUALITY) -> None:
        """Use the store of ``home`` (its folder is created on the first :meth:`put`)."""
        self.root = Path(home) / LISTING_IMAGES_DIR
        self.max_side = max_side
        self.quality = quality

    def path(self, sha256: str) -> Path:
        """Where the photo with this hash is (or would be) stored."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a lowercase hex SHA-256 digest: {sha256!r}")
        return self.root / f"{sha256}.jpg"

    def has(self, sha256: str) -> bool:
        """True when the photo is stored."""
        return self.path(sha256).is_file()

    def put(self, image: Image.Image) -> str:
        """Store a photo in its canonical form (unless already stored) and return its hash.

        Raises:
            OSError: The file could not be written.
        """
        data, digest = encode_listing_image(image, self.max_side, self.quality)
        target = self.path(digest)
        if target.is_file():
            return digest
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:16]}-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)  # atomic; two writers of one hash write identical bytes
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest
