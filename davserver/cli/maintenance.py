"""`davserver gc`, `fsck`, `checksums` and `reseal`: garbage collection, store checks,
backfills, moving chunks to the current compression and encryption.

    davserver gc [--apply] [--grace SECONDS]   # a dry run unless --apply; grace 6 h;
                                               # --apply first thins old versions
                                               # (`versions_max_age`, `versions_max_count`),
                                               # purges old trash (`trash_retention`)
                                               # and also compacts the change log
                                               # (rows older than `change_retention` days)
    davserver fsck [--deep]                    # every chunk a file needs exists (--deep: re-hash);
                                               # a bad chunk is listed with the files it damages
    davserver checksums [--apply]              # checksum files written before they were kept
                                               # (a dry run: counts them, unless --apply)
    davserver reseal [--dry-run] [--recompress] [--workers N]
                                               # chunks not in the form the settings want
                                               # (sealed under the current key) stored
                                               # again, online; old objects left to gc

All show progress bars on a terminal only (never in logs or cron mail).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TypeVar

from tqdm import tqdm

from davserver.app import Services, history_rules
from providers.checksum_fill import fill_checksums
from providers.gc import check_store, collect_garbage
from providers.operations.expiry import expire_history
from providers.reseal import ResealReport, reseal_chunks

COMMANDS = ("gc", "fsck", "checksums", "reseal")
DEFAULT_GRACE = 6 * 3600
T = TypeVar("T")


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `gc` and `fsck` on `sub`."""
    gc = sub.add_parser("gc", parents=[common], help="delete unreferenced chunks (dry run)")
    gc.add_argument("--apply", action="store_true", help="really delete")
    gc.add_argument(
        "--grace", type=_seconds, default=DEFAULT_GRACE, help="seconds, >= 0 (default 6 h)"
    )
    fsck = sub.add_parser("fsck", parents=[common], help="check stored chunks")
    fsck.add_argument("--deep", action="store_true", help="re-hash every chunk")
    sums = sub.add_parser(
        "checksums", parents=[common], help="checksum files stored without (dry run)"
    )
    sums.add_argument("--apply", action="store_true", help="really read and checksum them")
    reseal = sub.add_parser(
        "reseal", parents=[common], help="store chunks again in the current settings' form"
    )
    reseal.add_argument("--dry-run", action="store_true", help="only count them")
    reseal.add_argument(
        "--recompress", action="store_true", help="also compress (or decompress) plain chunks"
    )
    reseal.add_argument("--workers", type=_workers, default=4, help="chunks at once (default 4)")


def _seconds(text: str) -> float:
    """A finite duration in seconds, >= 0 (argparse reports the error as one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text!r}")
    return value


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be 1 to 64, not {text!r}")
    return int(text)


def run(args: argparse.Namespace, services: Services) -> int:
    commands = {"gc": _gc, "fsck": _fsck, "checksums": _checksums, "reseal": _reseal}
    return commands[args.command](args, services)


def _progress(items: Sequence[T], label: str) -> Iterable[T]:
    quiet = not sys.stderr.isatty()
    bar: Iterable[T] = tqdm(items, desc=label, unit="", file=sys.stderr, leave=False, disable=quiet)
    return bar


def _gc(args: argparse.Namespace, services: Services) -> int:
    if args.apply:  # first, so that the contents it lets go are freed by this run
        settings = services.settings
        expired = expire_history(services.catalog, history_rules(settings), time.time())
        print(f"gc: dropped {expired.versions} old versions that retention does not keep")
        print(
            f"gc: purged {expired.trash_items} trash items older than "
            f"{settings.trash_retention} days"
        )
    report = collect_garbage(
        services.catalog,
        services.blobs,
        grace=args.grace,
        apply=args.apply,
        progress=_progress,
        vault=services.files.vault,
    )
    if args.apply:
        days = services.settings.change_retention
        compacted = services.catalog.changes.compact(time.time() - days * 86400)
        print(f"gc: compacted {compacted} change-log rows older than {days} days")
    delete, drop = ("deleted", "dropped") if args.apply else ("would delete", "would drop")
    print(
        f"gc: {delete} {report.chunks} unreferenced chunks and {report.orphans} orphan "
        f"objects, {report.freed_bytes} bytes; {drop} {report.contents} unused contents and "
        f"{report.uploads} abandoned uploads"
        + ("" if args.apply else " (dry run: pass --apply to delete)")
    )
    return 0


def _fsck(args: argparse.Namespace, services: Services) -> int:
    report = check_store(
        services.catalog,
        services.blobs,
        deep=args.deep,
        progress=_progress,
        vault=services.files.vault,
    )
    print(
        f"fsck: checked {report.checked} chunks: {len(report.missing)} missing, "
        f"{len(report.wrong_size)} wrong size, {len(report.corrupt)} corrupt"
    )
    bad = (("missing", report.missing), ("wrong size", report.wrong_size))
    for label, hashes in (*bad, ("corrupt", report.corrupt)):
        for digest in hashes:
            print(f"{label}: {digest}")
            for use in report.affected.get(digest, []):
                print(f"  damages {use.describe()}")
    return 0 if report.ok else 1


def _checksums(args: argparse.Namespace, services: Services) -> int:
    report = fill_checksums(services.catalog, services.files, apply=args.apply, progress=_progress)
    if not args.apply:
        print(
            f"checksums: {report.missing} files' contents ({report.missing_bytes} bytes) have "
            "no checksums (dry run: pass --apply to read and checksum them)"
        )
        return 0
    print(
        f"checksums: computed {report.filled} of {report.missing} contents "
        f"({report.missing_bytes} bytes read); {len(report.failed)} could not be read"
    )
    for content_id in report.failed:
        print(f"unreadable: content {content_id} (run `davserver fsck`)")
    return 0 if report.ok else 1


def _reseal(args: argparse.Namespace, services: Services) -> int:
    vault = services.files.vault
    total = sum(row[2] for row in services.catalog.locators.census())
    keys = vault.keys
    wanted = f"sealed under key {keys.current.key_id}" if keys else "not encrypted"
    print(f"reseal: {total} chunks; wanted: {wanted}, compression {services.settings.compression}")
    bar = tqdm(
        total=total, desc="chunks", unit="", file=sys.stderr, leave=False,
        disable=not sys.stderr.isatty(),
    )  # fmt: skip
    with bar:
        report = reseal_chunks(
            services.catalog,
            vault,
            recompress=args.recompress,
            dry_run=args.dry_run,
            workers=args.workers,
            progress=bar.update,
        )
    _print_reseal(report, services)
    return 0 if report.ok else 1


def _print_reseal(report: ResealReport, services: Services) -> None:
    if report.dry_run:
        print(
            f"reseal: would store {report.candidates} chunks again ({report.candidate_bytes} "
            "bytes stored now) (dry run)"
        )
        return
    print(
        f"reseal: stored {report.resealed} chunks again ({report.bytes_before} -> "
        f"{report.bytes_after} bytes); {report.unchanged} already in the best form, "
        f"{report.raced} changed meanwhile by a writer, {len(report.corrupt)} corrupt, "
        f"{len(report.missing)} missing"
    )
    if report.resealed:
        print("reseal: the old objects stay until `davserver gc --apply` after its grace period")
    affected = services.catalog.contents.files_using([*report.corrupt, *report.missing])
    for label, hashes in (("corrupt", report.corrupt), ("missing", report.missing)):
        for digest in hashes:
            print(f"{label}: {digest} (left as it is; see `davserver fsck --deep`)")
            for use in affected.get(digest, []):
                print(f"  damages {use.describe()}")
