"""The `cim` command line. It only parses and dispatches; the work is in the Python API.

Each group of commands has its own module, named so as not to shadow the package that does the
work (`cim tiles` is cli/tileset.py, beside the tiles package); the commands import those
packages (ingest, tiles, grading, api) inside the command that needs them, so that `cim --help`
stays quick.
"""

from __future__ import annotations

import click
from pydantic import ValidationError

from cim.settings import settings_problem
from cli.analyse import analyse
from cli.common import fail
from cli.data import datasets, ingest
from cli.database import db
from cli.demo_city import demo
from cli.grade import grade
from cli.mqtt import mqtt
from cli.serve import serve
from cli.tileset import tiles
from cli.twin import twin


class _Cim(click.Group):
    """The `cim` group: a setting the environment gets wrong is an error line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            fail(f"invalid setting: {settings_problem(exc)}")


@click.group(
    cls=_Cim,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="cim")
def main() -> None:
    """CIM — a City Information Model service.

    \b
    Typical session:
      cim db start                         start the embedded PostGIS (or set CIM_DATABASE_URL)
      cim db upgrade                       create or migrate the schema
      cim ingest city.json --city 370100   load a CityJSON file into a city
      cim serve                            OGC API Features on http://127.0.0.1:8000
    """


for command in (db, demo, ingest, datasets, tiles, serve, grade, twin, mqtt, analyse):
    main.add_command(command)

if __name__ == "__main__":
    main()
