from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
REALDATA = SHARED / "realdata"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: tests need the shared fixtures beside the repo")
    return path


@pytest.fixture
def media() -> Path:
    return need(FIXTURES / "media")


@pytest.fixture
def realdata() -> Path:
    return need(REALDATA)
