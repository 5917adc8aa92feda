"""The tables of `tests.bench.sync_scale`: medians over rounds, ratios of medians (> 1:
ours better) and issue 20's targets with PASS or MISS."""

from __future__ import annotations

import statistics

from tests.bench.bench import Target, fmt, table
from tests.bench.http_ceiling import NOOP

Results = dict[str, float]
S3_RAW = "s3-raw"  # the full stack's S3 server measured directly (`tests.bench.s3_ceiling`)

# key, row of the issue, label, unit, higher is better
METRICS: list[tuple[str, str, str, str, bool]] = [
    ("put1", "1", "4 KiB PUT x N, 1 connection", "req/s", True),
    ("put8", "2", "4 KiB PUT x N, 8 connections", "req/s", True),
    ("rclone_copy", "3", "rclone copy small tree, wall", "s", False),
    ("get8", "4", "4 KiB GET, 8 connections", "req/s", True),
    ("big_get", "5", "big GET", "MB/s", True),
    ("big_put", "6", "big PUT", "MB/s", True),
    ("propfind_p50", "7", "PROPFIND depth 1, median", "ms", False),
    ("propfind_p99", "7", "PROPFIND depth 1, p99", "ms", False),
    ("propfind_setup", "-", "(setup: creating its entries)", "s", False),
    ("head_p50", "8", "new client's HEAD, median", "ms", False),
    ("head_max", "8", "new client's HEAD, max", "ms", False),
    ("head_timeouts", "8", "new client's HEAD, timeouts", "", False),
    ("idle_answered", "8", "(idle connections answered)", "", True),
    ("rss_run", "-", "(peak RSS over rows 1-8, all processes)", "MiB", False),
    ("huge_before", "9", "RSS of the fresh server's largest process", "MiB", False),
    ("huge_peak", "9", "huge PUT, peak RSS of that process", "MiB", False),
    ("huge_q25", "9", "huge PUT, RSS at 25 %", "MiB", False),
    ("huge_q50", "9", "huge PUT, RSS at 50 %", "MiB", False),
    ("huge_q75", "9", "huge PUT, RSS at 75 %", "MiB", False),
    ("huge_q100", "9", "huge PUT, RSS at 100 %", "MiB", False),
    ("huge_mbps", "9", "(huge PUT rate)", "MB/s", True),
]
# rows compared with peers in the ratio tables (the rest are absolute or setup figures)
COMPARED = ("put1", "put8", "rclone_copy", "get8", "big_get", "big_put", "propfind_p50")
FLAT_SLACK_MIB = 16.0  # "flat": RSS at 100 % at most this, or 10 %, above RSS at 25 %


def stack_of(name: str) -> str:
    """The stack of one of our targets: "ours/full/w2" -> "full"."""
    return name.split("/")[1]


def medians(runs: dict[str, list[Results]]) -> dict[str, Results]:
    out: dict[str, Results] = {}
    for name, results in runs.items():
        keys = {k for r in results for k in r}
        out[name] = {k: statistics.median(r[k] for r in results if k in r) for k in keys}
    return out


def ratio(ours: Results, peer: Results, key: str) -> float | None:
    """ours/peer for rates, peer/ours for times: > 1 means ours is better."""
    higher = next(h for k, _, _, _, h in METRICS if k == key)
    a, b = ours.get(key), peer.get(key)
    if not a or not b:
        return None
    return a / b if higher else b / a


def report(targets: list[Target], runs: dict[str, list[Results]]) -> None:
    med = medians(runs)
    names = [t.name for t in targets]
    print("\nMedians over rounds (MB = 10^6 bytes)")
    rows = [
        [row, f"{label} ({unit})" if unit else label, *(fmt(med[n].get(k)) for n in names)]
        for k, row, label, unit, _ in METRICS
        if any(k in med[n] for n in names)
    ]
    rows.append(["", "rounds ok", *(str(len(runs[n])) for n in names)])
    print(table(["row", "metric", *names], rows, left=2))
    peers = [t.name for t in targets if not t.ours]
    for ours in (t.name for t in targets if t.ours):
        if not peers:
            break
        # the S3 server alone is a bound for the full stack only; the no-op app is shown
        # with the targets
        against = [p for p in peers if p != NOOP and (p != S3_RAW or stack_of(ours) == "full")]
        print(f"\nRatios of medians, {ours} vs peer (> 1 means ours is better)")
        rows = [
            [row, label, *(_x(ratio(med[ours], med[p], k)) for p in against)]
            for k, row, label, _, _ in METRICS
            if k in COMPARED
        ]
        print(table(["row", "metric", *(f"vs {p}" for p in against)], rows, left=2))


def _x(value: float | None) -> str:
    return "n/a" if value is None else fmt(value) + "x"


def _ratio_goal(
    row: str, label: str, ours: Results, peer: Results, key: str, limit: float
) -> list[str]:
    value = ratio(ours, peer, key)
    verdict = "n/a" if value is None else ("PASS" if value >= limit else "MISS")
    return [row, label, f">= {fmt(limit)}x", _x(value), verdict]


def goal_rows(
    ours: Results, wsgidav: Results, rclone: Results, stack: str, s3_raw: Results
) -> list[list[str]]:
    """Issue 20's targets for one of our stacks (ratios of medians; absolute figures),
    and on the full stack, its big PUT and GET against the S3 server's own rates."""
    # (the bounds against WsgiDAV, the no-op app and the S3 server alone: `ceilings`)
    rows = [
        _ratio_goal("1", "4 KiB PUT, 1 conn vs WsgiDAV", ours, wsgidav, "put1", 1.0),
        _ratio_goal("2", "4 KiB PUT, 8 conns vs WsgiDAV", ours, wsgidav, "put8", 1.5),
        _ratio_goal("3", "rclone copy: rclone's time / ours", ours, rclone, "rclone_copy", 1.0),
        _ratio_goal("4", "4 KiB GET, 8 conns vs WsgiDAV", ours, wsgidav, "get8", 1.5),
        _ratio_goal("5", "big GET vs WsgiDAV", ours, wsgidav, "big_get", 1.0),
        _ratio_goal("6", "big PUT vs WsgiDAV", ours, wsgidav, "big_put", 1.0),
        _ratio_goal("7", "PROPFIND median vs WsgiDAV", ours, wsgidav, "propfind_p50", 5.0),
    ]
    if stack != "full":
        rows[5][4] = "info" if rows[5][4] != "n/a" else "n/a"  # the target is the full stack's
    elif s3_raw:
        for row, key, label in (("6", "big_put", "big PUT"), ("5", "big_get", "big GET")):
            value = ratio(ours, s3_raw, key)
            shown = "info" if value is not None else "n/a"
            rows.append([row, f"{label} vs S3 alone", "-", _x(value), shown])
    p99 = ours.get("propfind_p99")
    rows.append(["7", "PROPFIND p99 (reported)", "-", _ms(p99), "info" if p99 else "n/a"])
    worst, p50 = ours.get("head_max"), ours.get("head_p50")
    shown = "n/a" if worst is None else f"max {_ms(worst)} (median {_ms(p50)})"
    verdict = "n/a" if worst is None else ("PASS" if worst < 50 else "MISS")
    rows.append(["8", "new client's HEAD, 200 idle + 200 half-open", "< 50 ms", shown, verdict])
    rows.append(["9", "huge PUT: peak RSS, flat", "<= 150 MiB, flat", *_rss_goal(ours)])
    return rows


def _ms(value: float | None) -> str:
    return "n/a" if value is None else fmt(value) + " ms"


def _rss_goal(ours: Results) -> list[str]:
    peak, q25, q100 = ours.get("huge_peak"), ours.get("huge_q25"), ours.get("huge_q100")
    if peak is None or q25 is None or q100 is None:
        return ["n/a", "n/a"]
    flat = q100 - q25 <= max(FLAT_SLACK_MIB, 0.1 * q25)
    shown = f"{fmt(peak)} MiB, {'flat' if flat else 'growing'} ({fmt(q25)} -> {fmt(q100)})"
    return [shown, "PASS" if peak <= 150 and flat else "MISS"]


# row, key, workload, target (x WsgiDAV), the bound measured for it
BOUNDED: list[tuple[str, str, str, float, str]] = [
    ("1", "put1", "4 KiB PUT, 1 conn", 1.0, NOOP),
    ("2", "put8", "4 KiB PUT, 8 conns", 1.5, NOOP),
    ("4", "get8", "4 KiB GET, 8 conns", 1.5, NOOP),
    ("5", "big_get", "big GET, full stack", 1.0, S3_RAW),
    ("6", "big_put", "big PUT, full stack", 1.0, S3_RAW),
]


def ceiling_rows(med: dict[str, Results]) -> list[list[str]]:
    """Each bound against WsgiDAV on the rows it bounds: the no-op app on rows 1, 2 and
    4 (the most any application on one cheroot process reaches with the bench's client),
    the S3 server alone on the full stack's rows 5 and 6; beside each target."""
    wsgidav = med.get("wsgidav-fs", {})
    rows = []
    for row, key, label, limit, bound in BOUNDED:
        value = ratio(med.get(bound, {}), wsgidav, key)
        if value is None:
            continue
        reach = "within" if value >= limit else "BEYOND"
        shown = fmt(med[bound][key])
        rows.append([row, label, f">= {fmt(limit)}x", bound, shown, _x(value), reach])
    return rows


def ceilings(med: dict[str, Results]) -> None:
    rows = ceiling_rows(med)
    if not rows:
        return
    print("\nBounds vs WsgiDAV: a WSGI app that does nothing, on cheroot (cheroot-noop,")
    print(
        "tests/bench/http_ceiling.py), and the S3 server alone (s3-raw, tests/bench/s3_ceiling.py);"
    )
    print("BEYOND: no server built on them meets the target in this run")
    header = ["row", "workload", "target", "bound", "its rate", "bound vs WsgiDAV", "target"]
    print(table(header, rows, left=2))


def goals(targets: list[Target], runs: dict[str, list[Results]]) -> None:
    med = medians(runs)
    ceilings(med)
    wsgidav, rclone = med.get("wsgidav-fs", {}), med.get("rclone", {})
    s3_raw = med.get(S3_RAW, {})
    rows = []
    for t in targets:
        if t.ours:
            goal = goal_rows(med[t.name], wsgidav, rclone, stack_of(t.name), s3_raw)
            rows += [[t.name, *r] for r in goal]
    if not rows:
        return
    print("\nTargets from the issue (ratios of medians, > 1 = ours better; absolute medians)")
    print(table(["server", "row", "workload", "target", "measured", "result"], rows, left=4))
    print(
        "row 6 is judged on the full stack only ('info' on embedded); row 8 on the worst of "
        f"the new clients; 'flat': RSS at 100 % at most max({FLAT_SLACK_MIB:.0f} MiB, 10 %) "
        "above RSS at 25 % of the upload; 'vs S3 alone': the S3 server's own rate for the "
        "same bytes as objects of our average chunk size, 4 at a time (tests/bench/s3_ceiling.py)"
    )
