"""Test support code: running servers, HTTP helpers."""
