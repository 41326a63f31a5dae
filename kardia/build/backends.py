"""Which backend plays U, A and R: ``make_backend`` from ``build_data.backend``."""

from __future__ import annotations

from kardia.build.llm import llm_backend
from kardia.build.loop import Backend
from kardia.build.offline import OfflineBackend


def make_backend(
    kind: str, *, bank=None, llm: dict | None = None, offline: dict | None = None, seed: int = 0
) -> Backend:
    """``offline`` (the seed-bank composer, options from ``build_data.offline``) or ``llm`` (from
    a ``build_data.llm`` section: ``base_url``, ``model``, optional ``evaluator_model`` and the
    client settings)."""
    if kind == "offline":
        if bank is None:
            raise ValueError("the offline backend needs the seed bank")
        return OfflineBackend(bank.language, **(offline or {}))
    if kind == "llm":
        return llm_backend(llm, seed)
    raise ValueError(f"unknown build backend {kind!r}; expected 'offline' or 'llm'")


__all__ = ["make_backend"]
