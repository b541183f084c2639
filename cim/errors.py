"""The project's exception root and its subclasses; `api/` maps them to HTTP problems."""

from __future__ import annotations


class CimError(Exception):
    """Base of every error CIM raises on purpose; the message is meant for the user."""


class NotFound(CimError):
    """A city, dataset or object that does not exist."""


class InvalidInput(CimError):
    """A request or file that cannot be accepted as it is."""


class InvalidRows(InvalidInput):
    """Several rows or values of one input that cannot be accepted: every one is named (file,
    sheet, row, indicator, value, why) in one report, and nothing is stored."""

    def __init__(self, source: str, problems: list[str]) -> None:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"{source}: {count}, nothing was stored:\n" + "\n".join(f"  {p}" for p in problems)
        )
        self.problems = problems


class InvalidCRS(InvalidInput):
    """A coordinate reference system that is missing, unknown or unusable."""


class IngestError(InvalidInput):
    """A file that cannot be ingested; the message names the file, the object and the problem."""

    def __init__(self, path: object, problem: str, object_id: str | None = None) -> None:
        where = f"{path}" + (f", object {object_id!r}" if object_id is not None else "")
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.object_id = object_id
        self.problem = problem


class DatabaseUnavailable(CimError):
    """The database cannot be reached or started."""


class Forbidden(CimError):
    """The caller is not allowed to do this."""


class Unauthorized(CimError):
    """No credentials, or credentials that are not valid."""


class Conflict(CimError):
    """The request clashes with the state of the thing it changes (e.g. a final round)."""


class TooLarge(InvalidInput):
    """An upload beyond the size limit."""


class TooManyAttempts(CimError):
    """Too many failed attempts from one client; `retry_after` says when to try again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
