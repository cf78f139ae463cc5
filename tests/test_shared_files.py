"""need(): how a test reads a file of ../shared (fixtures and real data beside the clone)."""

import pytest

from conftest import need


def test_a_missing_shared_file_skips_on_a_clone_and_fails_under_ci(tmp_path, monkeypatch):
    there = tmp_path / "there.csv"
    there.write_text("frame\n1\n")
    monkeypatch.delenv("THNE_REQUIRE_SHARED", raising=False)
    assert need(there) == there
    with pytest.raises(pytest.skip.Exception, match="absent.csv is absent"):
        need(tmp_path / "absent.csv")
    monkeypatch.setenv("THNE_REQUIRE_SHARED", "1")
    assert need(there) == there
    with pytest.raises(pytest.fail.Exception, match="absent.csv is absent.*THNE_REQUIRE_SHARED"):
        need(tmp_path / "absent.csv")
    # A folder is not the file a test reads: naming it would hide a missing file.
    with pytest.raises(pytest.fail.Exception):
        need(tmp_path)
