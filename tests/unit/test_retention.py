"""Version thinning (`providers.operations.retention`) with a fake clock: what is kept
at each age, `max_age` and `max_count`, running twice, and months of saves thinned
every hour staying bounded."""

from __future__ import annotations

from providers.operations.retention import (
    DAY,
    HOUR,
    MINUTE,
    WEEK,
    RetentionPolicy,
    VersionAge,
    versions_to_drop,
)

NOW = 1_800_000_000.0  # a fixed "now" (2027-01-15)
NO_LIMITS = RetentionPolicy(max_age=None, max_count=None)


def saved(*ages: float) -> list[VersionAge]:
    """Versions made `ages` seconds before NOW (ids from 1)."""
    return [VersionAge(n, NOW - age) for n, age in enumerate(ages, start=1)]


def kept(
    versions: list[VersionAge], now: float = NOW, policy: RetentionPolicy = NO_LIMITS
) -> list[int]:
    drop = versions_to_drop(versions, now, policy)
    return sorted(v.id for v in versions if v.id not in drop)


def test_every_version_of_the_last_minute_is_kept() -> None:
    versions = saved(*[s * 2.0 for s in range(30)])  # one every 2 s for a minute
    assert kept(versions) == list(range(1, 31))


def test_older_versions_keep_one_per_step_of_their_age() -> None:
    minute_ago = NOW - NOW % MINUTE - 2 * MINUTE  # a whole minute, over a minute ago
    in_one_minute = [VersionAge(n, minute_ago + n) for n in range(1, 31)]
    assert kept(in_one_minute) == [30]  # the newest of that minute
    hour = NOW - NOW % HOUR - 5 * HOUR
    in_one_hour = [VersionAge(n, hour + n * MINUTE) for n in range(1, 50)]
    assert kept(in_one_hour) == [49]
    day = NOW - NOW % DAY - 10 * DAY
    in_one_day = [VersionAge(n, day + n * HOUR) for n in range(1, 20)]
    assert kept(in_one_day) == [19]
    week = NOW - NOW % WEEK - 20 * WEEK
    in_one_week = [VersionAge(n, week + n * DAY) for n in range(1, 7)]
    assert kept(in_one_week) == [6]


def test_max_age_and_max_count() -> None:
    versions = saved(10, 2 * DAY, 40 * DAY, 200 * DAY)
    assert kept(versions, policy=RetentionPolicy(max_age=180 * DAY)) == [1, 2, 3]
    assert kept(versions, policy=RetentionPolicy(max_age=None, max_count=2)) == [1, 2]
    assert kept(versions, policy=RetentionPolicy(max_age=30 * DAY, max_count=0)) == []


def test_running_again_drops_nothing_more() -> None:
    versions = saved(*[n * 37.0 for n in range(5000)])  # every 37 s for two days
    drop = versions_to_drop(versions, NOW, NO_LIMITS)
    once = [v for v in versions if v.id not in drop]
    assert versions_to_drop(once, NOW, NO_LIMITS) == set()
    assert len(once) < len(versions) / 20


def test_months_of_saves_thinned_every_hour_stay_bounded() -> None:
    """A save every 10 minutes for 90 days, thinning every hour: what is left is
    about one per hour of the last day, one per day of the month, one per week."""
    start, live = NOW - 90 * DAY, []
    policy = RetentionPolicy(max_age=180 * DAY)
    clock = start
    next_id = 1
    while clock < NOW:
        live.append(VersionAge(next_id, clock))
        next_id += 1
        clock += 10 * MINUTE
        if next_id % 6 == 0:  # an hour passed
            drop = versions_to_drop(live, clock, policy)
            live = [v for v in live if v.id not in drop]
    ages = [NOW - v.created for v in live]
    assert sum(age < HOUR for age in ages) <= 7
    assert sum(HOUR <= age < DAY for age in ages) <= 25
    assert sum(DAY <= age < 30 * DAY for age in ages) <= 31
    assert sum(age >= 30 * DAY for age in ages) <= 10
    assert len(live) >= 40  # thinning, not emptying
