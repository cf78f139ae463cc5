"""Where the text looked: one figure per scored clip, and a page that shows them all.

Each figure has Eq. 2's attention weights over the clip's time, for the visual and the
acoustic sequence on one time axis, a few video frames at the most attended moments, and the
transcript and prediction in its title. The weights are drawn relative to uniform attention
(weight x number of steps: 1 is "no preference"), since the two sequences have different
numbers of steps and their raw weights are not comparable.
"""

from __future__ import annotations

import html
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# A Figure of its own, not pyplot's global figure manager: two requests of ``thne app`` draw
# at once in two threads, which pyplot does not allow.
from matplotlib.figure import Figure

from thne.data.clips import Clip
from thne.errors import InputError
from thne.io import atomic_path
from thne.media import MediaError, gray_frames
from thne.predict.score import ClipScore, polarity

N_FRAMES = 4
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
figure { margin: 1.5em 0; border-bottom: 1px solid #ccc; padding-bottom: 1em; }
img { max-width: 100%; }
"""


class NoAttention(InputError):
    """The run's variant has no text-guided attention (Eq. 2) to draw."""


def has_attention(model: str, deno1: bool) -> bool:
    """Whether a run of this model and switch has Eq. 2's text-guided attention to draw."""
    return model == "thne" and deno1


def peak_times(times: np.ndarray, weights: np.ndarray, n: int = N_FRAMES) -> list[float]:
    """Up to ``n`` most attended times, at least a ``n``-th of the clip apart, in time order."""
    if len(times) == 0:
        return []
    gap = (float(times[-1]) - float(times[0])) / (2 * n) if len(times) > 1 else 0.0
    picked: list[float] = []
    for i in np.argsort(-weights, kind="stable"):
        t = float(times[i])
        if all(abs(t - p) > gap for p in picked):
            picked.append(t)
        if len(picked) == n:
            break
    return sorted(picked)


def frames_at(clip: Clip, times: Sequence[float]) -> list[tuple[float, np.ndarray]]:
    """The video frames nearest to ``times`` (seconds from the clip's start); none when the
    media has no picture."""
    if not times:
        return []
    try:
        decoded = list(gray_frames(clip.media, clip.start, clip.end))
    except MediaError:
        return []
    if not decoded:
        return []
    stamps = np.array([t - clip.start for t, _ in decoded])
    return [(t, decoded[int(np.argmin(np.abs(stamps - t)))][1]) for t in times]


def clip_figure(clip: Clip, score: ClipScore, path: str | os.PathLike) -> None:
    """Write the clip's figure as a PNG."""
    if score.attn_v is None or score.attn_a is None:
        raise NoAttention(f"clip {clip.clip_id}: the run has no Eq. 2 attention weights")
    frames = frames_at(clip, peak_times(score.times_v, score.attn_v))
    fig = Figure(figsize=(8, 4.6 if frames else 3.2), dpi=80)
    grid = fig.add_gridspec(2 if frames else 1, max(1, len(frames)), height_ratios=None)
    ax = fig.add_subplot(grid[0, :])
    for name, times, weights, colour in (
        ("visual", score.times_v, score.attn_v, "tab:blue"),
        ("acoustic", score.times_a, score.attn_a, "tab:orange"),
    ):
        ax.plot(times, weights * len(weights), color=colour, label=f"{name} ({len(weights)} steps)")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    for t, _ in frames:
        ax.axvline(t, color="tab:blue", alpha=0.3, linewidth=4)
    ax.set_xlabel("seconds from the clip's start")
    ax.set_ylabel("attention / uniform")
    ax.legend(loc="upper right", fontsize="small")
    for k, (t, image) in enumerate(frames):
        sub = fig.add_subplot(grid[1, k])
        sub.imshow(image, cmap="gray")
        sub.set_title(f"{t:.2f} s", fontsize="small")
        sub.axis("off")
    transcript = textwrap.shorten(clip.text, 160, placeholder=" ...")
    fig.suptitle(
        "\n".join(textwrap.wrap(f'"{transcript}"', 90))
        + f"\nprediction {score.prediction:+.2f} ({polarity(score.prediction)})",
        fontsize="medium",
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def write_explanations(
    clips: Sequence[Clip], scores: Sequence[ClipScore], out_dir: str | os.PathLike
) -> list[Path]:
    """One ``<clip>.png`` per scored clip and ``index.html`` showing them all, in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_id = {c.clip_id: c for c in clips}
    written, items = [], []
    for score in scores:
        clip = by_id[score.clip_id]
        png = out / f"{score.clip_id}.png"
        clip_figure(clip, score, png)
        written.append(png)
        items.append(
            f"<figure id='{html.escape(score.clip_id)}'><img src='{html.escape(png.name)}' "
            f"alt='attention of clip {html.escape(score.clip_id)}'><figcaption><b>"
            f"{html.escape(score.clip_id)}</b> ({html.escape(clip.media)}): prediction "
            f"{score.prediction:+.3f}, {polarity(score.prediction)}. "
            f"&ldquo;{html.escape(clip.text)}&rdquo;</figcaption></figure>"
        )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Where the text looked"
        f"</title><style>{_STYLE}</style></head><body><h1>Where the text looked</h1>"
        "<p>Per clip: the text-guided attention (Eq. 2) over the visual and the acoustic "
        "sequence, relative to uniform attention, and the video frames at the most attended "
        "visual moments.</p>\n" + "\n".join(items) + "\n</body></html>\n"
    )
    with atomic_path(out / "index.html") as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return written
