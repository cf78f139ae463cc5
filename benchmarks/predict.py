"""Time per clip of ``thne predict``: feature extraction, then scoring, then the figures.

Cuts a real talking-face video into clips of --seconds each, then measures in this process
(one thread) loading the run, extracting the clips' features exactly as the run's training
clips had them, scoring them, and drawing the --explain figures. Prints wall and CPU seconds
per clip for each step.

    python benchmarks/predict.py --run results/demo/runs/thne/seed1 \
        [--video ../shared/fixtures/media/talking_face.mp4] [--clips 6] [--seconds 3]

The run must come from this thne (make one with
``snakemake results/demo/runs/thne/seed1/model.safetensors``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DEFAULT_VIDEO = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "media" / "talking_face.mp4"
)
TRANSCRIPT = "i think this one is actually pretty good and i liked it"


class Timer:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="results/<ds>/runs/<variant>/seed<n>")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from thne.data.clips import Clip
    from thne.data.ingest import check_media
    from thne.predict.explain import write_explanations
    from thne.predict.extract import extract_features
    from thne.predict.score import read_features, score_run
    from thne.runs import load_run

    clips = [
        check_media(
            Clip(
                f"c{i}",
                "v",
                i * args.seconds,
                (i + 1) * args.seconds,
                "predict",
                0.0,
                TRANSCRIPT,
                str(args.video),
            )
        )
        for i in range(args.clips)
    ]
    bad = [c for c in clips if not isinstance(c, Clip)]
    if bad:
        raise SystemExit(f"{args.video}: too short for {args.clips} clips of {args.seconds} s")
    n = len(clips)
    timer = Timer()
    run = load_run(args.run)
    load = timer.lap()
    with tempfile.TemporaryDirectory() as work:
        timer.lap()
        audio, visual, excluded = extract_features(clips, run.provenance, work)
        extract = timer.lap()
        data = read_features(clips, audio, visual)
        scores = score_run(run, data)
        score = timer.lap()
        write_explanations(data.clips, scores, Path(work) / "explain")
        explain = timer.lap()
    assert not excluded and len(scores) == n
    print(f"{n} clips of {args.seconds:g} s from {args.video.name}; run {args.run}; 1 thread")
    print(f"{'step':<34}{'wall s':>10}{'CPU s':>10}")
    print(f"{'load the run (once)':<34}{load[0]:>10.2f}{load[1]:>10.2f}")
    for name, (wall, cpu) in (
        ("extraction, per clip", extract),
        ("prediction, per clip", score),
        ("--explain figure, per clip", explain),
    ):
        print(f"{name:<34}{wall / n:>10.2f}{cpu / n:>10.2f}")
    print(
        f"extraction per second of media: {extract[0] / (n * args.seconds):.2f} s wall, "
        f"{extract[1] / (n * args.seconds):.2f} s CPU"
    )


if __name__ == "__main__":
    main()
