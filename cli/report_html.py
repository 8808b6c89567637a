"""``pytp report --html``: one self-contained HTML page from a :class:`~pytp.catalog.report.Report`.

The page needs nothing from the network: its CSS is inline, the job chart is
inline SVG, and there is no script at all.  Names come from users and tapes
(job names, paths, barcodes) and may hold anything, ``<script>`` included,
so the page is built with :func:`tag`, which escapes every string it is
given; only what :func:`tag` itself made (:class:`Markup`) passes unescaped.
A Content-Security-Policy that forbids scripts and every fetch backs this up.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime

from pytp.catalog.report import DayCount, DueTape, Element, LibraryPicture, PoolUsage, Problem, Report, TapeInfo

from .app import human_bytes


class Markup(str):
    """HTML that :func:`tag` built: inserted as is, never escaped again."""


def esc(value: object) -> Markup:
    """``value`` as HTML text: escaped unless it is already :class:`Markup`."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def _join(children: Iterable[object]) -> str:
    parts = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, (str, int, float)):
            parts.append(esc(child))
        else:
            parts.append(_join(child))  # type: ignore[arg-type]
    return "".join(parts)


def tag(name: str, *children: object, **attrs: object) -> Markup:
    """``<name attrs>children</name>`` with every attribute value and text child escaped.

    ``class_`` stands for ``class`` and ``data_x`` for ``data-x``; an
    attribute that is None or False is left out.
    """
    rendered = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
        for key, value in attrs.items()
        if value is not None and value is not False
    )
    return Markup(f"<{name}{rendered}>{_join(children)}</{name}>")


def iso(value: datetime | None) -> str:
    """ISO 8601 with the zone, to the second; empty when unknown."""
    return value.isoformat(timespec="seconds") if value else ""


def percent(fraction: float | None) -> str:
    """``37 %``; a tape with a few bytes on it is ``<1 %``, not ``0 %``."""
    if fraction is None:
        return ""
    return "<1 %" if 0 < fraction < 0.01 else f"{fraction * 100:.0f} %"


CSS = """
:root { --ok:#2e8b57; --partial:#d99a1c; --failed:#c62828; --running:#3d6fb6; --ink:#1f2933;
        --muted:#66737f; --line:#d8dee4; --card:#fff; --bg:#f3f5f7; --full:#3d6fb6; --expired:#8a939b; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
header { background:#22313f; color:#fff; padding:18px 32px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header p { margin:4px 0 0; color:#c9d3dc; font-size:13px; }
main { padding:20px 32px 40px; max-width:1280px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:0 0 18px; }
h2 { margin:0 0 12px; font-size:17px; }
h3 { margin:14px 0 8px; font-size:14px; color:var(--muted); font-weight:600; }
.cards { display:flex; gap:12px; margin:0 0 18px; flex-wrap:wrap; }
.card { flex:1 1 150px; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card b { display:block; font-size:24px; }
.card span { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card.alert b { color:var(--failed); }
.elements { display:grid; grid-template-columns:repeat(auto-fill, minmax(132px, 1fr)); gap:8px; }
.el { border:1px solid var(--line); border-left:5px solid var(--line); border-radius:6px; padding:6px 8px;
      min-height:74px; background:#fbfcfd; }
.el.empty { border-style:dashed; border-left-width:1px; background:transparent; color:var(--muted); }
.el .where { font-size:11px; color:var(--muted); }
.el .barcode { font:600 14px "DejaVu Sans Mono", monospace; overflow-wrap:anywhere; }
.el .meta { font-size:11px; color:var(--muted); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.el.drive { background:#eef3f9; }
.el.appendable { border-left-color:var(--ok); }
.el.full { border-left-color:var(--full); }
.el.expired { border-left-color:var(--expired); }
.el.error { border-left-color:var(--failed); background:#fdf0f0; }
.el.unknown { border-left-color:#b9c2ca; }
.el.cleaning { border-left-color:#8e5cc2; }
.bar { height:8px; background:#e4e8ec; border-radius:4px; overflow:hidden; margin:4px 0 2px; }
.bar i { display:block; height:100%; background:var(--ok); }
.bar.full i { background:var(--full); }
.bar.high i { background:var(--partial); }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.03em; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.when { white-space:nowrap; }
td.subject { min-width:12em; overflow-wrap:anywhere; }
td.code { font-family:"DejaVu Sans Mono", monospace; font-size:13px; overflow-wrap:anywhere; }
td .bar { width:140px; }
ul.details { margin:0; padding-left:16px; }
ul.details li { overflow-wrap:anywhere; }
.kind { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; color:#fff; white-space:nowrap; }
.kind.failed, .kind.error { background:var(--failed); }
.kind.partial { background:var(--partial); }
.none { color:var(--muted); font-style:italic; margin:0; }
.legend { display:flex; gap:16px; font-size:12px; color:var(--muted); margin-top:4px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; }
svg.chart { width:100%; height:auto; display:block; }
svg.chart text { font:11px "DejaVu Sans", Arial, sans-serif; fill:var(--muted); }
svg.chart .ok { fill:var(--ok); } svg.chart .partial { fill:var(--partial); }
svg.chart .failed { fill:var(--failed); } svg.chart .running { fill:var(--running); }
svg.chart .today { fill:var(--ink); font-weight:600; }
footer { color:var(--muted); font-size:12px; padding:0 32px 24px; }
"""

#: No script, no fetch: the page is self-contained, and a name that slipped
#: through unescaped still could not run or load anything.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _bar(fraction: float | None, status: str = "") -> Markup:
    if fraction is None:
        return tag("div", tag("i", style="width:0%"), class_="bar", title="capacity unknown")
    level = "full" if status == "full" else "high" if fraction >= 0.9 else ""
    # a tape with anything on it shows a sliver, so it never looks blank
    width = f"max({fraction * 100:.1f}%, 3px)" if fraction > 0 else "0"
    return tag("div", tag("i", style=f"width:{width}"), class_=f"bar {level}".strip())


def _element(element: Element) -> Markup:
    where = {
        "drive": f"Drive {element.number}" + (f" · {element.name}" if element.name else ""),
        "slot": f"Slot {element.number}",
        "import_export": f"I/E slot {element.number}",
    }[element.kind]
    drive = " drive" if element.kind == "drive" else ""
    if not element.full:
        return tag(
            "div", tag("div", where, class_="where"), tag("div", "empty", class_="meta"), class_="el empty" + drive
        )
    tape = element.tape
    fill: float | None
    if element.cleaning:
        state, lines, fill = "cleaning", ["cleaning cartridge"], None
    elif tape is None:
        state, lines, fill = "unknown", ["not in the catalog", "blank or foreign"], 0.0
    else:
        state, fill = tape.status, tape.fill
        used = f"{percent(fill)} · {human_bytes(tape.used)}" if fill is not None else human_bytes(tape.used)
        lines = [used, f"{tape.pool} · {tape.status}"]
        if tape.label != element.barcode:
            lines.insert(0, f"label {tape.label}")
    return tag(
        "div",
        tag("div", where, class_="where"),
        tag("div", element.barcode or "(no barcode)", class_="barcode"),
        _bar(fill, state) if fill is not None else None,
        [tag("div", line, class_="meta", title=line) for line in lines],
        class_=f"el {state}{drive}",
        data_barcode=element.barcode,
        data_fill=percent(fill) if tape is not None else None,
    )


def _library(picture: LibraryPicture) -> Markup:
    if picture.error:
        return tag(
            "div", tag("h3", picture.name), tag("p", f"The library did not answer: {picture.error}", class_="none")
        )
    groups = []
    for kind, title in (("drive", "Drives"), ("slot", "Slots"), ("import_export", "Import/export slots")):
        elements = picture.of_kind(kind)
        if elements:
            groups.append(tag("h3", title))
            groups.append(tag("div", [_element(e) for e in elements], class_="elements"))
    return tag("div", tag("h2", f"Library {picture.name}"), groups, class_="library", data_library=picture.name)


def _table(headers: list[str], rows: list[list[object]], classes: dict[int, str] | None = None) -> Markup:
    """A table; ``classes`` gives a column its CSS class (``num``, ``code``, ``when``)."""
    classes = classes or {}
    head = tag("tr", [tag("th", h, class_="num" if classes.get(i) == "num" else None) for i, h in enumerate(headers)])
    body = [tag("tr", [tag("td", c, class_=classes.get(i)) for i, c in enumerate(row)]) for row in rows]
    return tag("table", tag("thead", head), tag("tbody", body))


def _outside(tapes: list[TapeInfo]) -> Markup | None:
    if not tapes:
        return None
    rows = [
        [t.label, t.barcode or "", t.pool, t.status, _bar(t.fill, t.status), human_bytes(t.used), iso(t.last_written)]
        for t in tapes
    ]
    return tag(
        "div",
        tag("h3", "Tapes outside the libraries (offline, in a vault, or in a library that did not answer)"),
        _table(
            ["label", "barcode", "pool", "status", "fill", "used", "last written"],
            rows,
            {0: "code", 1: "code", 5: "num", 6: "when"},
        ),
        class_="outside",
    )


def _pools(pools: list[PoolUsage]) -> Markup:
    rows = []
    for p in pools:
        fill = p.used / p.capacity if p.capacity else None
        rows.append(
            [
                p.name,
                "forever" if p.retention_days is None else f"{p.retention_days} days",
                p.tapes,
                p.appendable,
                p.full,
                p.expired,
                p.error,
                human_bytes(p.used),
                human_bytes(p.capacity),
                human_bytes(p.free),
                _bar(fill),
            ]
        )
    headers = ["pool", "retention", "tapes", "appendable", "full", "expired", "error", "used", "capacity", "free", ""]
    return _table(headers, rows, dict.fromkeys(range(2, 10), "num"))


def _chart(days: list[DayCount]) -> Markup:
    """Stacked bars per day: ok at the bottom, then partial, failed, running."""
    width, height, top, bottom, left = 960, 190, 18, 34, 28
    step = (width - left) / max(len(days), 1)
    scale = max([d.total for d in days] + [1])
    plot = height - top - bottom
    parts: list[Markup] = []
    for tick in sorted({0, scale // 2, scale}):
        y = top + plot - plot * tick / scale
        parts.append(tag("line", x1=left, x2=width, y1=f"{y:.1f}", y2=f"{y:.1f}", stroke="#e4e8ec"))
        parts.append(tag("text", tick, x=left - 6, y=f"{y + 4:.1f}", text_anchor="end"))
    for i, day in enumerate(days):
        x = left + i * step + step * 0.15
        y = top + plot
        bars = []
        for status in ("ok", "partial", "failed", "running"):
            count = getattr(day, status)
            if count:
                h = plot * count / scale
                y -= h
                bars.append(
                    tag("rect", x=f"{x:.1f}", y=f"{y:.1f}", width=f"{step * 0.7:.1f}", height=f"{h:.1f}", class_=status)
                )
        title = f"{day.day.isoformat()}: {day.ok} ok, {day.partial} partial, {day.failed} failed, {day.running} running"
        last = i == len(days) - 1
        if day.total:
            bars.append(tag("text", day.total, x=f"{x + step * 0.35:.1f}", y=f"{y - 4:.1f}", text_anchor="middle"))
        if last or i % 2 == (len(days) - 1) % 2:
            bars.append(
                tag(
                    "text",
                    "today" if last else day.day.strftime("%m-%d"),
                    x=f"{x + step * 0.35:.1f}",
                    y=height - bottom + 16,
                    text_anchor="middle",
                    class_="today" if last else None,
                )
            )
        parts.append(
            tag(
                "g",
                tag("title", title),
                bars,
                class_="day",
                data_day=day.day.isoformat(),
                data_ok=day.ok,
                data_partial=day.partial,
                data_failed=day.failed,
                data_running=day.running,
            )
        )
    legend = tag(
        "div",
        [tag("span", tag("i", style=f"background:var(--{s})"), s) for s in ("ok", "partial", "failed", "running")],
        class_="legend",
    )
    svg = tag(
        "svg",
        parts,
        class_="chart",
        viewBox=f"0 0 {width} {height}",
        role="img",
        aria_label="jobs per day",
        xmlns="http://www.w3.org/2000/svg",
    )
    return Markup(svg + legend)


def _due(items: list[DueTape], empty: str, return_list: bool = False) -> Markup:
    if not items:
        return tag("p", empty, class_="none")
    rows = []
    for d in items:
        t = d.tape
        extra = iso(t.retention_end) if return_list else (iso(t.last_verified) or "never")
        where = t.location or (f"vault {t.vault}" if t.vault else "outside")
        rows.append([t.label, t.barcode or "", t.pool, where, extra, iso(t.last_written), d.reason])
    headers = [
        "label",
        "barcode",
        "pool",
        "location",
        "retention ended" if return_list else "last verified",
        "last written",
        "why",
    ]
    return _table(headers, rows, {0: "code", 1: "code", 4: "when", 5: "when"})


def _problems(problems: list[Problem]) -> Markup:
    if not problems:
        return tag("p", "No failed or partial jobs and no tapes in error.", class_="none")
    rows = []
    for p in problems:
        kind = p.kind.split()[0] if p.kind != "tape in error" else "error"
        rows.append(
            [
                tag("span", p.kind, class_=f"kind {kind}"),
                p.subject,
                iso(p.when),
                tag("ul", [tag("li", line) for line in p.details], class_="details"),
            ]
        )
    return _table(["kind", "job or tape", "when", "details"], rows, {1: "subject", 2: "when"})


def render_report(report: Report, title: str = "pytp report") -> str:
    """The whole page for ``report``, as a string (UTF-8 when written)."""
    problems = len(report.problems)
    cards = tag(
        "div",
        [
            tag("div", tag("b", report.tapes), tag("span", "tapes in the catalog"), class_="card"),
            tag("div", tag("b", report.jobs), tag("span", f"jobs, last {report.days} days"), class_="card"),
            tag("div", tag("b", problems), tag("span", "problems"), class_="card alert" if problems else "card"),
            tag("div", tag("b", len(report.due_scrub)), tag("span", "tapes due for scrub"), class_="card"),
            tag("div", tag("b", len(report.due_return)), tag("span", "tapes due back or reusable"), class_="card"),
        ],
        class_="cards",
    )
    libraries = [_library(p) for p in report.libraries] or [tag("p", "No library is configured.", class_="none")]
    sections = [
        tag("section", libraries, _outside(report.outside), id="library"),
        tag("section", tag("h2", "Pools"), _pools(report.pools), id="pools"),
        tag("section", tag("h2", f"Jobs per day (last {report.days} days)"), _chart(report.jobs_per_day), id="jobs"),
        tag(
            "section",
            tag("h2", "Problems"),
            _problems(report.problems),
            id="problems",
        ),
        tag(
            "section",
            tag("h2", f"Due for scrub (never verified, or not for {report.scrub_age_days} days)"),
            _due(report.due_scrub, "Every tape with data was verified recently."),
            id="scrub",
        ),
        tag(
            "section",
            tag("h2", "Due for return or reuse (retention ended)"),
            _due(report.due_return, "No tape has reached the end of its retention.", return_list=True),
            id="return",
        ),
    ]
    generated = iso(report.generated_at)
    head = Markup(
        '<meta charset="utf-8">'
        + str(tag("meta", http_equiv="Content-Security-Policy", content=CSP))
        + '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + str(tag("title", f"{title} {generated}"))
        + str(tag("style", Markup(CSS)))
    )
    body = tag(
        "body",
        tag(
            "header",
            tag("h1", title),
            tag(
                "p",
                "Generated ",
                tag("time", generated, datetime=generated),
                " · as far as the catalog and the changers know now",
            ),
        ),
        tag("main", cards, sections),
        tag("footer", "Written by pytp report. Self-contained: no scripts, nothing loaded from the network."),
    )
    return "<!DOCTYPE html>\n" + tag("html", tag("head", head), body, lang="en") + "\n"
