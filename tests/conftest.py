import pytest


@pytest.fixture(scope="session")
def offline_judge():
    """One OfflineJudge per test session: loading the encoder takes seconds."""
    from kardia.judges import OfflineJudge

    return OfflineJudge()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """``data/built`` of the short dialogues (``short_dialogues``): small splits whose replies a
    tiny policy learns in a few dozen steps. Read-only for the tests that share it."""
    from short_dialogues import splits

    from kardia.data import write_splits

    out = tmp_path_factory.mktemp("data") / "built"
    write_splits(splits(), out)
    return out
