"""Alembic migration scripts of the catalog (`providers.catalog.migrate` runs them;
docs/migrations.md says how to write one). Shipped as package data."""
