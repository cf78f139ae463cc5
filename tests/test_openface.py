"""OpenFace CSV parsing, running, and clip slicing, on real OpenFace output from the fixtures.

The parser is always run on the real fixture CSVs; only the OpenFace binary is replaced, by a
small Python stand-in that writes those CSVs where OpenFace would.
"""

from __future__ import annotations

import csv
import functools
import os
import re
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, need
from thne.data.manifest import Clip
from thne.features.openface import (
    CONTAINER_BINARY,
    DEFAULT_GROUPS,
    GROUPS,
    LOG_NAME,
    MediaError,
    OpenFaceError,
    OpenFaceFrames,
    OpenFaceNotFound,
    extract_openface_clips,
    feature_names,
    plan_inputs,
    read_openface_csv,
    read_openface_run,
    run_openface,
    slice_clips,
    write_plan,
)

OPENFACE_DIR = FIXTURES / "openface"
ALL_GROUPS = tuple(GROUPS)

# name -> (rows, frames with success == 1)
FIXTURE_ROWS = {
    "talking_face.csv": (472, 471),
    "talking_face.native.csv": (472, 471),
    "astronaut_75frames.csv": (75, 75),
    "astronaut_noface_frames_26-50.csv": (75, 50),
    "astronaut_still.csv": (1, 1),
}


def fixture_csv(name: str) -> Path:
    return need(OPENFACE_DIR / name)


@functools.cache
def raw_csv(name: str) -> dict[str, np.ndarray]:
    """The fixture's columns read with the csv module, independently of the parser under test."""
    with open(fixture_csv(name), newline="") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip() for h in rows[0]]
    values = np.array(rows[1:], dtype=np.float64)
    return {name: values[:, i] for i, name in enumerate(header)}


def make_clip(clip_id: str, start: float, end: float, media: str = "video.mp4") -> Clip:
    return Clip(
        clip_id=clip_id,
        video_id=Path(media).stem,
        start=start,
        end=end,
        split="train",
        label=0.0,
        text="",
        media=media,
    )


# --------------------------------------------------------------------------------------------
# Groups


def test_group_widths_and_names() -> None:
    widths = {name: len(cols) for name, cols in GROUPS.items()}
    assert widths == {
        "aus_r": 17,
        "aus_c": 18,
        "pose": 6,
        "gaze": 8,
        "landmarks_2d": 136,
        "landmarks_3d": 204,
        "pdm": 40,
    }
    assert DEFAULT_GROUPS == ("aus_r", "aus_c", "pose", "gaze")
    names = feature_names(DEFAULT_GROUPS)
    assert names[0] == "face_detected"
    assert names[1:] == [c for g in DEFAULT_GROUPS for c in GROUPS[g]]
    assert "AU28_c" in GROUPS["aus_c"] and "AU28_r" not in GROUPS["aus_r"]
    assert GROUPS["landmarks_2d"][0] == "x_0" and GROUPS["landmarks_2d"][-1] == "y_67"
    assert GROUPS["landmarks_3d"][0] == "X_0" and GROUPS["landmarks_3d"][-1] == "Z_67"
    assert GROUPS["pdm"][:6] == ("p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty")
    assert GROUPS["pdm"][-1] == "p_33"
    assert feature_names(["pose"]) == ["face_detected", *GROUPS["pose"]]


def test_every_group_column_is_in_the_fixture_header() -> None:
    header = set(raw_csv("astronaut_still.csv"))
    assert len(header) == 714
    for name in feature_names(ALL_GROUPS)[1:]:
        assert name in header, name


def test_unknown_or_repeated_group_is_rejected() -> None:
    with pytest.raises(ValueError, match="nope"):
        feature_names(["aus_r", "nope"])
    with pytest.raises(ValueError, match="repeated"):
        feature_names(["pose", "pose"])


# --------------------------------------------------------------------------------------------
# Parser


def test_fixture_list_is_covered() -> None:
    present = {p.name for p in need(OPENFACE_DIR / "talking_face.csv").parent.glob("*.csv")}
    assert present == set(FIXTURE_ROWS), "a fixture CSV was added or removed: update FIXTURE_ROWS"


@pytest.mark.parametrize("name", sorted(FIXTURE_ROWS))
def test_parse_fixture_matches_raw_columns(name: str) -> None:
    rows, detected = FIXTURE_ROWS[name]
    frames = read_openface_csv(fixture_csv(name), ALL_GROUPS)
    raw = raw_csv(name)
    names = feature_names(ALL_GROUPS)

    assert isinstance(frames, OpenFaceFrames)
    assert frames.names == tuple(names)
    assert frames.features.shape == (rows, len(names))
    assert frames.features.dtype == np.float32
    assert frames.timestamps.dtype == np.float64
    np.testing.assert_array_equal(frames.timestamps, raw["timestamp"])

    success = raw["success"] == 1
    assert int(success.sum()) == detected
    np.testing.assert_array_equal(frames.features[:, 0], success.astype(np.float32))
    for k, column in enumerate(names[1:], start=1):
        np.testing.assert_array_equal(
            frames.features[success, k], raw[column][success].astype(np.float32), err_msg=column
        )
    assert not frames.features[~success].any()

    # Each group's slice of the default-group parse equals the same columns of the full parse.
    default = read_openface_csv(fixture_csv(name))
    assert default.features.shape == (rows, len(feature_names(DEFAULT_GROUPS)))
    for k, column in enumerate(feature_names(DEFAULT_GROUPS)):
        np.testing.assert_array_equal(
            default.features[:, k], frames.features[:, names.index(column)]
        )


def test_native_openface_output_parses_like_the_plain_file() -> None:
    """OpenFace's own `, `-separated, space-padded CSV of talking_face.mp4 gives the same frames
    as the plain file of the same video from another build, within the builds' differences."""
    native_text = fixture_csv("talking_face.native.csv").read_text()
    header, first_row = native_text.splitlines()[:2]
    assert ", " in header and ", " in first_row  # the file really has OpenFace's own spacing
    native = read_openface_csv(fixture_csv("talking_face.native.csv"), ALL_GROUPS)
    plain = read_openface_csv(fixture_csv("talking_face.csv"), ALL_GROUPS)
    assert native.names == plain.names
    assert native.features.shape == plain.features.shape == (472, len(native.names))
    np.testing.assert_array_equal(native.timestamps, plain.timestamps)
    # The same frame fails in both: frame 99, the 99th row.
    np.testing.assert_array_equal(native.features[:, 0], plain.features[:, 0])
    assert np.flatnonzero(native.features[:, 0] == 0).tolist() == [98]
    diff = np.abs(native.features - plain.features)
    col = {name: k for k, name in enumerate(native.names)}
    au12 = diff[:, col["AU12_r"]]
    assert 0 < au12.mean() < 0.02  # two builds: close, not identical
    for name in ("pose_Rx", "pose_Ry", "pose_Rz", "gaze_angle_x", "gaze_angle_y"):
        assert diff[:, col[name]].mean() < 0.005, name
    assert (
        np.corrcoef(native.features[:, col["AU12_r"]], plain.features[:, col["AU12_r"]])[0, 1]
        > 0.99
    )


def test_talking_face_timestamps() -> None:
    frames = read_openface_csv(fixture_csv("talking_face.csv"))
    assert frames.timestamps[0] == 0.0
    assert 19.6 < frames.timestamps[-1] < 19.7
    assert np.all(np.diff(frames.timestamps) > 0)


def test_failed_frames_are_zeroed_although_openface_keeps_stale_pose() -> None:
    name = "astronaut_noface_frames_26-50.csv"
    frames = read_openface_csv(fixture_csv(name), ALL_GROUPS)
    raw = raw_csv(name)
    gap = (raw["frame"] >= 26) & (raw["frame"] <= 50)
    assert gap.sum() == 25
    # The raw file really keeps stale values there; the parser must not pass them on.
    assert np.all(raw["gaze_0_x"][gap] == 0)
    assert np.all(raw["pose_Tz"][gap] != 0)
    assert np.all(frames.features[gap] == 0)
    assert np.all(frames.features[~gap, 0] == 1)
    pose_tz = feature_names(ALL_GROUPS).index("pose_Tz")
    assert np.all(frames.features[~gap, pose_tz] > 0)


def test_astronaut_smile_is_visible() -> None:
    frames = read_openface_csv(fixture_csv("astronaut_75frames.csv"), ["aus_r"])
    au12 = frames.features[:, frames.names.index("AU12_r")]
    assert au12.max() > 2.5


def _spaced(text: str) -> str:
    return "".join(", ".join(line.split(",")) + "\n" for line in text.splitlines())


def test_spaced_header_style_parses_identically(tmp_path: Path) -> None:
    source = fixture_csv("astronaut_noface_frames_26-50.csv")
    text = source.read_text()
    header_only = tmp_path / "header_spaced.csv"
    first, _, rest = text.partition("\n")
    header_only.write_text(", ".join(first.split(",")) + "\n" + rest)
    everywhere = tmp_path / "all_spaced.csv"
    everywhere.write_text(_spaced(text))
    assert everywhere.read_text().startswith("frame, face_id, timestamp, ")

    expected = read_openface_csv(source, ALL_GROUPS)
    for variant in (header_only, everywhere):
        got = read_openface_csv(variant, ALL_GROUPS)
        assert got.names == expected.names
        np.testing.assert_array_equal(got.timestamps, expected.timestamps)
        np.testing.assert_array_equal(got.features, expected.features)


def test_truncated_csv_names_file_and_line(tmp_path: Path) -> None:
    data = fixture_csv("astronaut_75frames.csv").read_bytes()
    cut = tmp_path / "cut.csv"
    # Cut in the middle of the last line, as when OpenFace is killed while writing.
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(MediaError, match=r"cut\.csv: line 76 is truncated"):
        read_openface_csv(cut)
    # The same with the cut line followed by a newline: caught by the field count.
    cut.write_bytes(data[: len(data) - 1000] + b"\n")
    with pytest.raises(
        MediaError, match=r"cut\.csv: line 76 has \d+ field\(s\), the header has 714"
    ):
        read_openface_csv(cut)


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"absent\.csv: OpenFace CSV does not exist"):
        read_openface_csv(tmp_path / "absent.csv")


def test_missing_columns_are_named(tmp_path: Path) -> None:
    data = fixture_csv("astronaut_still.csv").read_text()
    header, _, row = data.partition("\n")
    # A header cut after the pose columns, as in a truncated or foreign file.
    keep = header.split(",").index("pose_Rz") + 1
    short = tmp_path / "short_header.csv"
    short.write_text(
        ",".join(header.split(",")[:keep]) + "\n" + ",".join(row.split(",")[:keep]) + "\n"
    )
    with pytest.raises(MediaError, match=r"short_header\.csv: .*AU01_r") as info:
        read_openface_csv(short)
    assert "35 expected column(s) missing" in str(info.value)
    # Only the requested groups are required.
    got = read_openface_csv(short, ["pose", "gaze"])
    assert got.features.shape == (1, 15)

    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(MediaError, match=r"foreign\.csv: .*timestamp, success, AU01_r"):
        read_openface_csv(foreign)


def test_header_without_rows(tmp_path: Path) -> None:
    header = fixture_csv("astronaut_still.csv").read_text().partition("\n")[0]
    empty = tmp_path / "empty.csv"
    empty.write_text(header + "\n")
    with pytest.raises(MediaError, match=r"empty\.csv: .*no data rows"):
        read_openface_csv(empty)
    empty.write_text("")
    with pytest.raises(MediaError, match=r"empty\.csv: OpenFace CSV is empty"):
        read_openface_csv(empty)


def test_non_numeric_value(tmp_path: Path) -> None:
    header, _, row = fixture_csv("astronaut_still.csv").read_text().partition("\n")
    fields = row.rstrip("\n").split(",")
    fields[header.split(",").index("AU12_r")] = "oops"
    bad = tmp_path / "bad_value.csv"
    bad.write_text(header + "\n" + ",".join(fields) + "\n")
    with pytest.raises(MediaError, match=r"bad_value\.csv"):
        read_openface_csv(bad)


# --------------------------------------------------------------------------------------------
# Runner (the bash script the workflow runs), with a stand-in for FeatureExtraction

STAND_IN = """#!{python}
import sys
from pathlib import Path

args = sys.argv[1:]
videos = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
out = Path(args[args.index("-out_dir") + 1])
with open({calls!r}, "a") as counter:
    counter.write(" ".join(args) + "\\n")
print("stand-in FeatureExtraction:", len(videos), "input(s)")
for video in videos:
    # Inputs are links with staged names; behave according to the real file's name.
    real = Path(video).resolve().stem
    if real == {stop!r}:
        # Real OpenFace gives up on every later input after one it cannot open.
        print("Could not open", video)
        break
    if real == {skip!r}:
        print("Could not read", video)
        continue
    source = Path({fixtures!r}) / (real + ".csv")
    if not source.is_file():
        source = Path({fixtures!r}) / "astronaut_75frames.csv"
    data = source.read_bytes()
    if real == {truncate!r}:
        data = data[: len(data) - 1000]
    (out / (Path(video).stem + ".csv")).write_bytes(data)
sys.exit({code})
"""


def stand_in(
    tmp_path: Path,
    *,
    stop: str = "",
    skip: str = "",
    truncate: str = "",
    code: int = 0,
    name: str = "FeatureExtraction",
) -> tuple[Path, Path]:
    """An executable that behaves like FeatureExtraction; returns it and its call-log file."""
    for fixture in FIXTURE_ROWS:  # the stand-in copies these
        need(OPENFACE_DIR / fixture)
    calls = tmp_path / "calls.txt"
    script = tmp_path / "bin" / name
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        STAND_IN.format(
            python=sys.executable,
            calls=str(calls),
            stop=stop,
            skip=skip,
            truncate=truncate,
            fixtures=str(OPENFACE_DIR),
            code=code,
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script, calls


def invocations(calls: Path) -> list[list[str]]:
    return [line.split() for line in calls.read_text().splitlines()] if calls.exists() else []


def make_videos(tmp_path: Path, *names: str) -> list[Path]:
    folder = tmp_path / "videos"
    folder.mkdir(exist_ok=True)
    paths = [folder / n for n in names]
    for p in paths:
        p.write_bytes(b"")
    return paths


def make_plan(tmp_path: Path, media) -> Path:
    plan = tmp_path / "plan.tsv"
    write_plan(plan_inputs(str(m) for m in media), plan)
    return plan


def run_and_extract(tmp_path: Path, binary: Path, clips: list[Clip], groups=DEFAULT_GROUPS):
    """One OpenFace run over the clips' media, then the clips read from it."""
    plan = make_plan(tmp_path, [c.media for c in clips])
    run_openface(plan, tmp_path / "out", binary=str(binary))
    return extract_openface_clips(clips, plan, tmp_path / "out", groups)


def inputs_of(call: list[str]) -> list[str]:
    """The real files behind a call's -f inputs."""
    return [str(Path(call[i + 1]).resolve()) for i, a in enumerate(call) if a == "-f"]


def test_plan_names_are_unique_and_keep_the_suffix() -> None:
    rows = plan_inputs(["b/1.mp4", "a/1.mp4", "a/2.avi", "a/1.mp4"])
    assert rows == [("m00000.mp4", "a/1.mp4"), ("m00001.avi", "a/2.avi"), ("m00002.mp4", "b/1.mp4")]


def test_runner_one_call_for_all_videos(tmp_path: Path) -> None:
    binary, calls = stand_in(tmp_path)
    videos = make_videos(tmp_path, "talking_face.mp4", "astronaut_still.mp4", "clip_7.mp4")
    out = tmp_path / "out"
    plan = make_plan(tmp_path, videos)
    log = run_openface(plan, out, binary=str(binary))

    runs = invocations(calls)
    assert len(runs) == 1
    args = runs[0]
    assert sorted(inputs_of(args)) == sorted(str(v.resolve()) for v in videos)
    assert args[args.index("-out_dir") + 1] == str(out)
    for flag in ("-aus", "-pose", "-gaze", "-2Dfp", "-3Dfp", "-pdmparams", "-q"):
        assert flag in args

    result = read_openface_run(plan, out)
    assert result[str(videos[0])].features.shape[0] == 472
    assert result[str(videos[1])].features.shape[0] == 1
    assert log == out / LOG_NAME
    assert "stand-in FeatureExtraction: 3 input(s)" in log.read_text()


def test_runner_video_without_csv_names_video_and_log(tmp_path: Path) -> None:
    binary, calls = stand_in(tmp_path, skip="unreadable")
    videos = make_videos(tmp_path, "a.mp4", "unreadable.mp4", "c.mp4")
    out = tmp_path / "out"
    out.mkdir()
    plan = make_plan(tmp_path, videos)
    # A CSV from an earlier run must not be taken for this run's output.
    (out / "m00001.csv").write_bytes(fixture_csv("astronaut_still.csv").read_bytes())
    run_openface(plan, out, binary=str(binary))
    result = read_openface_run(plan, out)
    error = result[str(videos[1])]
    assert isinstance(error, MediaError)
    assert "unreadable.mp4" in str(error) and "wrote no CSV" in str(error)
    assert str(out / LOG_NAME) in str(error)
    assert isinstance(result[str(videos[0])], OpenFaceFrames)
    assert isinstance(result[str(videos[2])], OpenFaceFrames)
    assert len(invocations(calls)) == 1


def test_runner_truncated_csv(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, truncate="broken")
    videos = make_videos(tmp_path, "fine.mp4", "broken.mp4")
    out = tmp_path / "out"
    plan = make_plan(tmp_path, videos)
    run_openface(plan, out, binary=str(binary))
    result = read_openface_run(plan, out)
    assert isinstance(result[str(videos[0])], OpenFaceFrames)
    error = result[str(videos[1])]
    assert isinstance(error, MediaError)
    assert re.search(r"broken\.mp4: unusable OpenFace output: .*truncated", str(error))
    assert str(out / LOG_NAME) in str(error)


def test_runner_missing_binary(tmp_path: Path) -> None:
    videos = make_videos(tmp_path, "a.mp4")
    plan = make_plan(tmp_path, videos)
    configured = str(tmp_path / "no" / "FeatureExtraction")
    with pytest.raises(OpenFaceNotFound, match="openface_bin .*is not an executable"):
        run_openface(plan, tmp_path / "out", binary=configured)

    not_executable = tmp_path / "plain_file"
    not_executable.write_text("")
    with pytest.raises(OpenFaceNotFound, match="plain_file"):
        run_openface(plan, tmp_path / "out", binary=str(not_executable))


def test_runner_not_found_lists_what_was_tried(tmp_path: Path, monkeypatch) -> None:
    videos = make_videos(tmp_path, "a.mp4")
    plan = make_plan(tmp_path, videos)
    empty_path = tmp_path / "empty_path"
    empty_path.mkdir()
    # bash itself must stay reachable; FeatureExtraction must not be.
    monkeypatch.setenv("PATH", f"{empty_path}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(OpenFaceNotFound) as info:
        run_openface(plan, tmp_path / "out")
    message = str(info.value)
    tried = [
        message.index("visual.openface_bin: not set"),
        message.index("FeatureExtraction on PATH: not found"),
        message.index(CONTAINER_BINARY),
    ]
    assert tried == sorted(tried), "what was tried must be listed in order"
    for hint in (
        "datasets.<ds>.visual.openface_bin",
        "put FeatureExtraction on PATH",
        "--sdm apptainer",
    ):
        assert hint in message


def test_runner_order_configured_then_path(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "c").mkdir()
    on_path, path_calls = stand_in(tmp_path / "p")
    configured, configured_calls = stand_in(tmp_path / "c", name="my_openface")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    videos = make_videos(tmp_path, "a.mp4")
    plan = make_plan(tmp_path, videos)
    run_openface(plan, tmp_path / "out", binary=str(configured))
    assert invocations(path_calls) == [], "a configured binary comes before PATH"
    assert len(invocations(configured_calls)) == 1
    run_openface(plan, tmp_path / "out")
    assert len(invocations(path_calls)) == 1


def test_runner_nonzero_exit_fails_every_input_of_the_call(tmp_path: Path) -> None:
    binary, _ = stand_in(tmp_path, code=3)
    videos = make_videos(tmp_path, "a.mp4", "b.mp4")
    out = tmp_path / "out"
    plan = make_plan(tmp_path, videos)
    run_openface(plan, out, binary=str(binary))
    # The stand-in wrote both CSVs before exiting 3: neither may be used.
    assert not list(out.glob("*.csv"))
    for video in videos:
        error = read_openface_run(plan, out)[str(video)]
        assert isinstance(error, MediaError)
        assert str(binary) in str(error) and "code 3" in str(error)
        assert str(out / LOG_NAME) in str(error)


def test_unfinished_run_is_refused(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, make_videos(tmp_path, "a.mp4"))
    (tmp_path / "out").mkdir()
    with pytest.raises(OpenFaceError, match="did not finish"):
        read_openface_run(plan, tmp_path / "out")


def test_runner_same_file_names_in_different_folders(tmp_path: Path) -> None:
    binary, calls = stand_in(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    videos = [tmp_path / "x" / "talking_face.mp4", tmp_path / "y" / "talking_face.mp4"]
    for v in videos:
        v.write_bytes(b"")
    plan = make_plan(tmp_path, videos)
    run_openface(plan, tmp_path / "out", binary=str(binary))
    result = read_openface_run(plan, tmp_path / "out")
    assert all(isinstance(result[str(v)], OpenFaceFrames) for v in videos)
    assert len(invocations(calls)) == 1


def test_runner_resumes_after_openface_stops(tmp_path: Path) -> None:
    # Real OpenFace stops at the first input it cannot open: the ones after it are run again.
    binary, calls = stand_in(tmp_path, stop="corrupt")
    first, corrupt, last = make_videos(tmp_path, "a_first.mp4", "b_corrupt.mp4", "d_last.mp4")
    corrupt = corrupt.rename(corrupt.with_name("corrupt.mp4"))
    missing = tmp_path / "videos" / "c_missing.mp4"
    clips = [
        make_clip("c1", 0.0, 1.0, str(first)),
        make_clip("c2", 0.0, 1.0, str(corrupt)),
        make_clip("c3", 0.0, 1.0, str(missing)),
        make_clip("c4", 0.0, 1.0, str(last)),
    ]
    result = run_and_extract(tmp_path, binary, clips)

    runs = invocations(calls)
    assert len(runs) == 2
    assert str(missing) not in inputs_of(runs[0]), "a missing file must not be passed to OpenFace"
    assert str(last) in inputs_of(runs[1]) and str(first) not in inputs_of(runs[1])
    assert list(result) == ["c1", "c2", "c3", "c4"]
    assert isinstance(result["c1"], tuple) and isinstance(result["c4"], tuple)
    assert isinstance(result["c2"], MediaError)
    # Keyed by the clip; the stage names the clip once when it reports the error.
    assert "corrupt.mp4" in str(result["c2"]) and "clip c2" not in str(result["c2"])
    assert LOG_NAME in str(result["c2"])
    assert isinstance(result["c3"], MediaError) and "does not exist" in str(result["c3"])


def test_extract_clips_runs_once_and_slices(tmp_path: Path) -> None:
    binary, calls = stand_in(tmp_path)
    talking, astronaut = make_videos(tmp_path, "talking_face.mp4", "astronaut_75frames.mp4")
    clips = [
        make_clip("t_start", 0.0, 2.0, str(talking)),
        make_clip("a_whole", 0.0, 3.0, str(astronaut)),
        make_clip("t_end", 18.0, 19.7, str(talking)),
        make_clip("t_beyond", 25.0, 26.0, str(talking)),
    ]
    result = run_and_extract(tmp_path, binary, clips, ["pose", "aus_r"])
    assert len(invocations(calls)) == 1
    assert list(result) == [c.clip_id for c in clips]

    frames = read_openface_csv(fixture_csv("talking_face.csv"), ["pose", "aus_r"])
    feats, ts = result["t_start"]
    n = int((frames.timestamps < 2.0).sum())
    assert feats.shape == (n, 1 + 6 + 17)
    np.testing.assert_array_equal(feats, frames.features[:n])
    feats, ts = result["a_whole"]
    assert feats.shape[0] == 75 and ts[0] == 0.0
    assert isinstance(result["t_beyond"], MediaError)


# --------------------------------------------------------------------------------------------
# Slicing


@pytest.fixture(scope="module")
def talking() -> OpenFaceFrames:
    return read_openface_csv(fixture_csv("talking_face.csv"))


def test_slice_start_end_and_overlap(talking: OpenFaceFrames) -> None:
    ts = talking.timestamps
    clips = [
        make_clip("start", 0.0, 2.0),
        make_clip("end", 18.5, 19.7),
        make_clip("left", 5.0, 7.0),
        make_clip("right", 6.0, 8.0),
        make_clip("whole", 0.0, 19.7),
    ]
    result = slice_clips(talking, clips, "talking_face.mp4")
    assert list(result) == [c.clip_id for c in clips]

    for clip in clips:
        feats, rel = result[clip.clip_id]
        inside = (ts >= clip.start) & (ts < clip.end)
        assert feats.dtype == np.float32 and rel.dtype == np.float32
        assert feats.shape == (int(inside.sum()), talking.features.shape[1])
        np.testing.assert_array_equal(feats, talking.features[inside])
        np.testing.assert_allclose(rel, ts[inside] - clip.start, atol=1e-5)
        assert 0.0 <= rel[0] < 0.05, "timestamps are relative to the clip start"
        assert rel[-1] < clip.end - clip.start

    assert result["start"][1][0] == 0.0
    assert result["whole"][0].shape[0] == 472
    # The end clip reaches the last frame.
    np.testing.assert_array_equal(result["end"][0][-1], talking.features[-1])
    # The overlap [6, 7) s is the same frames in both clips.
    left_feats, left_ts = result["left"]
    right_feats, right_ts = result["right"]
    shared_left = left_feats[left_ts + 5.0 >= 6.0 - 1e-4]
    shared_right = right_feats[right_ts + 6.0 < 7.0 - 1e-4]
    assert len(shared_left) == len(shared_right) > 20
    np.testing.assert_array_equal(shared_left, shared_right)


def test_slice_beyond_last_frame_is_an_error_entry(talking: OpenFaceFrames) -> None:
    clips = [make_clip("ok", 1.0, 2.0), make_clip("late", 20.0, 25.0), make_clip("empty", 3.0, 3.0)]
    result = slice_clips(talking, clips, "talking_face.mp4")
    assert isinstance(result["ok"], tuple)
    late = result["late"]
    assert isinstance(late, MediaError)
    assert "talking_face.mp4" in str(late) and "clip late" not in str(late)
    assert "[20.000, 25.000)" in str(late)
    assert isinstance(result["empty"], MediaError)


def test_slice_keeps_no_face_frames_zeroed() -> None:
    frames = read_openface_csv(fixture_csv("astronaut_noface_frames_26-50.csv"))
    # 25 fps: frames 26-50 have timestamps 1.00-1.96 s.
    result = slice_clips(frames, [make_clip("gap", 0.9, 2.1)], "astronaut_noface.mp4")
    feats, rel = result["gap"]
    assert feats.shape[0] == 30
    np.testing.assert_array_equal(feats[:, 0], [1] * 2 + [0] * 25 + [1] * 3)
    assert not feats[2:27].any()
    np.testing.assert_allclose(rel[:4], [0.02, 0.06, 0.10, 0.14], atol=1e-5)
