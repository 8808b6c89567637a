"""Search at 1,000,000 catalog entries: rare, medium, glob and common patterns,
against a plain scan of the same paths (plocate if installed, else ``grep``).

Backing up a million real files only to fill a catalog would take most of the
run, so the catalog is filled the way a disaster recovery fills it: a small
real backup writes a tape, its manifest (the documented on-tape format,
``docs/format.md``) is replaced by one listing N synthetic members, and
``pytp catalog rebuild`` reads it into a new catalog.  Nothing depends on the
catalog's schema, and the rebuild's ingest rate is a figure of its own.

The synthetic paths are deterministic (the same on every machine), a few
directory levels of words and numbers with eight extensions, so every pattern
has a known number of hits: rare 1, medium N/997, glob N/400, common N/8.
"""

from __future__ import annotations

import io
import json
import shutil
import statistics
import sys
import tarfile
from pathlib import Path

from .context import Context
from .measure import Series, interleave
from .report import Figure, emit, note, timing
from .sandbox import Sandbox

NAME = "search"
BLOCK = 512 << 10
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
    "romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dune ember fjord granite "
    "harbor iris jade kelp lumen marble nectar onyx pebble quartz raven slate thistle umber vapor willow zinc"
).split()
EXTENSIONS = ("txt", "pdf", "c", "h", "py", "jpg", "log", "gz")


def synthetic_path(i: int) -> str:
    return (
        f"/srv/home/user{i % 997:03d}/project-{WORDS[(i // 7) % len(WORDS)]}/{WORDS[(i // 53) % len(WORDS)]}/"
        f"{WORDS[(i * 31) % len(WORDS)]}-{i:07d}.{EXTENSIONS[i % len(EXTENSIONS)]}"
    )


def patterns(count: int) -> list[tuple[str, str]]:
    return [
        ("rare", f"{count // 2:07d}."),
        ("medium", "/user042/"),
        ("glob", f"*/project-{WORDS[3]}/*.pdf"),
        ("common", ".txt"),
    ]


def write_manifest(site: Sandbox, count: int, paths_file: Path) -> None:
    """Replace the site's manifest (tape file 2) by one with ``count`` members,
    and write the same paths, one a line, to ``paths_file`` for the reference."""
    manifest = site.tape_file(2)
    with tarfile.open(manifest) as archive:
        member = archive.next()
        assert member is not None and member.name == "PYTP-MANIFEST.jsonl"
        lines = archive.extractfile(member).read().splitlines()  # type: ignore[union-attr]
    header = json.loads(lines[0])
    template = next(json.loads(line) for line in lines[1:] if json.loads(line)["type"] == "file")
    template.pop("path_b64", None)
    # Members follow each other in the (imagined) data file: a rebuild checks
    # that offsets are distinct and inside the tape file the header describes.
    stride = template["header_size"] + -(-template["size"] // 512) * 512
    header["job"]["tape_files"][0]["blocks"] = -(-(count + 1) * stride // BLOCK)
    body = io.BytesIO()
    body.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
    with open(paths_file, "w") as paths:
        for i in range(count):
            path = synthetic_path(i)
            template["path"] = path
            template["inode"] = 1_000_000 + i
            template["offset"] = i * stride
            body.write(json.dumps(template, separators=(",", ":")).encode() + b"\n")
            paths.write(path + "\n")
    payload = body.getvalue()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("PYTP-MANIFEST.jsonl")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    data = raw.getvalue()
    data += b"\0" * (-len(data) % BLOCK)  # whole tape blocks, as the drive writes them
    manifest.write_bytes(data)


def reference_command(paths_file: Path, plocate_db: Path | None, pattern: str) -> str:
    if plocate_db is not None:
        return f"plocate -d '{plocate_db}' -- '{pattern}' > /dev/null"
    if "*" in pattern:
        regex = "^" + pattern.replace(".", "\\.").replace("*", ".*") + "$"
        return f"grep -E -- '{regex}' '{paths_file}' > /dev/null"
    return f"grep -F -- '{pattern}' '{paths_file}' > /dev/null"


def run(ctx: Context) -> list[Figure]:
    count = ctx.size(20_000, 1_000_000)
    site = ctx.sandbox()
    seed = ctx.path("search-seed")
    seed.mkdir()
    (seed / "seed.txt").write_text("one real member, so the tape has a real job to rebuild from\n")
    site.call("backup", str(seed))
    paths_file = ctx.path("paths.txt")
    write_manifest(site, count, paths_file)
    label = site.used_tape().name
    site.write_catalog_url(site.root / "search.db")
    site.call("tapes")  # the new, empty catalog
    rebuild = ctx.runner.run(site.argv("catalog", "rebuild", "--tape", label), env=site.env)
    # CPU seconds too: on a shared machine the wall rate measures the load as much as the rebuild.
    note(
        f"catalog rebuild of {count:,} entries: {rebuild.wall:.1f} s, {count / rebuild.wall:,.0f} entries/s, "
        f"CPU {rebuild.cpu:.1f} s ({count / max(rebuild.cpu, 1e-9):,.0f} entries per CPU second), "
        f"peak RSS {rebuild.max_rss >> 20} MiB"
    )

    plocate_db: Path | None = None
    if shutil.which("plocate") and shutil.which("plocate-build", path="/usr/sbin:/sbin:/usr/bin:/bin"):
        plocate_db = ctx.path("plocate.db")
        builder = shutil.which("plocate-build", path="/usr/sbin:/sbin:/usr/bin:/bin")
        # -l no: the paths do not exist here, and plocate would hide what it cannot stat
        ctx.runner.run([str(builder), "-l", "no", "-p", str(paths_file), str(plocate_db)])
    reference = "plocate" if plocate_db else "grep over a file of the paths"
    note(f"search reference: {reference}")

    figures = []
    for kind, pattern in patterns(count):
        hits = len(site.call("search", "--format", "csv", "--", pattern).splitlines()) - 1
        pytp, ref = Series("pytp"), Series(reference.split()[0])
        script = reference_command(paths_file, plocate_db, pattern)
        interleave(
            ctx.repeat,
            [
                (pytp, lambda: ctx.runner.run(site.argv("search", "--format", "csv", "--", pattern), env=site.env)),
                (ref, lambda: ctx.runner.shell(script)),
            ],
        )
        inproc = in_process(ctx, site, ["search", "--format", "csv", "--", pattern])
        figures.append(
            emit(
                Figure(
                    f"search {count:,} entries, {kind} `{pattern}` ({hits:,} hits)",
                    f"{timing(pytp)}, in-process {inproc * 1000:.0f} ms",
                    f"{ref.name} {ref.wall * 1000:.1f} ms",
                    ref.wall / inproc,
                    "≤ 100 ms at 10M, within 20× plocate",
                )
            )
        )

    catalog_bytes = sum(p.stat().st_size for p in site.root.glob("search.db*"))
    reference_bytes = (plocate_db or paths_file).stat().st_size
    figures.append(
        emit(
            Figure(
                f"catalog size, {count:,} entries",
                f"{catalog_bytes / count:.0f} B per entry",
                f"{'plocate' if plocate_db else 'path list'} {reference_bytes / count:.0f} B per path",
                reference_bytes / catalog_bytes,
                "≤ 250 B per entry",
            )
        )
    )
    site.remove()
    return figures


def in_process(ctx: Context, site: Sandbox, args: list[str]) -> float:
    """Median seconds of the command run again inside one warm process (see :mod:`.inproc`)."""
    out = ctx.path("inproc.json")
    ctx.runner.run(
        [sys.executable, "-m", "bench.inproc", str(ctx.repeat), *args],
        env=site.env,
        stdout=out,
        cwd=Path(__file__).resolve().parents[1],
    )
    return statistics.median(json.loads(out.read_text()))
