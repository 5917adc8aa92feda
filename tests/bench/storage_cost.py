"""What the store keeps and what compression and encryption cost (issue 19); prints
markdown tables. Not a test: pytest does not collect it, CI never runs it.

    python -m tests.bench.storage_cost [--only targets|chunks|costs] [--quick]
                                       [--size-mib 1024] [--rounds 3]

Every configuration runs as a real `davserver serve` (the embedded default: SQLite and
a local blob directory) on a fresh data directory, its settings given as `DAVSERVER_*`
variables, and is written to over HTTP. A setting this server does not know yet is
left out with a note (the table then shows what the server does without it).

- targets: the issue's targets table. One server per configuration (compression off,
  auto, auto with encryption) takes, in order, the source tree, the same tree again
  with 5 % of its files edited, 32 MiB random, a 100 MiB text and 10 later versions,
  and a 64 MiB text PUT by `admin` then by a second user. Each workload's growth of
  the blob directory (every byte under it) is divided by its logical bytes (versions:
  stored / first version stored; the second copy: bytes). A restic repository
  (format 2, compressed) takes the same workloads beside it. A second table gives the
  catalog's growth (the SQLite file after a WAL checkpoint) per file and per new chunk.
- chunks: the versions workload with compression auto for mean chunk sizes of 256 KiB,
  512 KiB and 1 MiB (min = mean / 4, max = mean x 4): stored / first, objects per GiB
  stored, PUT MB/s of the first version and of the edited ones (median).
- costs: PUT and GET MB/s and server CPU per GiB of a text file and a random file
  (default 1 GiB) with compression off (plain), auto, encryption (compression off) and
  both: each round starts a fresh server per setting, all side by side, and sends each
  file to each in turn (the order rotated each round), so the settings meet the same
  machine load; medians over `--rounds`, shown as ratios to plain. `--quick`: 256 MiB,
  one round.

The payloads are described in `tests.bench.storage_workloads`. MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import storage_report as report
from tests.bench import storage_workloads as work
from tests.bench.bench import MIB, find_tool
from tests.bench.storage_server import Store, known_settings

SEED = 19
SECTIONS = ("targets", "chunks", "costs")
TARGET_CONFIGS: dict[str, dict[str, str]] = {
    "off": {"compression": "off"},
    "auto": {"compression": "auto"},
    "auto+enc": {"compression": "auto", "encryption": "true"},
}
COST_CONFIGS: dict[str, dict[str, str]] = {
    "plain": {"compression": "off"},
    "auto": {"compression": "auto"},
    "enc": {"compression": "off", "encryption": "true"},
    "both": {"compression": "auto", "encryption": "true"},
}
CHUNK_MEANS_KIB = (256, 512, 1024)
RANDOM_SIZE = 32 * MIB
VERSION_SIZE = 100 * MIB
COPY_SIZE = 64 * MIB


class Payloads:
    """The targets' and chunks' payload files under `root`, written once."""

    def __init__(self, root: Path) -> None:
        files = work.stdlib_sources()
        self.source = work.source_text(files)
        self.tree = root / "tree"
        self.rels = work.copy_tree(files, self.tree)
        self.edited_tree = root / "edited"
        shutil.copytree(self.tree, self.edited_tree)
        self.edited = work.edit_tree(self.edited_tree, self.rels, SEED)
        self.random = root / "random.bin"
        work.write_file(self.random, work.random_blocks(RANDOM_SIZE, SEED))
        self.copy = root / "copy.txt"
        work.write_file(self.copy, work.text_blocks(self.source, COPY_SIZE, SEED + 1))
        (root / "versions").mkdir()
        self.versions = work.write_versions(self.source, VERSION_SIZE, SEED + 2, root / "versions")
        os.sync()


def ours_targets(store: Store, p: Payloads) -> dict[str, report.Growth]:
    """Run the targets' workloads in order on `store`; the growth of each."""
    out = {}
    out["source"] = store.measure(lambda: store.put_tree("src", p.tree, p.rels))
    out["source"].logical = work.dir_bytes(p.tree)[0]
    out["edited"] = store.measure(lambda: store.put_tree("src", p.edited_tree, p.rels))
    out["edited"].logical = work.dir_bytes(p.edited_tree)[0]
    out["random"] = store.measure(lambda: store.put("admin", "random.bin", p.random))
    out["random"].logical = RANDOM_SIZE
    first = store.measure(lambda: store.put("admin", "text.txt", p.versions[0]))
    rest = store.measure(lambda: [store.put("admin", "text.txt", path) for path in p.versions[1:]])
    out["versions"] = first + rest
    out["versions"].logical = first.blob_bytes  # the row shows stored / first stored
    out["versions"].files = len(p.versions)
    store.put("admin", "copy.txt", p.copy)
    store.add_user("bob")
    out["copy"] = store.measure(lambda: store.put("bob", "copy.txt", p.copy))
    store.verify("bob", "copy.txt", p.copy)
    store.verify("admin", "text.txt", p.versions[-1])
    return out


def restic_targets(exe: str, workdir: Path, p: Payloads) -> dict[str, report.Growth]:
    """The same workloads (but the second user's copy) into a restic repository."""
    restic = work.Restic(exe, workdir)
    tree = workdir / "src"
    shutil.copytree(p.tree, tree)

    def grown(action: Any, logical: int) -> report.Growth:
        before = restic.size()
        action()
        return report.Growth(blob_bytes=restic.size() - before, logical=logical)

    out = {"source": grown(lambda: restic.backup_tree(tree), work.dir_bytes(p.tree)[0])}
    for rel in p.edited:
        shutil.copyfile(p.edited_tree / rel, tree / rel)
    out["edited"] = grown(lambda: restic.backup_tree(tree), work.dir_bytes(p.edited_tree)[0])
    out["random"] = grown(lambda: restic.backup_file(p.random, "random.bin"), RANDOM_SIZE)
    first = grown(lambda: restic.backup_file(p.versions[0], "text.txt"), 0)

    def later_versions() -> None:
        for path in p.versions[1:]:
            restic.backup_file(path, "text.txt")

    rest = grown(later_versions, 0)
    out["versions"] = report.Growth(blob_bytes=first.blob_bytes + rest.blob_bytes)
    out["versions"].logical = first.blob_bytes
    return out


def run_targets(tmp: Path, p: Payloads) -> None:
    results: dict[str, dict[str, report.Growth]] = {}
    for name, settings in TARGET_CONFIGS.items():
        started = time.monotonic()
        with Store(tmp / f"targets-{name}", settings) as store:
            results[name] = ours_targets(store, p)
        print(f"targets: {name} done in {time.monotonic() - started:.0f}s", flush=True)
    exe = find_tool("restic")
    if exe is None:
        print("note: restic not found on PATH: no restic column", flush=True)
    else:
        started = time.monotonic()
        results["restic"] = restic_targets(exe, tmp / "restic", p)
        print(f"targets: restic done in {time.monotonic() - started:.0f}s", flush=True)
    report.targets(results, list(TARGET_CONFIGS))


def put_measured(store: Store, rel: str, path: Path) -> tuple[float, float, report.Growth]:
    """PUT `path` at `rel` (admin): the seconds it took, the server's CPU seconds in
    that time, and the store's growth."""
    times: list[float] = []

    def put() -> None:
        cpu = store.cpu_seconds()
        times.append(store.put("admin", rel, path))
        times.append(store.cpu_seconds() - cpu)

    growth = store.measure(put)
    return times[0], times[1], growth


def chunk_run(store: Store, p: Payloads, mean_kib: int) -> report.ChunkRun:
    """The versions workload on `store`: growth after the first and after all."""
    seconds, _, first = put_measured(store, "t", p.versions[0])
    edits: list[float] = []
    rest = store.measure(lambda: edits.extend(store.put("admin", "t", v) for v in p.versions[1:]))
    read_back = store.verify("admin", "t", p.versions[-1])
    return report.ChunkRun(
        mean_kib, first, first + rest, [seconds, *edits], VERSION_SIZE, read_back
    )


def run_chunks(tmp: Path, p: Payloads) -> None:
    rows: list[report.ChunkRun] = []
    for mean_kib in CHUNK_MEANS_KIB:
        mean = mean_kib * 1024
        settings = {
            "compression": "auto",
            "chunk_min_size": str(mean // 4),
            "chunk_avg_size": str(mean),
            "chunk_max_size": str(mean * 4),
        }
        started = time.monotonic()
        with Store(tmp / f"chunks-{mean_kib}", settings) as store:
            rows.append(chunk_run(store, p, mean_kib))
        print(f"chunks: {mean_kib} KiB done in {time.monotonic() - started:.0f}s", flush=True)
    report.chunks(rows)


def run_costs(tmp: Path, size: int, rounds: int) -> None:
    files = work.stdlib_sources()
    text, rand = tmp / "cost-text.txt", tmp / "cost-random.bin"
    work.write_file(text, work.text_blocks(work.source_text(files), size, SEED + 3))
    work.write_file(rand, work.random_blocks(size, SEED + 4))
    os.sync()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in COST_CONFIGS}
    names = list(COST_CONFIGS)
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        try:
            figures = cost_round(tmp / f"costs-{round_no}", order, text, rand)
        except Exception as e:  # report it and carry on with the next round
            print(f"costs round {round_no + 1}: FAILED: {e}", flush=True)
            continue
        finally:
            shutil.rmtree(tmp / f"costs-{round_no}", ignore_errors=True)
            os.sync()
        for name in order:
            runs[name].append(figures[name])
            shown = ", ".join(f"{k} {v:.1f}" for k, v in figures[name].items())
            print(f"costs round {round_no + 1}: {name}: {shown}", flush=True)
    medians = {
        n: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for n, rs in runs.items() if rs
    }
    report.costs(medians, size, rounds)


def cost_round(
    workdir: Path, order: list[str], text: Path, rand: Path
) -> dict[str, dict[str, float]]:
    """One server per setting, all running; each file PUT to each server in `order`,
    then GET back from each, so that the settings' transfers follow each other closely
    (the machine's load drifts). Per setting: MB/s, the server's CPU seconds per GiB,
    the blob bytes stored per logical byte (%), the server's peak RSS (MiB)."""
    out: dict[str, dict[str, float]] = {name: {} for name in order}
    with contextlib.ExitStack() as stack:
        stores = {n: stack.enter_context(Store(workdir / n, COST_CONFIGS[n])) for n in order}
        for kind, path in (("text", text), ("random", rand)):
            size, gib = path.stat().st_size, path.stat().st_size / 2**30
            for name, store in stores.items():
                seconds, cpu, growth = put_measured(store, path.name, path)
                out[name][f"put_{kind}"] = size / seconds / 1e6
                out[name][f"put_{kind}_cpu"] = cpu / gib
                out[name][f"stored_{kind}"] = growth.blob_bytes / size * 100
            for name, store in stores.items():
                cpu = store.cpu_seconds()
                out[name][f"get_{kind}"] = size / store.get("admin", path.name, size) / 1e6
                out[name][f"get_{kind}_cpu"] = (store.cpu_seconds() - cpu) / gib
    for name, store in stores.items():
        out[name]["rss"] = store.peak_rss / MIB
    return out


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # so the `finally` blocks stop servers and remove files


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.storage_cost", description=__doc__.split("\n")[0]
    )
    p.add_argument("--only", choices=SECTIONS, help="run one section")
    p.add_argument("--quick", action="store_true", help="costs: 256 MiB, one round")
    p.add_argument("--size-mib", type=int, help="costs: file size (default 1024)")
    p.add_argument("--rounds", type=int, help="costs: rounds (default 3)")
    args = p.parse_args(argv)
    args.size_mib = args.size_mib or (256 if args.quick else 1024)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.size_mib < 1 or args.rounds < 1:
        p.error("--size-mib and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    sections = [args.only] if args.only else list(SECTIONS)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"davserver storage bench, {now}: {', '.join(sections)}; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; server settings known: {known_settings(COST_CONFIGS)}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="davbench-storage-", dir="/tmp"))
    try:
        started = time.monotonic()
        if "targets" in sections or "chunks" in sections:
            payloads = Payloads(tmp / "payloads")
            print(f"payloads ready in {time.monotonic() - started:.0f}s", flush=True)
            if "targets" in sections:
                run_targets(tmp, payloads)
            if "chunks" in sections:
                run_chunks(tmp, payloads)
        if "costs" in sections:
            run_costs(tmp, args.size_mib * MIB, args.rounds)
        print(f"\ntook {time.monotonic() - started:.0f}s", flush=True)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
