from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def judge_heads(tmp_path_factory) -> Path:
    """MiniLM judge heads fitted on a slice of the human-rated train split (whole contexts): the
    real fit, smaller, so the session pays seconds instead of the stage's minute and a half."""
    from kardia.human_ratings import load_rated
    from kardia.offline_judge import fit_heads

    items = load_rated(ROOT / "data/human_ratings", "train", ("diasafety", "ieval"),
                       max_per_dataset=800)  # fmt: skip
    return fit_heads(items, "minilm", folds=2).save(
        tmp_path_factory.mktemp("judges") / "minilm.pkl"
    )


@pytest.fixture(scope="session")
def offline_judge(judge_heads):
    """One fitted OfflineJudge per test session."""
    from kardia.judges import OfflineJudge

    return OfflineJudge(judge_heads)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """``data/built`` of the short dialogues (``short_dialogues``): small splits whose replies a
    tiny policy learns in a few dozen steps. Read-only for the tests that share it."""
    from short_dialogues import splits

    from kardia.data import write_splits

    out = tmp_path_factory.mktemp("data") / "built"
    write_splits(splits(), out)
    return out


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, also on a GPU machine: for tests of the CPU path's choices."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
