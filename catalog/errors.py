"""Errors raised by pytp.catalog; each carries its exit code (see tapeio.exitcodes)."""

from __future__ import annotations

from pytp.tapeio import exitcodes


class CatalogError(Exception):
    """A catalog operation failed."""

    exit_code: int = exitcodes.EXIT_ERROR

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(CatalogError):
    """The configuration is missing or wrong."""

    exit_code = exitcodes.EXIT_CONFIG


class CatalogUnavailable(CatalogError):
    """The catalog database cannot be opened."""

    exit_code = exitcodes.EXIT_CATALOG


class CatalogInconsistent(CatalogError):
    """The catalog holds rows that cannot be right (e.g. impossible tape offsets)."""

    exit_code = exitcodes.EXIT_CATALOG


class StaleCatalog(CatalogError):
    """The catalog was made by another pytp version; run `pytp db upgrade`."""

    exit_code = exitcodes.EXIT_CATALOG


class NotFound(CatalogError):
    """Nothing matched."""

    exit_code = exitcodes.EXIT_NOT_FOUND


class BadArgument(CatalogError):
    """A command's argument cannot be used (an ``--as-of`` that is neither a job nor a date,
    a restore target that cannot be a directory): a bad command line."""

    exit_code = exitcodes.EXIT_USAGE


class BadPattern(BadArgument):
    """A search or match pattern is not valid (a bad --regex)."""

    exit_code = exitcodes.EXIT_USAGE


class WrongTape(CatalogError):
    """The tape is not the one expected."""

    exit_code = exitcodes.EXIT_WRONG_TAPE


class TapeFull(CatalogError):
    """The tape is full."""

    exit_code = exitcodes.EXIT_TAPE_FULL


class RestoreRefused(CatalogError):
    """The restore would write outside its target or over existing files."""

    exit_code = exitcodes.EXIT_RESTORE_REFUSED


class VerifyFailed(CatalogError):
    """Verification found problems."""

    exit_code = exitcodes.EXIT_VERIFY_FAILED


class SourceError(CatalogError):
    """A backup source is missing or unreadable."""

    exit_code = exitcodes.EXIT_ERROR


def job_not_offered(job_id: int, status: str | None, good: frozenset[str] | tuple[str, ...]) -> NotFound | None:
    """Why nothing was found in job ``job_id`` when the job is the reason: there is no
    such job (``status`` None), or it is not one of the ``good`` ones; else None."""
    if status is None:
        return NotFound(f"No job {job_id} in the catalog; `pytp jobs` lists them.")
    if status not in good:
        return NotFound(
            f"Job {job_id} is {status}: search and restore never offer its files (`pytp jobs {job_id}` says why)."
        )
    return None
