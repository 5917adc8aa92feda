"""Blob stores: the `BlobStore` seam and its implementations (memory, local directory, S3)."""

from providers.blobstore.base import BlobInfo, BlobStore, chunk_key, validate_key

__all__ = ["BlobInfo", "BlobStore", "chunk_key", "validate_key"]
