import pytest

from thne.io import atomic_path, write_json


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []  # no temporary left behind either
    write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
