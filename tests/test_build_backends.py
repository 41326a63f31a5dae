"""Which backend ``build_data.backend`` names, and the errors of a bad one."""

from __future__ import annotations

import pytest

from kardia.build.backends import make_backend


def test_make_backend_errors():
    with pytest.raises(ValueError, match="unknown build backend"):
        make_backend("gpt")
    with pytest.raises(ValueError, match="base_url"):
        make_backend("llm", llm={"model": "m"})
    with pytest.raises(ValueError, match="seed bank"):
        make_backend("offline")
