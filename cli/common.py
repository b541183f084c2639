"""What every `cim` command shares: failing with a clear message, a database engine, progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from cim.errors import CimError, InvalidInput
from cim.settings import DatabaseSettings


def fail(exc: CimError | str) -> NoReturn:
    """Print the error in red and exit with status 2 (a command group may first keep a record
    of the refusal: `cim grade` audits refused changes)."""
    context = click.get_current_context(silent=True)
    record = context.meta.get("cim.on_refused") if context else None
    if record is not None and isinstance(exc, CimError):
        record(exc)
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def command_engine(settings: DatabaseSettings | None = None) -> Any:
    """An engine for the command; its connections close when the command ends."""
    from cim.db.engine import database_url, make_engine

    engine = make_engine(database_url(settings or DatabaseSettings()))
    click.get_current_context().call_on_close(engine.dispose)
    return engine


def advance(bar: Any, n: int, total: int | None) -> None:
    """Move a progress bar on by n, learning its total when the work first tells it."""
    if total is not None and bar.total != total:
        bar.total = total
        bar.refresh()
    bar.update(n)


def read_file(path: Path) -> bytes:
    """A file's content.

    Raises:
        InvalidInput: unreadable, naming the file.
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror or exc}") from None


def print_json(data: Any) -> None:
    """Print data as indented JSON (dates and the like as text)."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))


def grade_actor() -> Any:
    """Who makes a grading change from the command line: the person `cim grade --as NAME` (or
    CIM_ACTOR) names; a change without one is refused, since the audit log names people."""
    from grading.access import cli_actor

    name = click.get_current_context().meta.get("cim.actor")
    if not name:
        fail(
            "say who you are: cim grade --as NAME … (or set CIM_ACTOR); every change is audited "
            "under a person's name"
        )
    return cli_actor(name)
