"""The markdown tables `tests.bench.storage_cost` prints, and the figures they hold."""

from __future__ import annotations

import dataclasses
import statistics

KIB = 1024
GIB = 1024**3
COPY_LIMIT = 64 * KIB  # the "+0"

# workload: label, target (at most), ratio or bytes
WORKLOADS: dict[str, tuple[str, float, bool]] = {
    "source": ("30 MiB of Python source", 0.26, True),
    "edited": ("the same tree again, 5 % of files edited", 0.02, True),
    "random": ("32 MiB random", 1.003, True),
    "versions": (
        "10 kept versions of 100 MiB text, 10 small edits each (stored / first)",
        1.5,
        True,
    ),
    "copy": ("second copy of 64 MiB by another user", COPY_LIMIT, False),
}
COST_ROWS = (
    ("put_text", "PUT text"),
    ("get_text", "GET text"),
    ("put_random", "PUT random"),
    ("get_random", "GET random"),
)
# (metric, at least this ratio to plain): the cost targets
COST_TARGETS = (("put_random", 0.95), ("put_text", 0.7))


@dataclasses.dataclass
class Growth:
    """What one workload added: bytes under the blob directory, objects (files) there,
    catalog bytes, files PUT; `logical` is what the blob bytes are divided by."""

    blob_bytes: int = 0
    objects: int = 0
    catalog_bytes: int = 0
    files: int = 0
    logical: int = 0

    def __add__(self, other: Growth) -> Growth:
        return Growth(
            self.blob_bytes + other.blob_bytes,
            self.objects + other.objects,
            self.catalog_bytes + other.catalog_bytes,
            self.files + other.files,
            self.logical + other.logical,
        )


@dataclasses.dataclass
class ChunkRun:
    mean_kib: int
    first: Growth
    total: Growth
    seconds: list[float]  # each version's PUT, the first one first
    size: int
    read_back: str = "ok"  # the last version's GET: "ok", "FAILED" or "WRONG"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table, columns padded; the first column left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * w if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(header), line(rule), *(line(r) for r in rows)])


def _ratio(growth: Growth) -> float:
    return growth.blob_bytes / growth.logical if growth.logical else float("nan")


def _shown(workload: str, growth: Growth | None, verdict: bool) -> str:
    if growth is None:
        return "-"
    _, limit, is_ratio = WORKLOADS[workload]
    value = _ratio(growth) if is_ratio else growth.blob_bytes
    digits = 4 if workload == "random" else 3  # its target, 1.003x, is near 1
    text = f"{value:.{digits}f}x" if is_ratio else f"+{value:,} B"
    if verdict:
        text += " ok" if value <= limit else " MISS"
    return text


def targets(results: dict[str, dict[str, Growth]], ours: list[str]) -> None:
    """The targets table (each of ours marked ok or MISS), then the catalog's growth."""
    columns = [*ours, *(["restic"] if "restic" in results else [])]
    rows = []
    for workload, (label, limit, is_ratio) in WORKLOADS.items():
        cells = [_shown(workload, results[c].get(workload), c in ours) for c in columns]
        target = f"<= {limit}x" if is_ratio else "+0 (< 64 KiB)"
        rows.append([label, *cells, target])
    print("\nStore growth / logical bytes (blob directory, every byte)")
    print(markdown(["workload", *columns, "target"], rows))
    rows = []
    for workload, (label, _, _) in WORKLOADS.items():
        for config in ours:
            g = results[config][workload]
            per_chunk = f"{g.catalog_bytes / g.objects:,.0f}" if g.objects > 0 else "-"
            rows.append(
                [
                    f"{label.split(' (')[0]}: {config}",
                    f"{g.files:,}",
                    f"{g.objects:,}",
                    f"{g.catalog_bytes:,}",
                    f"{g.catalog_bytes / max(g.files, 1):,.0f}",
                    per_chunk,
                ]
            )
    print("\nCatalog growth (SQLite file after a WAL checkpoint), bytes")
    header = ["workload: config", "files PUT", "new objects", "catalog", "per file", "per object"]
    print(markdown(header, rows))


def chunks(runs: list[ChunkRun]) -> None:
    rows = []
    for r in runs:
        later = statistics.median(r.seconds[1:]) if len(r.seconds) > 1 else float("nan")
        rows.append(
            [
                f"{r.mean_kib} KiB",
                f"{r.first.blob_bytes / 2**20:.1f} MiB",
                f"{r.total.blob_bytes / 2**20:.1f} MiB",
                f"{r.total.blob_bytes / r.first.blob_bytes:.3f}x",
                f"{r.total.objects:,}",
                f"{r.total.objects / (r.total.blob_bytes / GIB):,.0f}",
                f"{r.size / r.seconds[0] / 1e6:.0f}",
                f"{r.size / later / 1e6:.0f}",
                f"{r.total.catalog_bytes / max(r.total.files, 1):,.0f}",
                r.read_back,
            ]
        )
    print("\nChunk size: 100 MiB text + 10 versions of 10 small edits, compression auto")
    header = ["mean chunk", "first stored", "all stored", "stored / first", "objects"]
    header += ["objects / GiB stored", "PUT MB/s first", "PUT MB/s edited", "catalog / version"]
    header += ["read back"]
    print(markdown(header, rows))


def costs(medians: dict[str, dict[str, float]], size: int, rounds: int) -> None:
    """Plain's figures, the others' as ratios to plain; stored share; peak RSS; targets.
    The first setting of `medians` is plain (a setting with no successful round is
    missing from it)."""
    names = list(medians)
    if not names:
        print("\nCosts: no setting finished a round")
        return
    plain = medians[names[0]]
    rows = []
    for metric, label in COST_ROWS:
        for suffix, unit, shown in (("", "MB/s", "{:.0f} MB/s"), ("_cpu", "", "{:.2f} s")):
            key = metric + suffix
            cells = [shown.format(plain[key])]
            cells += [f"{medians[n][key] / plain[key]:.2f}x" for n in names[1:]]
            rows.append([label if unit else f"{label}: server CPU per GiB", *cells])
    for kind in ("text", "random"):
        cells = [f"{medians[n][f'stored_{kind}']:.2f} %" for n in names]
        rows.append([f"stored / logical, {kind}", *cells])
    rows.append(["server peak RSS", *(f"{medians[n]['rss']:.0f} MiB" for n in names)])
    print(f"\nCosts: {size / 2**20:.0f} MiB files, medians of {rounds}, ratios to {names[0]}")
    print(markdown(["metric", *names], rows))
    for metric, least in COST_TARGETS:
        got = ", ".join(
            f"{n} {medians[n][metric] / plain[metric]:.2f}x"
            + (" ok" if medians[n][metric] / plain[metric] >= least else " MISS")
            for n in names[1:]
        )
        print(f"target {metric} >= {least}x of {names[0]}: {got}")
