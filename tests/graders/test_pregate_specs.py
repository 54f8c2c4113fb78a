"""``pregates:`` given something that is not a list of gates is a ConfigError, not a TypeError."""

from __future__ import annotations

import pytest

from graders._pregate import resolve_pregates
from rm_service._exceptions import ConfigError


@pytest.mark.parametrize("specs", [5, 0.5])
def test_non_iterable_pregates_is_a_config_error(specs: object) -> None:
    with pytest.raises(ConfigError, match="pregates must be"):
        resolve_pregates(specs)
