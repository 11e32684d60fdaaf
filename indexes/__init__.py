"""Brand registry (SQLAlchemy) and FAISS index lifecycle. Knows nothing of HTTP.

* :mod:`indexes.registry`: brands, reference images, texts, cached vectors, scores, feedback.
* :mod:`indexes.index`: :class:`VectorIndex`, a FAISS index keyed by registry row ids, saved atomically.
* :mod:`indexes.catalog`: :class:`Catalog`, the registry plus its three indexes, kept consistent on disk.
* :mod:`indexes.images`: safe decoding and canonical re-encoding of untrusted images.
"""

from indexes.catalog import (
    INDEX_NAMES,
    AssetInput,
    Catalog,
    CatalogError,
    CheckReport,
    EmbedderLike,
    IndexMismatchError,
)
from indexes.images import ImageConfig, ImageError, PreparedImage, decode_image, encode_image, prepare_image, sha256_hex
from indexes.index import PAD_ID, VectorIndex
from indexes.registry import (
    AssetRecord,
    BrandRecord,
    Conflict,
    Invalid,
    NotFound,
    Registry,
    RegistryError,
    TextEntryRecord,
)

__all__ = [
    "INDEX_NAMES",
    "PAD_ID",
    "AssetInput",
    "AssetRecord",
    "BrandRecord",
    "Catalog",
    "CatalogError",
    "CheckReport",
    "Conflict",
    "EmbedderLike",
    "ImageConfig",
    "ImageError",
    "IndexMismatchError",
    "Invalid",
    "NotFound",
    "PreparedImage",
    "Registry",
    "RegistryError",
    "TextEntryRecord",
    "VectorIndex",
    "decode_image",
    "encode_image",
    "prepare_image",
    "sha256_hex",
]
