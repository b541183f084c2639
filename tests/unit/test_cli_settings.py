"""A setting the environment gets wrong stops a command with one line naming the variable, its
value and the problem (exit 2), not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import main


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CIM_TILES_MEMORY_MB": "lots"}, "CIM_TILES_MEMORY_MB='lots': Input should be a valid"),
        ({"CIM_TILES_MEMORY_MB": "-1"}, "CIM_TILES_MEMORY_MB='-1': Input should be greater"),
        ({"CIM_TILES_MESHOPT": ""}, "CIM_TILES_MESHOPT='': Input should be a valid boolean"),
    ],
)
def test_a_bad_setting_is_one_clear_line(env: dict[str, str], expected: str) -> None:
    env = {**env, "CIM_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(main, ["tiles", "seed", "--city", "c"], env=env)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: invalid setting: {expected}")
    assert "Traceback" not in result.output
