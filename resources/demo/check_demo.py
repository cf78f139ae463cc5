#!/usr/bin/env python
"""Verify the demo dataset and print the separability tables.

Checks every clip listed in label.csv:

1. container: 160x160, 25 fps, h264 video, AAC audio, duration 2-4 s;
2. face: dlib's frontal face detector (no upsampling) finds a face per frame;
3. head pose: std over time of pitch and yaw (pose_Rx, pose_Ry of thne's
   landmark extractor), per visual class;
4. voice: mean f0 and mean RMS from thne's acoustic features, per voice
   class, and whether the classes are separable across all speakers.

Needs the thne package installed (pip install -e .).

Usage:  python resources/demo/check_demo.py [--root DIR]
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import av
import numpy as np

from thne.features.audio import AudioConfig, extract_audio_features, feature_names
from thne.features.landmarks import FEATURE_NAMES, LandmarkExtractor

# The checks use the pipeline's own extractors, so they show what training will see.
AUDIO = AudioConfig(groups=("rms", "f0", "voicing"), pitch_tracker="pyin")
_A = {n: i for i, n in enumerate(feature_names(AUDIO))}
_V = {n: i for i, n in enumerate(FEATURE_NAMES)}


def read_clip(path: Path) -> dict:
    with av.open(str(path)) as c:
        vs, as_ = c.streams.video[0], c.streams.audio[0]
        return {
            "width": vs.codec_context.width,
            "height": vs.codec_context.height,
            "fps": float(vs.average_rate),
            "vcodec": vs.codec_context.name,
            "acodec": as_.codec_context.name,
            "duration": float(c.duration) / av.time_base,
        }


def voice_summary(path: Path, duration: float) -> tuple[float, float]:
    """Mean f0 over voiced frames and mean RMS over frames with speech."""
    feats, _ = extract_audio_features(path, 0.0, duration, AUDIO)
    voiced = feats[:, _A["voiced_prob"]] > 0.5
    rms = feats[:, _A["rms"]]
    speech = rms > 0.005
    return float(feats[voiced, _A["f0_hz"]].mean()), float(
        rms[speech].mean() if speech.any() else rms.mean()
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    with open(args.root / "label.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    extractor = LandmarkExtractor()
    n_frames = n_faces = 0
    problems = []
    pose_std = defaultdict(list)  # label_V -> [(std pitch, std yaw)], degrees
    voice = defaultdict(list)  # label_A -> [(video, f0, rms)]
    worst_clip = (2.0, "")
    for row in rows:
        path = args.root / "Raw" / row["video_id"] / f"{row['clip_id']}.mp4"
        clip = read_clip(path)
        if (clip["width"], clip["height"]) != (160, 160) or abs(clip["fps"] - 25) > 1e-6:
            problems.append(f"{path}: {clip['width']}x{clip['height']} @ {clip['fps']}")
        if clip["vcodec"] != "h264" or clip["acodec"] != "aac":
            problems.append(f"{path}: codecs {clip['vcodec']}/{clip['acodec']}")
        if not 2.0 - 0.05 <= clip["duration"] <= 4.0 + 0.05:
            problems.append(f"{path}: duration {clip['duration']:.2f}")
        feats = extractor.extract(path).features
        found = feats[feats[:, _V["face_detected"]] == 1]
        n_frames += len(feats)
        n_faces += len(found)
        name = f"{row['video_id']}/{row['clip_id']}"
        worst_clip = min(worst_clip, (len(found) / len(feats), name))
        if len(found) >= 3:
            pose = np.degrees(found[:, [_V["pose_Rx"], _V["pose_Ry"]]])
            pose_std[row["label_V"]].append(tuple(pose.std(axis=0)))
        voice[row["label_A"]].append((row["video_id"], *voice_summary(path, clip["duration"])))

    print(f"clips checked: {len(rows)}; container problems: {len(problems)}")
    for p in problems:
        print("  ", p)
    print(
        f"face detected in {n_faces}/{n_frames} frames ({100 * n_faces / n_frames:.1f}%); "
        f"worst clip {worst_clip[1]} {100 * worst_clip[0]:.0f}%"
    )

    names = {"1.0": "nod (+1)", "0.0": "still (0)", "-1.0": "shake (-1)"}
    print("\nhead pose: std over time per clip (degrees), mean [min, max]")
    print(f"{'class':12s} {'n':>3s}  {'std pitch':>22s}  {'std yaw':>22s}")
    for key in ("1.0", "0.0", "-1.0"):
        a = np.array(pose_std[key])
        print(
            f"{names[key]:12s} {len(a):3d}  "
            f"{a[:, 0].mean():6.2f} [{a[:, 0].min():5.2f}, {a[:, 0].max():5.2f}]  "
            f"{a[:, 1].mean():6.2f} [{a[:, 1].min():5.2f}, {a[:, 1].max():5.2f}]"
        )

    vnames = {"1.0": "high/loud (+1)", "0.0": "mid (0)", "-1.0": "low/quiet (-1)"}
    print("\nvoice: per clip mean f0 (Hz) and speech RMS, mean [min, max]")
    for key in ("1.0", "0.0", "-1.0"):
        a = np.array([(f, r) for _, f, r in voice[key]])
        print(
            f"{vnames[key]:15s} {len(a):3d}  "
            f"f0 {a[:, 0].mean():6.1f} [{a[:, 0].min():6.1f}, {a[:, 0].max():6.1f}]"
            f"  rms {a[:, 1].mean():.4f} [{a[:, 1].min():.4f}, {a[:, 1].max():.4f}]"
        )
    ranges = {k: np.array([(f, r) for _, f, r in voice[k]]) for k in voice}
    for i, name in ((0, "f0"), (1, "rms")):
        sep = (
            ranges["-1.0"][:, i].max() < ranges["0.0"][:, i].min()
            and ranges["0.0"][:, i].max() < ranges["1.0"][:, i].min()
        )
        print(f"classes separable by {name} across all speakers: {sep}")
    per_video = defaultdict(dict)
    for key in voice:
        for vid, f, r in voice[key]:
            per_video[vid].setdefault(key, []).append((f, r))
    print("\nper speaker: mean f0 / rms of low, mid, high")
    for vid in sorted(per_video):
        d = per_video[vid]
        cells = []
        for key in ("-1.0", "0.0", "1.0"):
            a = np.array(d.get(key, [(np.nan, np.nan)]))
            cells.append(f"{a[:, 0].mean():6.1f} / {a[:, 1].mean():.3f}")
        print(f"  {vid}: " + "   ".join(cells))


if __name__ == "__main__":
    main()
