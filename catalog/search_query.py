"""What ``pytp search`` asks the catalog, as plain SQL text (issue 9).

A search is a few small queries and one streamed query of entries, all
written here as SQL text with ``:name`` parameters, so the same statements
run through stdlib ``sqlite3`` (:class:`.light_sql.SqliteReader`: no
SQLAlchemy, sqlmodel or pydantic to import, ~0.6 s of a search's start) or
through SQLAlchemy Core (:class:`.light_sql.CoreReader`: PostgreSQL, or a
SQLite catalog that has to be opened the full way first).

The pattern rules live here too, and ``search.py`` (restore selections,
``versions``, ``ls-catalog``) builds its conditions from the same
:func:`pattern_sql` and :func:`trigram_candidates`, so the two never read a
pattern apart.

A pattern without ``* ? [`` matches as a substring of the path; with them it
is a glob over the whole path (``*`` also crosses ``/``); ``regex=True``
takes it as a regular expression.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from . import search_hits
from .errors import BadPattern
from .light_sql import Condition, Reader
from .search_hits import Hit
from .statuses import DELETED

GLOB_CHARS = set("*?[")
#: the SQLite trigram index (``search_index.FTS_TABLE``; that module needs SQLAlchemy)
FTS_TABLE = "entry_trigram"
#: the escape character of every LIKE written here (SQLAlchemy's ``autoescape`` uses it too)
LIKE_ESCAPE = "/"


# --- patterns ------------------------------------------------------------------------------


def _bracket(pattern: str, i: int) -> tuple[int, bool, str] | None:
    """The bracket expression at ``pattern[i]`` (a ``[``) as the shell reads it: the index
    of its closing ``]``, whether ``!`` or ``^`` negates it, and its members.  A ``]``
    first is a member (``[]a]``, ``[!]a]``).  None: nothing closes it, the ``[`` is itself."""
    j = i + 1
    negate = pattern[j : j + 1] in ("!", "^")
    j += negate
    start = j
    if pattern[j : j + 1] == "]":
        j += 1
    end = pattern.find("]", j)
    return None if end < 0 else (end, negate, pattern[start:end])


def _ranges(members: str) -> list[tuple[str, str]]:
    """The ``a-z`` ranges of a bracket expression's members (a ``-`` first or last is itself)."""
    return [(members[k - 1], members[k + 1]) for k in range(1, len(members) - 1) if members[k] == "-"]


def _class_regex(members: str) -> str:
    """A bracket expression's members as a regular expression's, each special character escaped."""
    for low, high in _ranges(members):
        if low > high:
            raise BadPattern(f"[{members}] holds the range {low}-{high}, whose end comes before its start.")
    out = []
    for k, ch in enumerate(members):
        if ch == "-" and 0 < k < len(members) - 1:
            out.append(ch)  # a range
        else:
            # \ and ] end or escape; [ ^ - & ~ | begin sets, negations and ranges in one regex dialect or another
            out.append("\\" + ch if ch in "\\][^-&~|" else ch)
    return "".join(out)


def glob_to_regex(pattern: str, atomic: bool = False) -> str:
    """Translate a shell glob into an anchored regular expression.

    The result uses only syntax that Python's ``re`` (SQLite REGEXP) and
    PostgreSQL's ``~`` read alike: ``.``, ``.*``, bracket classes, escapes.
    With ``atomic`` (Python's ``re`` only), each ``*`` and the text after it
    up to the next ``*`` is an atomic group, as ``fnmatch`` does it: ``.*a.*a``
    … backtracked ~n^k steps on a long path (``*a*a*a*a*a*a*a*a*a*a*[c^]``
    ran for minutes), the atomic form stays linear in the stars; and ``.``
    crosses a newline in a name, as PostgreSQL's does.

    :raises BadPattern: a range whose end comes before its start (``[z-a]``).
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            parts.append("*")
        elif c == "?":
            parts.append(".")
        elif c == "[":
            bracket = _bracket(pattern, i)
            if bracket is None:
                parts.append(r"\[")
            else:
                end, negate, members = bracket
                parts.append("[" + ("^" if negate else "") + _class_regex(members) + "]")
                i = end
        elif c.isalnum() or c in "/_- ":
            parts.append(c)
        else:
            parts.append("\\" + c)
        i += 1
    if not atomic:
        return "^" + "".join(".*" if part == "*" else part for part in parts) + "$"
    # fnmatch's translation: the text before the first star is fixed, each star and what
    # follows up to the next one is (?>.*?TEXT), the last star is a plain .*
    pieces: list[list[str]] = [[]]
    for part in parts:
        if part == "*":
            pieces.append([])
        else:
            pieces[-1].append(part)
    texts = ["".join(piece) for piece in pieces]
    # (?s): a name may hold a newline, which . and .* must cross; \Z: $ also matches before a last newline
    out = ["(?s)^", texts[0]]
    for middle in texts[1:-1]:
        out.append(f"(?>.*?{middle})")
    if len(texts) > 1:
        out.append(".*" + texts[-1])
    return "".join(out) + r"\Z"


def sqlite_glob(pattern: str) -> str | None:
    """``pattern`` for SQLite's ``GLOB``, matching what :func:`glob_to_regex` matches; None
    where a bracket expression is unusual enough that the two might read it apart.

    Both anchor the whole path, ``*`` crosses ``/``, ``?`` is one character, and
    both are case-sensitive; a class's ``!`` is GLOB's ``^``; a lone ``[`` is a
    literal (``[[]`` to GLOB).
    """
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            bracket = _bracket(pattern, i)
            if bracket is None:
                out.append("[[]")
            else:
                end, negate, members = bracket
                if any(ch in members for ch in "[]\\^!") or any(low > high for low, high in _ranges(members)):
                    return None
                out.append("[" + ("^" if negate else "") + members + "]")
                i = end
        else:
            out.append(c)  # * and ? mean the same; anything else is itself (] too, outside a class)
        i += 1
    return "".join(out)


def normalise(pattern: str, regex: bool) -> tuple[str, str]:
    """The pattern in ``path_text`` form and how it matches: substring, glob or regex."""
    if not pattern:
        raise BadPattern("An empty pattern matches nothing; give part of a file name.")
    # A name that is not UTF-8 arrives with surrogate escapes, which no database
    # takes; path_text shows those bytes as \xNN, and so must the pattern.
    pattern = os.fsencode(pattern).decode("utf-8", "backslashreplace")
    if regex:
        try:
            re.compile(pattern)  # SQLite runs Python's re; a bad pattern would fail inside the query
        except re.error as err:
            raise BadPattern(f"'{pattern}' is not a valid regular expression: {err}.") from err
        return pattern, "regex"
    return pattern, "glob" if GLOB_CHARS & set(pattern) else "substring"


def like_escaped(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern escaped with :data:`LIKE_ESCAPE`."""
    return text.replace(LIKE_ESCAPE, 2 * LIKE_ESCAPE).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


#: ``path_text`` as the PostgreSQL planner cannot match to the ``pg_trgm`` index (see :func:`pg_candidates`)
UNINDEXED = "(entry.path_text || '')"


def pattern_sql(
    pattern: str, regex: bool, dialect: str, name: str = "pattern", column: str = "entry.path_text"
) -> Condition:
    """The condition on ``column`` (``path_text``) for one pattern, its value bound as ``:name``.

    On SQLite, whose REGEXP calls Python once per row, a glob is checked by its
    own ``GLOB`` operator (in C) where it reads the same (:func:`sqlite_glob`).
    """
    pattern, kind = normalise(pattern, regex)
    regexp = "REGEXP" if dialect == "sqlite" else "~"
    if kind == "regex":
        return Condition(f"{column} {regexp} :{name}", {name: pattern})
    if kind == "glob":
        native = sqlite_glob(pattern) if dialect == "sqlite" else None
        if native is not None:
            return Condition(f"{column} GLOB :{name}", {name: native})
        return Condition(f"{column} {regexp} :{name}", {name: glob_to_regex(pattern, atomic=dialect == "sqlite")})
    return Condition(f"{column} LIKE :{name} ESCAPE '{LIKE_ESCAPE}'", {name: f"%{like_escaped(pattern)}%"})


def under_sql(under: bytes) -> Condition:
    """Paths equal to or below the absolute path ``under``."""
    text = under.rstrip(b"/").decode("utf-8", "backslashreplace")
    return Condition(
        f"(entry.path_text = :under OR entry.path_text LIKE :under_below ESCAPE '{LIKE_ESCAPE}')",
        {"under": text, "under_below": like_escaped(text + "/") + "%"},
    )


def under_literals(under: bytes) -> list[list[str]]:
    """The literal run a search below ``under`` can ask the trigram index for (none: a scan)."""
    text = under.rstrip(b"/").decode("utf-8", "backslashreplace")
    run = max(_LIKE_WILDCARDS.split(text), key=len, default="")
    return [[run]] if len(run) >= TRIGRAM else []


#: the trigram index needs three characters in a row; LIKE's own wildcards break a run
TRIGRAM = 3
_LIKE_WILDCARDS = re.compile(r"[%_]")


def required_literal(pattern: str, regex: bool = False) -> str | None:
    """The longest run of at least three characters every match must contain, if any.

    It feeds the trigram index, which narrows the entries to check; the exact
    pattern is then checked on those alone.  A glob is read through its regular
    expression.  Anything optional (``x?``, ``x*``, ``x{0,}``), inside a group,
    or after an alternation ``|`` gives no literal: a wrong guess here would
    lose matches, a missing one only costs a scan.
    """
    best = max(required_literals(pattern, regex), key=len, default="")
    return best or None


def required_literals(pattern: str, regex: bool = False) -> list[str]:
    """Every run of at least three characters every match must contain (see
    :func:`required_literal`): ``*/project-delta/*.pdf`` gives ``/project-delta/``
    and ``.pdf``, whose trigrams together narrow far more than either's."""
    pattern, kind = normalise(pattern, regex)
    if kind == "substring":
        runs = _LIKE_WILDCARDS.split(pattern)
    else:
        runs = [
            r
            for run in _regex_literals(glob_to_regex(pattern) if kind == "glob" else pattern)
            for r in _LIKE_WILDCARDS.split(run)
        ]
    return [run for run in runs if len(run) >= TRIGRAM]


#: digits an escape ``\\x``, ``\\u``, ``\\U`` takes (Python's ``re``)
_CODE_DIGITS = {"x": 2, "u": 4, "U": 8}


def _escape_end(pattern: str, i: int) -> int:
    """Where the escape of a letter or digit at ``pattern[i]`` (a backslash) ends.

    Its arguments are not literal text: ``\\x52`` is ``R``, not ``52`` (taking
    them for text lost every match of ``\\x52EADME``).
    """
    letter = pattern[i + 1 : i + 2]
    end = i + 2
    if letter in _CODE_DIGITS:
        return end + _CODE_DIGITS[letter]
    if letter == "N" and pattern[end : end + 1] == "{":
        close = pattern.find("}", end)
        return close + 1 if close >= 0 else len(pattern)
    if letter.isdigit():  # an octal code (\\0, \\012, \\146) or a group (\\1 … \\99)
        while end < min(len(pattern), i + 4) and pattern[end].isdigit():
            end += 1
    return end


def _regex_literals(pattern: str) -> list[str]:
    """Literal runs outside groups that any match of ``pattern`` contains (conservative)."""
    if "|" in pattern or "(?" in pattern:  # alternatives, inline flags (?i): no guarantee
        return []
    runs: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0

    def flush() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped and not escaped.isalnum():
                i += 2
                if depth == 0:
                    current.append(escaped)  # \. \/ \* and the like are the character itself
                continue
            i = _escape_end(pattern, i)
            flush()  # \d \w \b \x41 \u00e9 \012 \1 …: a class, an assertion, a code or a group
        elif c == "(":
            flush()
            depth += 1
            i += 1
        elif c == ")":
            flush()
            depth = max(0, depth - 1)
            i += 1
        elif c == "[":
            flush()
            end = i + 2 if pattern[i + 1 : i + 2] in ("^",) else i + 1
            end += 1 if pattern[end : end + 1] == "]" else 0
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            i = end + 1
        elif c in "*?{":
            if current:
                current.pop()  # the character before may be absent
            flush()
            i = pattern.index("}", i) + 1 if c == "{" and "}" in pattern[i:] else i + 1
        elif c in "+":
            flush()
            i += 1
        elif c in ".^$":
            flush()
            i += 1
        else:
            if depth == 0:
                current.append(c)
            i += 1
    flush()
    return runs


# --- the trigram index (SQLite) --------------------------------------------------------------

#: rows of one trigram counted exactly (a walk of this many costs ~0.1 ms)
_RARE = 5_000
#: paths looked at to rank common trigrams: their shares, to 1/512
_SAMPLE = 512
#: a run's trigram in more than this share of the paths narrows too little for its walk
_TOO_COMMON = 0.5
#: other trigrams of a run are added when in less than this share of the paths
_SELECTIVE = 0.05
#: at most this many trigrams are asked for together: each costs a walk of its rows
_MOST_TRIGRAMS = 3
#: at most this many are counted (SQLite takes 2,000 columns in a statement)
_MOST_PROBED = 64


def trigram_candidates(reader: Reader, patterns: list[list[str]]) -> Condition | None:
    """``entry.id IN`` the rows the SQLite trigram index offers for any of
    ``patterns`` (each: the literal runs one pattern requires); None where
    the index would not narrow (a scan then).

    PostgreSQL's are :func:`pg_candidates`.
    """
    if reader.dialect != "sqlite":
        return None
    selects = []
    params: dict[str, Any] = {}
    for i, runs in enumerate(patterns):
        chosen = rare_trigrams(reader, runs)
        if not chosen:
            # Every trigram is in most paths: so are the matches, and reading the
            # table in order costs less than walking those lists, then every row.
            return None
        selects.append(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :trigrams{i}")
        params[f"trigrams{i}"] = " AND ".join(_phrase(t) for t in chosen)
    return Condition(f"entry.id IN ({' UNION '.join(selects)})", params)


#: what ``pg_trgm`` makes trigrams of: runs of letters and digits (it folds case and
#: splits words at anything else); only ASCII here, where no locale can read them apart
_PG_WORD = re.compile(r"[A-Za-z0-9]{3,}")
#: a trigram in more than this share of the paths is left out: walking its list costs more than it narrows
_PG_COMMON = 0.25
#: at most this many trigrams are asked for by one pattern
_PG_MOST = 6


def pg_candidates(reader: Reader, patterns: list[list[str]]) -> Condition | None:
    """On PostgreSQL, the rows holding each pattern's less common trigrams, as ``LIKE``s
    the ``pg_trgm`` index serves; None to leave the choice to the planner.

    Asked ``LIKE '%/user042/%'`` the ``pg_trgm`` GIN index walks the list of every
    trigram of it, ``use`` and ``ser`` (in every path) as much as ``042``:
    ~210 ms at 10M entries, where SQLite, asked for the rare ones only, took
    ~40 (issue 9, docs/performance.md).  Here each trigram's share of the paths
    is estimated on a sample of pages (:func:`_pg_paths`) and those
    in more than a quarter of them are left out; ``LIKE '%042%'`` asks the index
    for exactly that trigram.  The pattern is then checked on an expression of
    ``path_text`` (:data:`UNINDEXED`), so the planner does not ask the index
    for all its trigrams anyway.  A row that matches holds every trigram of the
    pattern's literal runs, so the candidates never lose a match.
    """
    per_pattern = [
        list(
            dict.fromkeys(w[i : i + TRIGRAM] for run in runs for w in _PG_WORD.findall(run) for i in range(len(w) - 2))
        )
        for runs in patterns
    ]
    if not all(per_pattern):
        return None  # a pattern whose trigrams pg_trgm would not index alike: the planner's way
    shares = _sampled_shares(reader, sorted({t for trigrams in per_pattern for t in trigrams}), _pg_paths(reader))
    terms, params = [], {}
    for i, trigrams in enumerate(per_pattern):
        chosen = sorted((t for t in trigrams if shares[t] <= _PG_COMMON), key=lambda t: shares[t])[:_PG_MOST]
        if not chosen:
            return None  # every trigram is common: so are the matches, a scan reads less
        names = [f"pg_trigram{i}_{j}" for j in range(len(chosen))]
        terms.append("(" + " AND ".join(f"entry.path_text LIKE :{n}" for n in names) + ")")
        params.update({n: f"%{t}%" for n, t in zip(names, chosen)})  # letters and digits: nothing to escape
    return Condition("(" + " OR ".join(terms) + ")", params)


def _phrase(trigram: str) -> str:
    return '"' + trigram.replace('"', '""') + '"'


def rare_trigrams(reader: Reader, runs: list[str]) -> list[str]:
    """The trigrams of ``runs`` that narrow most, if some are not common.

    Asked ``LIKE '%literal%'``, FTS5 (``detail=none``) walks the whole row
    list of every trigram of it, and ``/us`` or ``.tx`` is in millions of
    paths: at 10M entries ``/user042/`` cost 196 ms that way, against 4 ms for
    its rare trigrams ``042`` and ``r04`` (issue 9, docs/performance.md).
    So: each trigram's rows are counted up to a few thousand (a walk that
    stops there); if some are that rare, the rarest are matched together.
    Otherwise their shares are estimated on a sample of paths, and the
    rarest of each run is matched (runs lie apart in a path, so they narrow
    independently), with the run's other selective ones.  The candidates are
    checked against the pattern after: this chooses how few rows to check,
    never which rows match.
    """
    per_run = [list(dict.fromkeys(run[i : i + TRIGRAM] for i in range(len(run) - TRIGRAM + 1))) for run in runs]
    total = sum(len(run) for run in per_run)
    if total > _MOST_PROBED:  # a long pattern: every k-th trigram still finds rare ones, in one statement
        step = -(-total // _MOST_PROBED)
        per_run = [run[::step] for run in per_run]
    trigrams = sorted({t for run in per_run for t in run})
    counts = _count_rows(reader, trigrams, _RARE)
    rare = sorted((n, t) for t, n in counts.items() if n < _RARE)
    if rare:
        if rare[0][0] == 0:
            return [rare[0][1]]  # a trigram no path has: nothing matches, and one says so at once
        return [t for _, t in rare[:_MOST_TRIGRAMS]]
    shares = _sampled_shares(reader, trigrams)
    firsts: list[str] = []  # each run's rarest
    extras: list[str] = []  # the runs' other selective ones
    for run in per_run:
        ranked = sorted(run, key=lambda t: shares[t])
        if shares[ranked[0]] <= _TOO_COMMON:
            firsts.append(ranked[0])
            extras.extend(t for t in ranked[1:_MOST_TRIGRAMS] if shares[t] < _SELECTIVE)
    chosen = sorted(set(firsts), key=lambda t: shares[t])
    chosen += sorted(set(extras) - set(chosen), key=lambda t: shares[t])
    return chosen[:_MOST_TRIGRAMS]


def _sampled_shares(reader: Reader, trigrams: list[str], paths: list[str] | None = None) -> dict[str, float]:
    """The share of paths holding each trigram (folded to lower case, as the index
    matches), estimated on ``paths`` (default: paths spread evenly over the entry ids)."""
    if paths is None:
        paths = _paths_by_id(reader)
    folded = [p.lower() for p in paths]
    return {t: sum(t.lower() in p for p in folded) / max(1, len(folded)) for t in trigrams}


def _paths_by_id(reader: Reader) -> list[str]:
    """About :data:`_SAMPLE` paths, spread evenly over the entry ids."""
    # two subqueries: min() and max() together would scan the table
    (bounds,) = reader.rows("SELECT (SELECT min(id) FROM entry) AS low, (SELECT max(id) FROM entry) AS high")
    low, high = bounds["low"], bounds["high"]
    if low is None:
        return []
    step = max(1, (high - low) // _SAMPLE)
    ids = ",".join(str(i) for i in range(low, high + 1, step))  # integers of our own: safe to inline
    return _column(reader, f"SELECT path_text FROM entry WHERE id IN ({ids})")


#: rows a PostgreSQL sample aims at: whole pages are read, so more rows than by id for less time
_PG_SAMPLE = 500


def _pg_paths(reader: Reader) -> list[str]:
    """Paths of a few random pages of ``entry`` (``TABLESAMPLE SYSTEM``, ~1 ms at 1M entries,
    where :func:`_paths_by_id` took 4–12 ms); by id while the table has no statistics yet."""
    (size,) = reader.rows("SELECT reltuples AS n FROM pg_class WHERE oid = 'entry'::regclass")
    rows = float(size["n"] or 0)
    if rows <= 0:  # never analysed: its size is unknown (-1, or 0 before PostgreSQL 14)
        return _paths_by_id(reader)
    percent = min(100.0, 100.0 * _PG_SAMPLE / rows)
    # REPEATABLE: the same pages while the table stays the same, so a search chooses alike
    sample = f"SELECT path_text FROM entry TABLESAMPLE SYSTEM ({percent:.6f}) REPEATABLE (1)"
    return _column(reader, sample)


def _column(reader: Reader, sql: str) -> list[str]:
    """The one column of ``sql``'s rows, as the driver gives them (no dict per row)."""
    return [row[0] for batch in reader.batches(sql, {}) for row in batch]


def _count_rows(reader: Reader, trigrams: list[str], cap: int) -> dict[str, int]:
    """Each trigram's rows in the index, counted up to ``cap``, in one statement."""
    counts = ", ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :t{i} LIMIT :cap)) AS n{i}"
        for i in range(len(trigrams))
    )
    params: dict[str, Any] = {f"t{i}": _phrase(t) for i, t in enumerate(trigrams)}
    (row,) = reader.rows(f"SELECT {counts}", **params, cap=cap)
    return {t: row[f"n{i}"] for i, t in enumerate(trigrams)}


# --- the search -----------------------------------------------------------------------------


def job_status(reader: Reader, job_id: int) -> str | None:
    """Job ``job_id``'s status, or None when there is no such job (why a search found nothing)."""
    rows = reader.rows("SELECT status FROM job WHERE id = :id", id=job_id)
    return rows[0]["status"] if rows else None


def other_hosts_hint(reader: Reader, host: str | None) -> str:
    """What to add when a command that looked only at ``host``'s jobs found nothing but others have some.

    A catalog rebuilt on a replacement machine (another host name), or one
    that several hosts share, would otherwise look empty: "No jobs yet.".
    """
    if host is None:
        return ""
    rows = reader.rows(
        "SELECT host, count(*) AS jobs FROM job WHERE host IS NOT NULL AND host <> :host "
        "GROUP BY host ORDER BY host LIMIT 4",
        host=host,
    )
    if not rows:
        return ""
    named = ", ".join(f"{r['host']} ({r['jobs']} job(s))" for r in rows[:3]) + (", …" if len(rows) > 3 else "")
    return f" Only host {host}'s jobs were looked at; other hosts have some: {named}. Add --host all or --host NAME."


def search_rows(
    reader: Reader,
    patterns: list[str] | None = None,
    *,
    regex: bool = False,
    job_id: int | None = None,
    tape: str | None = None,
    all_versions: bool = False,
    under: bytes | None = None,
    include_deleted: bool = False,
    roots: dict[bytes, tuple[int, ...]] | None = None,
    host: str | None = None,
    limit: int | None = None,
) -> Iterator[Hit]:
    """The entries matching any of ``patterns`` (all entries when there are
    none), as plain rows streamed from the database (:class:`Hit`), sorted
    by path, newest first: by default the newest version of each path.
    Only entries of good jobs (``ok``/``partial``) in complete tape files
    are offered.

    The entries are read without joins, as the driver's tuples, sorted by
    path only; their jobs and tapes come from two small queries, and the
    newest version of each path is picked as they stream by
    (:mod:`.search_hits`; issue 9, docs/performance.md).

    :param job_id: only this job's entries.
    :param tape: only entries on the tape with this label.
    :param all_versions: every version, not only the newest of each path.
    :param under: only paths equal to or below this absolute path.
    :param include_deleted: with ``all_versions``, also the markers of paths
        deleted since an earlier backup; otherwise, also paths whose newest
        record is a deletion, as their last version with ``deleted_by`` set.
        Without it, a path a later backup recorded as deleted is left out
        (issue 8, defect 10: deleted files must not come back).
    :param roots: a point in time (``search.resolve_as_of``'s ``AsOf.roots``):
        per source root, the jobs whose entries made up its tree then.
    :param host: only jobs of this host (None: every host).
    :param limit: at most this many hits: the first ones of the whole
        search, found without sorting or making the others.
    """
    found = search_hits.sources(reader, job_id=job_id, tape=tape, host=host, roots=roots)
    where = [found.condition()]
    if all_versions and not include_deleted:
        where.append(Condition("entry.kind != :deleted", {"deleted": DELETED}))
    where += matching(reader, patterns, regex, under)
    yield from search_hits.stream(
        reader, where, found, all_versions=all_versions, include_deleted=include_deleted, limit=limit
    )


def matching(reader: Reader, patterns: list[str] | None, regex: bool, under: bytes | None) -> list[Condition]:
    """The conditions on the entries that match any of ``patterns`` (below ``under``), and
    the trigram index's candidates for them: SQLite's (:func:`trigram_candidates`), or on
    PostgreSQL the rarer trigrams (:func:`pg_candidates`), the patterns then checked on an
    expression the index does not serve."""
    where: list[Condition] = []
    literals: list[list[str]] = []  # for each pattern, the runs it requires
    if patterns:
        required = [required_literals(p, regex) for p in patterns]
        if all(required):  # one pattern without a literal needs a scan anyway
            literals = required
    candidates = None
    if reader.dialect == "postgresql":
        candidates = pg_candidates(reader, literals) if literals else None
    if patterns:
        column = UNINDEXED if candidates is not None else "entry.path_text"
        where.append(any_pattern(reader.dialect, patterns, regex, column))
    if under is not None:
        where.append(under_sql(under))
        literals = literals or under_literals(under)
    if reader.dialect == "sqlite" and literals:
        candidates = trigram_candidates(reader, literals)
    if candidates is not None:
        where.append(candidates)
    return where


def any_pattern(dialect: str, patterns: list[str], regex: bool, column: str = "entry.path_text") -> Condition:
    """Entries matching any of ``patterns``."""
    conditions = [pattern_sql(p, regex, dialect, f"pattern{i}", column) for i, p in enumerate(patterns)]
    return Condition(
        "(" + " OR ".join(c.sql for c in conditions) + ")", {k: v for c in conditions for k, v in c.params.items()}
    )
