"""The page of ``thne app``: choose trained runs, give a clip and its transcript, press score,
and read each run's score, the clip's face and sound, and where the text looked (Eq. 2).

Built with Gradio; everything it shows comes from :func:`thne.app.request.score_request`.
Nothing is fetched from outside the machine: the stage turns Gradio's telemetry off before
Gradio is imported, and the theme's fonts are the browser's own.
"""

from __future__ import annotations

import html
import itertools
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from thne.app.catalog import SHOWN_METRICS, RunChoice
from thne.app.request import DOWNLOADS, RequestError, Scored, score_request
from thne.cli import disk_full, error_line
from thne.errors import InputError
from thne.evaluate.report_figures import METRIC_LABELS, RAW_METRICS
from thne.predict.inputs import MEDIA_SUFFIXES

TITLE = "thne: score a clip"
_CSS = """
#scores .cards { display: flex; flex-wrap: wrap; gap: 1em; }
#scores .card { border: 1px solid #ccc; border-radius: 8px; padding: 0.6em 1em; flex: 1 1 12em; }
#scores .score { font-size: 2.4em; font-weight: 600; }
#scores .positive { color: #1a7f37; } #scores .negative { color: #c0392b; }
#runs-table table { font-size: 0.85em; }
#status .error { color: #c0392b; white-space: pre-wrap; font-family: monospace; }
"""
# What the page asks of the webcam (getUserMedia's constraints), sound included.
WEBCAM = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": True}
# System fonts: Gradio's default theme would have the browser fetch its fonts.
_THEME = gr.themes.Default(
    font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def seed_list(seeds: Sequence[int]) -> str:
    """``1-10`` for seeds 1 to 10, else the seeds one by one."""
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _metric(key: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if key in RAW_METRICS else f"{100 * value:.1f}"


def runs_table(choices: Sequence[RunChoice]) -> str:
    """The runs on offer as an HTML table: label, dataset, variant, seeds and test metrics
    (the mean over an ensemble's seeds; MAE and Corr as they are, the rest in percent)."""
    head = "".join(f"<th>{h}</th>" for h in ("run", "dataset", "variant", "seeds"))
    head += "".join(f"<th>{METRIC_LABELS[k]}</th>" for k in SHOWN_METRICS) + "<th>media</th>"
    rows = []
    for c in choices:
        cells = [c.label, c.dataset, c.variant, seed_list(c.seeds)]
        cells += [_metric(k, c.metrics.get(k)) for k in SHOWN_METRICS]
        cells.append("yes" if c.scores_media else "no: imported features")
        rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    return f"<table id='runs'><tr>{head}</tr>{''.join(rows)}</table>"


def score_cards(scored: Scored) -> str:
    """One card a chosen run: the score (-3..3), its polarity and Acc-7 class, the seeds'
    spread for an ensemble, and the share of frames with a face and whether sound was found.
    ``data-prediction`` holds the value exactly as the run's predictions.tsv writes it."""
    cards = []
    for r in scored.results:
        row, value = r.row, float(r.row["prediction"])
        spread = (
            f"<div>&plusmn; {float(row['prediction_std']):.3f} over {int(row['n_seeds'])} "
            "seeds</div>"
            if "prediction_std" in row
            else ""
        )
        sound = "sound found" if float(row["audio_present"]) > 0 else "no sound track"
        cards.append(
            f"<div class='card' data-run='{html.escape(r.choice.label)}' "
            f"data-prediction='{value:.6g}'>"
            f"<div><b>{html.escape(r.choice.label)}</b></div>"
            f"<div>{html.escape(r.choice.dataset)}, {html.escape(r.choice.variant)}</div>"
            f"<div class='score {row['polarity']}'>{value:+.3f}</div>"
            f"<div>{row['polarity']}, Acc-7 class {acc7_label(int(row['acc7_class']))}</div>"
            f"{spread}"
            f"<div>face in {100 * float(row['face_detected']):.0f}% of frames; {sound}</div>"
            "</div>"
        )
    return "<div class='cards'>" + "".join(cards) + "</div>"


def acc7_label(k: int) -> str:
    return f"{k:+d}" if k else "0"


def _status(request: int, message: str, error: bool = False) -> str:
    """The status line of the ``request``-th press of score (``data-request``: which press
    the line answers, for a reader that waits for the next one)."""
    kind = "error" if error else "ok"
    return f"<div class='{kind}' data-request='{request}'>{html.escape(message)}</div>"


def _error_line(exc: Exception) -> str:
    """What the page says of an error: the page's own checks as ``thne app``'s, the rest as
    ``thne predict`` tells them; anything else is a bug, told in a line and kept whole in the
    server's log."""
    if isinstance(exc, OSError) and (full := disk_full(exc)) is not None:
        exc = full
    if isinstance(exc, InputError):
        return error_line("app" if isinstance(exc, RequestError) else "predict", exc)
    traceback.print_exception(exc, file=sys.stderr)
    return f"thne app: unexpected error ({type(exc).__name__}: {exc}); see the app's log"


def build_page(
    choices: Sequence[RunChoice], work_root: Path, *, device: str = "cpu", threads: int = 1
) -> gr.Blocks:
    """The page over ``choices``; each request works in a new folder under ``work_root``."""
    labels = [c.label for c in choices]
    by_label = dict(zip(labels, choices, strict=True))
    presses = itertools.count(1)
    # Preselected: the first run that can score media and draw its attention, else the first
    # that can score media.
    ranked = sorted(choices, key=lambda c: (not c.scores_media, not c.explains))
    first = [ranked[0].label] if ranked else []

    # Gradio finds the progress bar by its default value; track_tqdm shows the feature
    # stages' own bars (audio, visual) as they run.
    def on_score(
        selected,
        upload,
        recording,
        text,
        start,
        end,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        request = next(presses)
        try:
            if upload and recording:
                raise RequestError("give a file or a webcam recording, not both")
            scored = score_request(
                [by_label[s] for s in selected],
                upload or recording,
                text,
                start=start,
                end=end,
                recorded=not upload,
                work_root=work_root,
                device=device,
                threads=threads,
                progress=lambda share, what: progress(share, desc=what),
            )
        except Exception as exc:
            return _status(request, _error_line(exc), True), "", None, None
        figure = next((r.figure for r in scored.results if r.figure), None)
        done = f"scored in {scored.seconds:.1f} s with {len(scored.results)} run(s)"
        files = [str(f) for f in scored.files]
        return _status(request, done), score_cards(scored), figure and str(figure), files

    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(
            f"# {TITLE}\nChoose one or more trained runs, give a video or audio file (or record "
            "one) and what is said in it, and press **Score**. The score is the one "
            "`thne predict` gives: -3 (very negative) to 3 (very positive)."
        )
        with gr.Accordion(f"The {len(choices)} runs on offer", open=len(choices) <= 8):
            gr.HTML(runs_table(choices), elem_id="runs-table")
        with gr.Row():
            with gr.Column():
                chosen = gr.CheckboxGroup(
                    labels, value=first, label="Trained runs", elem_id="choices"
                )
                upload = gr.File(
                    label=f"Video or audio file ({' '.join(MEDIA_SUFFIXES)})",
                    type="filepath",
                    elem_id="upload",
                )
                recording = gr.Video(
                    sources=["webcam"],
                    include_audio=True,
                    # Not mirrored: a mirrored recording needs ffmpeg to flip it back. 640x480
                    # rather than Gradio's 1920x1440: the face detector's time grows with the
                    # pixels (a 3 s recording took 21 s at 2880 px wide), and the datasets'
                    # videos are smaller still.
                    webcam_options=gr.WebcamOptions(mirror=False, constraints=WEBCAM),
                    label="or record with the webcam",
                    height=240,
                    elem_id="webcam",
                )
                text = gr.Textbox(label="Transcript: what is said", lines=2, elem_id="transcript")
                with gr.Row():
                    start = gr.Textbox(
                        label="start (s)", placeholder="the beginning", elem_id="start"
                    )
                    end = gr.Textbox(label="end (s)", placeholder="the end", elem_id="end")
                button = gr.Button("Score", variant="primary", elem_id="score")
            with gr.Column():
                status = gr.HTML(elem_id="status")
                cards = gr.HTML(elem_id="scores")
                figure = gr.Image(
                    label="Where the text looked (Eq. 2)", type="filepath", elem_id="figure"
                )
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")
        button.click(
            on_score,
            [chosen, upload, recording, text, start, end],
            [status, cards, figure, downloads],
        )
    return page


def serve(page: gr.Blocks, work_root: Path, *, host: str, port: int) -> None:
    """Serve ``page`` until interrupted. Requests are scored one at a time, in the order they
    came: feature extraction sets process-wide limits (BLAS threads) while it runs, so two
    requests at once could give features, and numbers, that ``thne predict`` does not."""
    page.queue(default_concurrency_limit=1)
    try:
        _, url, _ = page.launch(
            prevent_thread_lock=True,
            server_name=host,
            server_port=port,
            share=False,
            theme=_THEME,
            css=_CSS,
            # The downloads only: not the uploads, the clips or their features.
            allowed_paths=[str(work_root / DOWNLOADS)],
            show_error=True,
            quiet=True,
            enable_monitoring=False,
            mcp_server=False,
            ssr_mode=False,
            pwa=False,
        )
    except OSError as exc:  # the port is taken
        raise InputError(f"{host}:{port}: cannot serve there ({exc}); give another --port") from exc
    print(f"app: open {url} in a browser; Ctrl-C stops the app", file=sys.stderr, flush=True)
    page.block_thread()
