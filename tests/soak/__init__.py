"""Soak run: davserver under concurrent verifying clients (`python -m tests.soak.soak`)."""
