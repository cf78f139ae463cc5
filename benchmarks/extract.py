"""Feature extraction speed and memory on one real talking-face video.

Prints, for each visual extractor (OpenFace when one is installed), frames per second and the
share of frames with a face; for the acoustic stage at each pitch tracker (YIN, the default,
and pYIN), the speed as a multiple of real time, by the clock and per CPU-second; and the peak
memory of each, measured in a fresh process per stage. Medians of --repeat runs.

    python benchmarks/extract.py [--video ../shared/fixtures/media/talking_face.mp4]
        [--audio ../shared/realdata/mosi/Oz06ZWiO20M_6.mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_VIDEO = SHARED / "fixtures" / "media" / "talking_face.mp4"
# The talking-face video's audio track is silent: the acoustic stage is timed on real speech.
DEFAULT_AUDIO = SHARED / "realdata" / "mosi" / "Oz06ZWiO20M_6.mp4"


def run_stage(stage: str, video: Path) -> dict:
    """One measurement, in this process (called in a child process by main)."""
    from thne.media import probe

    duration = probe(video).duration
    if stage.startswith("landmarks"):
        from thne.features.landmarks import FEATURE_NAMES, LandmarkExtractor

        every = int(stage.split("-")[1])
        model = LandmarkExtractor()
        t0 = time.perf_counter()
        result = model.extract(video, detect_every=every)
        seconds = time.perf_counter() - t0
        faces = result.features[:, FEATURE_NAMES.index("face_detected")]
        return {"frames": len(faces), "seconds": seconds, "face_share": float(faces.mean())}
    if stage == "openface":
        from thne.data.manifest import Clip
        from thne.features.openface import (
            extract_openface_clips,
            plan_inputs,
            run_openface,
            write_plan,
        )

        clip = Clip("c", "v", 0.0, duration, "train", 0.0, "t", str(video))
        with tempfile.TemporaryDirectory() as work:
            t0 = time.perf_counter()
            plan = Path(work) / "plan.tsv"
            write_plan(plan_inputs([clip.media]), plan)
            run_openface(plan, work)
            result = extract_openface_clips([clip], plan, work)["c"]
            if isinstance(result, Exception):
                raise result
            feats, _ = result
            seconds = time.perf_counter() - t0
        return {"frames": len(feats), "seconds": seconds, "face_share": float(feats[:, 0].mean())}
    if stage.startswith("audio"):
        from thne.features.audio import AudioConfig, extract_audio_features, feature_names

        cfg = AudioConfig(pitch_tracker=stage.split("-")[1])
        extract_audio_features(video, 0.0, 1.0, cfg)  # numba compiles librosa's kernels once
        t0, c0 = time.perf_counter(), time.process_time()
        feats, _ = extract_audio_features(video, 0.0, duration, cfg)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rms = float(feats[:, feature_names(cfg).index("rms")].mean())
        return {"audio_seconds": duration, "seconds": seconds, "cpu": cpu, "mean_rms": rms}
    raise ValueError(stage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument(
        "--audio", type=Path, default=DEFAULT_AUDIO if DEFAULT_AUDIO.is_file() else DEFAULT_VIDEO
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        out = run_stage(args.stage, args.video)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return

    from thne.features.openface import CONTAINER_BINARY

    stages = ["landmarks-1", "landmarks-5", "audio-yin", "audio-pyin"]
    if shutil.which("FeatureExtraction") or os.access(CONTAINER_BINARY, os.X_OK):
        stages.insert(0, "openface")
    else:
        print("OpenFace: not installed, skipped (put FeatureExtraction on PATH to include it)")
    print(
        f"video: {args.video.name}, audio: {args.audio.name}; median of {args.repeat} runs, "
        "one process per run"
    )
    for stage in stages:
        media = args.audio if stage.startswith("audio") else args.video
        runs = []
        for _ in range(args.repeat):
            proc = subprocess.run(
                [sys.executable, __file__, "--video", str(media), "--stage", stage],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        if stage.startswith("audio"):
            print(
                f"acoustic (librosa, pitch tracker {stage[6:]}): "
                f"{med['audio_seconds'] / med['seconds']:.1f}x real time on one core "
                f"({med['audio_seconds'] / med['cpu']:.1f}x per CPU-second), "
                f"peak {med['peak_rss_mb']:.0f} MB (mean RMS {med['mean_rms']:.4f})"
            )
        else:
            name = "OpenFace" if stage == "openface" else f"landmarks, detect_every={stage[-1]}"
            print(
                f"{name}: {med['frames'] / med['seconds']:.1f} frames/s, face in "
                f"{100 * med['face_share']:.1f}% of {int(med['frames'])} frames, "
                f"peak {med['peak_rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
