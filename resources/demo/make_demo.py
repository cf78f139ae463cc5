#!/usr/bin/env python
"""Regenerate the synthetic multimodal sentiment demo dataset.

The dataset imitates the layout of an MMSA copy of CMU-MOSI:

    label.csv       video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode
    Raw/<video_id>/<clip_id>.mp4   one clip per row (clip_id: clip number within the video)

Every clip carries three independent sentiment cues, each scored in {-1, 0, +1}:

* text   (label_T): the sentiment word in the spoken sentence,
* audio  (label_A): the voice -- high and loud (+1), mid (0), low and quiet (-1),
* visual (label_V): the head motion -- nod (+1), still (0), shake (-1),

and label = label_T + label_A + label_V.

Requirements: the ``espeak-ng`` program (Debian package ``espeak-ng``) and the
Python packages numpy, av (PyAV, with libx264 and aac encoders, as in its
wheels), opencv-python-headless and scikit-image (for the public-domain
astronaut portrait).

Usage:  python resources/demo/make_demo.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
import wave
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

SEED = 20250611
N_VIDEOS = 15
CLIPS_PER_VIDEO = 8
SPLIT_OF_VIDEO = ["train"] * 9 + ["valid"] * 3 + ["test"] * 3  # by video index

SIZE = 160  # output frame width and height (pixels)
FPS = 25
AUDIO_RATE = 22050  # espeak-ng's native rate; kept as is (no resampling)
AUDIO_BITRATE = 32000
VIDEO_CRF = 27
LEAD_IN_S = 0.25  # silence before the speech
TAIL_S = 0.30  # silence after the speech
MIN_DUR_S, MAX_DUR_S = 2.0, 4.0

# The astronaut's face in skimage.data.astronaut() (512x512): centre in source pixels.
FACE_CX, FACE_CY = 222.0, 130.0
BASE_CROP = 140.0  # source pixels mapped onto the 160-pixel frame (face box ~105 px)

# --- text cue ---------------------------------------------------------------
TEMPLATES = [
    "i thought the {topic} was {word}",
    "honestly the {topic} felt {word} to me",
    "the {topic} was really {word}",
    "i found the {topic} {word}",
    "overall the {topic} seemed {word}",
    "to be honest the {topic} was {word}",
    "in my opinion the {topic} was {word}",
    "i would say the {topic} is {word}",
    "i have to say that the {topic} was {word}",
    "after watching it i think the {topic} was {word}",
    "you know the {topic} was just {word}",
]
TOPICS = ["movie", "film", "story", "ending", "acting", "plot", "music"]
WORDS = {
    +1: ["great", "wonderful", "excellent", "amazing", "fantastic", "lovely"],
    -1: ["terrible", "awful", "boring", "horrible", "dreadful", "disappointing"],
    0: ["okay", "average", "ordinary", "fine", "normal"],
}

# --- acoustic cue: espeak-ng pitch (-p) and amplitude (-a) per voice class -----
VOICE_CLASSES = {
    +1: {"pitch": 85, "amplitude": 180},  # high and loud
    0: {"pitch": 50, "amplitude": 100},  # mid
    -1: {"pitch": 15, "amplitude": 38},  # low and quiet
}
# One espeak-ng voice per video ("speaker"). Only male voices of similar base
# pitch and loudness: with them the three voice classes stay separable by mean
# f0 and by RMS across all speakers (female variants, or very loud ones such as
# +paul/+iven, would overlap the classes). The klatt-type variants and +edward
# are left out because they hard-clip at -a 180.
SPEAKERS = [
    "en-us",
    "en-us+m1",
    "en-us+m2",
    "en-us+m3",
    "en-us+m4",
    "en-us+m5",
    "en-us+m6",
    "en-us+m7",
    "en-us+max",
    "en-us+boris",
    "en-us+michel",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
]
# At -a 180 espeak-ng's output peaks at full scale and AAC overshoots it a
# little; every clip gets this same fixed gain (not a normalisation: the
# loudness differences between the voice classes are kept).
HEADROOM_GAIN = 0.7

# --- visual cue: head motion ------------------------------------------------
MOTIONS = {+1: "nod", 0: "still", -1: "shake"}


def synthesize(text: str, voice: str, pitch: int, amplitude: int, speed: int) -> np.ndarray:
    """Run espeak-ng and return mono float32 samples in [-1, 1] at AUDIO_RATE."""
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice,
                "-p",
                str(pitch),
                "-a",
                str(amplitude),
                "-s",
                str(speed),
                "-w",
                str(wav_path),
                text,
            ],
            check=True,
            capture_output=True,
        )
        with wave.open(str(wav_path), "rb") as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2, "unexpected espeak-ng output"
            assert w.getframerate() == AUDIO_RATE, f"espeak-ng rate {w.getframerate()}"
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def trim_silence(y: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    idx = np.flatnonzero(np.abs(y) > threshold)
    if idx.size == 0:
        return y
    return y[idx[0] : idx[-1] + 1]


def balanced_scores(rng: np.random.Generator, n_clips: int, dropped: int) -> list[int]:
    """n_clips scores from {-1,0,1}, as equal as possible, shuffled.

    With 8 clips one value can only appear twice; ``dropped`` says which one, so
    that, rotated over the videos, the totals are balanced.
    """
    pool = [-1, 0, 1] * (n_clips // 3 + 1)
    while len(pool) > n_clips:
        pool.remove(dropped)
    rng.shuffle(pool)
    return [int(v) for v in pool]


# --- images -------------------------------------------------------------------


def crop_matrix(cx: float, cy: float, crop: float) -> np.ndarray:
    """Affine (3x3) map from source pixels to output pixels: a crop x scale."""
    s = SIZE / crop
    return np.array(
        [[s, 0.0, -s * (cx - crop / 2)], [0.0, s, -s * (cy - crop / 2)], [0.0, 0.0, 1.0]]
    )


def rotation_homography(
    pitch_deg: float, yaw_deg: float, center: tuple[float, float], focal: float
) -> np.ndarray:
    """Homography of the image plane rotated in 3D about a point on it.

    The frame is a plane facing a pinhole camera K (focal ``focal``, principal
    point ``center``). Rotating that plane by R about its point under the
    principal point maps pixels by H = K (R + (I - R) e3 e3^T) K^-1, which keeps
    ``center`` fixed (unlike a pure camera rotation K R K^-1, which pans).
    """
    p, y = np.radians(pitch_deg), np.radians(yaw_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    r = ry @ rx
    k = np.array([[focal, 0, center[0]], [0, focal, center[1]], [0, 0, 1.0]])
    e3 = np.zeros((3, 3))
    e3[2, 2] = 1.0
    return k @ (r + (np.eye(3) - r) @ e3) @ np.linalg.inv(k)


def make_person(rng: np.random.Generator, index: int, base: np.ndarray) -> dict:
    """A per-video look: flip, colour tint, brightness, background tint, crop."""
    img = base.astype(np.float32)
    cx, cy = FACE_CX, FACE_CY
    flip = index % 2 == 1
    if flip:
        img = img[:, ::-1]
        cx = base.shape[1] - 1 - cx
    # overall colour balance and brightness
    gains = rng.uniform(0.88, 1.12, size=3) * rng.uniform(0.85, 1.12)
    img = img * gains
    # background-ish tint: blend a colour in, growing with distance from the face
    yy, xx = np.mgrid[0 : base.shape[0], 0 : base.shape[1]]
    dist = np.hypot(xx - cx, yy - cy)
    mask = np.clip((dist - 75.0) / 60.0, 0.0, 1.0)[..., None] * rng.uniform(0.25, 0.5)
    tint = rng.uniform(0, 255, size=3)
    img = img * (1 - mask) + tint * mask
    img = np.clip(img, 0, 255).astype(np.uint8)
    crop = BASE_CROP * rng.uniform(0.96, 1.04)
    ox, oy = rng.uniform(-5, 5, size=2)
    a = crop_matrix(cx + ox, cy + oy, crop)
    face_out = a @ np.array([cx, cy, 1.0])
    return {
        "image": np.ascontiguousarray(img),
        "crop": a,
        "face_center": (float(face_out[0]), float(face_out[1])),
        "flip": flip,
    }


def head_angles(
    motion: str, t: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pitch and yaw (degrees) over time for one clip."""
    phase = rng.uniform(0, 2 * np.pi)
    if motion == "still":
        drift = rng.uniform(0.5, 1.5)
        f = rng.uniform(0.1, 0.25)
        arg = 2 * np.pi * f * t + phase
        return drift * np.sin(arg), 0.5 * drift * np.cos(arg)
    amp = rng.uniform(14.0, 17.0)
    f = rng.uniform(1.5, 2.0)
    main = amp * np.sin(2 * np.pi * f * t + phase)
    small = rng.uniform(0.0, 1.0) * np.sin(2 * np.pi * 0.2 * t)
    if motion == "nod":
        return main, small
    return small, main


# --- encoding -------------------------------------------------------------------


def write_clip(path: Path, frames: list[np.ndarray], audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width = SIZE
        vs.height = SIZE
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(VIDEO_CRF), "preset": "slow", "tune": "stillimage"}
        vs.codec_context.thread_count = 1
        as_ = out.add_stream("aac", rate=AUDIO_RATE)
        as_.layout = "mono"
        as_.bit_rate = AUDIO_BITRATE
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            vf.time_base = Fraction(1, FPS)
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
        n = 1024
        for start in range(0, len(audio), n):
            chunk = audio[start : start + n]
            af = av.AudioFrame.from_ndarray(
                chunk[None, :].astype(np.float32), format="fltp", layout="mono"
            )
            af.sample_rate = AUDIO_RATE
            af.pts = start
            af.time_base = Fraction(1, AUDIO_RATE)
            for pkt in as_.encode(af):
                out.mux(pkt)
        for pkt in as_.encode(None):
            out.mux(pkt)


# --- main -----------------------------------------------------------------------


def annotation(label: float) -> str:
    return "Positive" if label > 0 else "Negative" if label < 0 else "Neutral"


def build(out_dir: Path) -> list[dict]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found: apt-get install espeak-ng")
    rng = np.random.default_rng(SEED)
    base = skimage.data.astronaut()
    raw_dir = out_dir / "Raw"
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    rows = []
    for v in range(N_VIDEOS):
        video_id = f"demo{v + 1:02d}"
        person = make_person(rng, v, base)
        speaker = SPEAKERS[v]
        speed = int(rng.integers(125, 161))
        # independent, balanced scores per modality; the dropped value rotates
        scores_t = balanced_scores(rng, CLIPS_PER_VIDEO, dropped=(v + 0) % 3 - 1)
        scores_a = balanced_scores(rng, CLIPS_PER_VIDEO, dropped=(v + 1) % 3 - 1)
        scores_v = balanced_scores(rng, CLIPS_PER_VIDEO, dropped=(v + 2) % 3 - 1)
        for c in range(CLIPS_PER_VIDEO):
            clip_id = str(c + 1)
            s_t, s_a, s_v = scores_t[c], scores_a[c], scores_v[c]
            voice = VOICE_CLASSES[s_a]
            for _ in range(50):  # pick a sentence whose speech fits the clip
                text = str(rng.choice(TEMPLATES)).format(
                    topic=rng.choice(TOPICS), word=rng.choice(WORDS[s_t])
                )
                speech = trim_silence(
                    synthesize(text, speaker, voice["pitch"], voice["amplitude"], speed)
                )
                if len(speech) / AUDIO_RATE <= MAX_DUR_S - LEAD_IN_S - 0.1:
                    break
            else:
                raise RuntimeError(f"no sentence fits for {video_id}/{clip_id}")
            dur = np.clip(LEAD_IN_S + len(speech) / AUDIO_RATE + TAIL_S, MIN_DUR_S, MAX_DUR_S)
            n_frames = int(round(dur * FPS))
            n_samples = int(round(n_frames / FPS * AUDIO_RATE))
            audio = np.zeros(n_samples, dtype=np.float32)
            start = int(LEAD_IN_S * AUDIO_RATE)
            seg = speech[: n_samples - start]
            audio[start : start + len(seg)] = HEADROOM_GAIN * seg

            motion = MOTIONS[s_v]
            t = np.arange(n_frames) / FPS
            pitch, yaw = head_angles(motion, t, rng)
            frames = []
            for k in range(n_frames):
                h = rotation_homography(pitch[k], yaw[k], person["face_center"], focal=float(SIZE))
                m = h @ person["crop"]
                frames.append(
                    cv2.warpPerspective(
                        person["image"],
                        m,
                        (SIZE, SIZE),
                        flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT,
                    )
                )
            write_clip(raw_dir / video_id / f"{clip_id}.mp4", frames, audio)

            label = float(s_t + s_a + s_v)
            rows.append(
                {
                    "video_id": video_id,
                    "clip_id": clip_id,
                    "text": text.lower(),
                    "label": label,
                    "label_T": float(s_t),
                    "label_A": float(s_a),
                    "label_V": float(s_v),
                    "annotation": annotation(label),
                    "mode": SPLIT_OF_VIDEO[v],
                    # not written to label.csv; for the summary only
                    "_speaker": speaker,
                    "_motion": motion,
                    "_dur": n_frames / FPS,
                }
            )
        print(f"{video_id}: {speaker:15s} speed {speed}  flip {person['flip']}", flush=True)

    fields = [
        "video_id",
        "clip_id",
        "text",
        "label",
        "label_T",
        "label_A",
        "label_V",
        "annotation",
        "mode",
    ]
    with open(out_dir / "label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rows


def summarize(rows: list[dict], out_dir: Path) -> None:
    print("\nclips per split:", dict(Counter(r["mode"] for r in rows)))
    print("videos per split:", dict(Counter(r["mode"] for r in rows if r["clip_id"] == "1")))
    hist = Counter(int(r["label"]) for r in rows)
    print("label histogram:", {k: hist[k] for k in range(-3, 4)})
    for key in ("label_T", "label_A", "label_V"):
        c = Counter(int(r[key]) for r in rows)
        print(f"{key} counts:", {k: c[k] for k in (-1, 0, 1)})
    for split in ("train", "valid", "test"):
        sub = [r for r in rows if r["mode"] == split]
        signs = [{np.sign(r[k]) for k in ("label_T", "label_A", "label_V")} for r in sub]
        disagree = sum({-1.0, 1.0} <= s for s in signs)
        print(f"{split}: {len(sub)} clips, {disagree} with a positive and a negative cue")
        assert disagree > 0
    durs = [r["_dur"] for r in rows]
    print(f"durations: {min(durs):.2f}-{max(durs):.2f} s, mean {np.mean(durs):.2f} s")
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    raw = sum(p.stat().st_size for p in (out_dir / "Raw").rglob("*.mp4"))
    print(f"size: Raw/ {raw / 1e6:.2f} MB, {out_dir.name}/ total {total / 1e6:.2f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent, help="output folder"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build(args.out)
    summarize(rows, args.out)


if __name__ == "__main__":
    main()
