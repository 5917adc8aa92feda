"""Opening the store for a command: which commands may create it, which may upgrade its
schema (docs/migrations.md).

- `serve` creates a new store (no catalog yet) and, with `auto_migrate` (the default),
  upgrades an older one, logging it; with `auto_migrate = false` it refuses.
- Admin commands (`user`, `group`, `grant(s)`, `revoke`, `share`, `gc`, `fsck`,
  `checksums`) never create a store and never change the schema: run from the wrong
  directory, they say where they looked instead of making an empty `./davdata`.
- `davserver db upgrade` creates or upgrades: it is the explicit way to do either.

Refusals are one line, with what to do next.
"""

from __future__ import annotations

import logging
from typing import Literal

from davserver.settings import Settings
from providers.catalog import Catalog, SchemaChange, SchemaState
from providers.catalog.migrate import StepReport
from providers.errors import SchemaMismatch, StoreMissing

log = logging.getLogger(__name__)
Purpose = Literal["serve", "admin", "upgrade"]


def open_catalog(
    settings: Settings, purpose: Purpose, on_step: StepReport | None = None
) -> tuple[Catalog, SchemaChange]:
    """The catalog of `settings`, its schema made current as `purpose` allows (see the
    module docstring); `StoreMissing` or `SchemaMismatch` (one line, with a hint)
    otherwise, having created nothing."""
    create = purpose != "admin"
    upgrade = purpose == "upgrade" or (purpose == "serve" and settings.auto_migrate)
    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url, upload_expiry=settings.upload_expiry)
    try:
        change = catalog.prepare_schema(create=create, upgrade=upgrade, on_step=on_step)
    except BaseException as e:
        catalog.close()
        hinted = _with_hint(e, settings)
        if hinted is e:
            raise
        raise hinted from e
    if change.applied and not change.created:
        # One way: an older release cannot open the store any more.
        log.warning(
            "catalog schema upgraded from %s to %s (%s)",
            change.before,
            change.after,
            ", ".join(change.applied),
        )
    return catalog, change


def current_state(settings: Settings) -> SchemaState:
    """The schema state of the store of `settings` (`StoreMissing` if there is none);
    creates and changes nothing."""
    catalog = Catalog(settings.catalog_url, upload_expiry=settings.upload_expiry)
    try:
        return catalog.schema_state(must_exist=True)
    except StoreMissing as e:
        raise _with_hint(e, settings) from e
    finally:
        catalog.close()


def _with_hint(error: BaseException, settings: Settings) -> BaseException:
    """`error` with what the user can do about it, for the refusals above."""
    if isinstance(error, StoreMissing):
        fix = "check database_url" if settings.database_url else "pass --data-dir or --config"
        return StoreMissing(f"{error}; {fix}, or start `davserver serve` once to create one")
    if isinstance(error, SchemaMismatch) and error.upgradable:
        return SchemaMismatch(f"{error}: run `davserver db upgrade`", upgradable=True)
    return error
