"""Which old versions of a file to keep: a pure function of their times and the
policy, so that thinning can run on any instance, any number of times, and a test
can give it any clock.

The rule (issue 16, after Nextcloud's): every version younger than a minute is
kept; older ones are thinned to one per step, the step growing with age:

| age          | one version per |
|--------------|-----------------|
| < 1 minute   | (all kept)      |
| < 1 hour     | minute          |
| < 1 day      | hour            |
| < 30 days    | day             |
| older        | week            |

then versions older than `max_age` are dropped, and beyond `max_count` the oldest.
Nextcloud keeps one per 2 s and then per 10 s inside the first minute; here the
issue's "keep every version of the last minute" wins, since a minute of saves is
few versions and each costs metadata, not bytes.

Steps are aligned to absolute time (a version is in window `created // step`), not to
`now`, and each step divides the next (a week is 7 aligned days): a window's kept
version is the newest in it, and ageing only merges windows into coarser ones. So
running it again at the same time drops nothing more, and thinning every hour keeps
about as many versions as thinning once at the end (a test simulates months).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from providers.catalog.versions import Versions

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86400.0, 604800.0
# (the age up to which, the step): the first row keeps all (step 0)
STEPS: tuple[tuple[float, float], ...] = (
    (MINUTE, 0.0),
    (HOUR, MINUTE),
    (DAY, HOUR),
    (30 * DAY, DAY),
    (float("inf"), WEEK),
)


@dataclass(frozen=True)
class RetentionPolicy:
    """`max_age` in seconds (None: no limit); `max_count` old versions at most
    (None: no limit). The current content is never a candidate."""

    max_age: float | None = 180 * DAY
    max_count: int | None = None


@dataclass(frozen=True)
class VersionAge:
    """What thinning needs of a version: its id and when it was made (epoch s)."""

    id: int
    created: float


def versions_to_drop(
    versions: Iterable[VersionAge], now: float, policy: RetentionPolicy
) -> set[int]:
    """The ids of the old versions of one file that the policy drops at `now`."""
    newest_first = sorted(versions, key=lambda v: (v.created, v.id), reverse=True)
    kept: list[VersionAge] = []
    seen: set[tuple[float, int]] = set()
    drop: set[int] = set()
    for version in newest_first:
        age = max(0.0, now - version.created)
        if policy.max_age is not None and age > policy.max_age:
            drop.add(version.id)
            continue
        step = step_for(age)
        window = (step, int(version.created // step)) if step else None
        if window is not None and window in seen:
            drop.add(version.id)
            continue
        if window is not None:
            seen.add(window)
        kept.append(version)
    if policy.max_count is not None:
        drop.update(v.id for v in kept[policy.max_count :])
    return drop


def step_for(age: float) -> float:
    """The thinning step for a version of this age in seconds (0: keep all)."""
    for limit, step in STEPS:
        if age < limit:
            return step
    return STEPS[-1][1]


def thin_versions(
    versions: Versions,
    now: float,
    policy: RetentionPolicy,
    keep: Callable[[], None] | None = None,
) -> int:
    """Drop, file by file, the old versions the policy does not keep at `now`; return
    how many went. Safe on any instance and concurrently with writes: a file's
    current version is never dropped (`Versions.drop`). `keep` (if given) is called
    before each file; what it raises stops the run there."""
    dropped = 0
    owners: set[int] = set()
    try:
        for node_id in versions.files_with_old():
            if keep is not None:
                keep()
            old = [VersionAge(v.id, v.created) for v in versions.old(node_id)]
            gone = versions.drop(node_id, versions_to_drop(old, now, policy), measure=False)
            owner = versions.owner_of(node_id) if gone else None
            if owner is not None:
                owners.add(owner)
            dropped += gone
    finally:  # a run stopped by `keep` still measures the owners it already thinned
        versions.measure_owners(owners)
    return dropped
