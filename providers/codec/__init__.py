"""The codec layer beneath the file store: compression, encryption and verified reads
of chunks (`ChunkVault`); see `providers.codec.vault` for the contract."""

from __future__ import annotations

from providers.codec.compress import ChunkCompressor
from providers.codec.seal import KeyRing, MasterKey, parse_master_key
from providers.codec.vault import CODECS, RAW, SEALED, ZSTD, ChunkVault

__all__ = [
    "CODECS",
    "RAW",
    "SEALED",
    "ZSTD",
    "ChunkCompressor",
    "ChunkVault",
    "KeyRing",
    "MasterKey",
    "parse_master_key",
]
