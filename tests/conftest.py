import pytest


@pytest.fixture(scope="session")
def offline_judge():
    """One OfflineJudge per test session: loading the encoder takes seconds."""
    from kardia.judges import OfflineJudge

    return OfflineJudge()
