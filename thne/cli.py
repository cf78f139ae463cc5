"""The ``thne`` command: one subcommand per workflow stage.

Each Snakemake rule calls one of these with its inputs, outputs and config values as flags;
nothing here reads the config file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Sequence

STAGES = (
    "download",
    "unpack",
    "ingest",
    "audio",
    "visual",
    "openface-plan",
    "merge",
    "stats",
    "text",
    "train",
    "evaluate",
    "aggregate",
    "variants",
    "table",
    "ablation",
    "loss-curves",
    "cases",
    "report-pages",
)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()
) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        flag = f"--{f.name.replace('_', '-')}"
        if kind is bool:
            # None: not given, so the caller can fill it from elsewhere (a variant's preset).
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default: the variant's, else {f.default})",
            )
            continue
        parser.add_argument(flag, type=kind, default=f.default, help=f"(default: {f.default})")


def _dataclass_from_args(cls: type, args: argparse.Namespace, **extra):
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{**values, **extra})


def cmd_download(args: argparse.Namespace) -> None:
    from thne.data.download import download

    download([args.url, *args.mirror], args.out, sha256=args.sha256, retries=args.retries)


def cmd_unpack(args: argparse.Namespace) -> None:
    from thne.data.unpack import unpack

    unpack(args.archive, args.out)


def cmd_ingest(args: argparse.Namespace) -> None:
    from thne.data.ingest import ingest, read_layout
    from thne.data.splits import write_splits_report

    clips, refused = read_layout(
        args.layout, args.raw_dir, dataset=args.dataset, labels=args.labels
    )
    kept, rejected = ingest(
        clips,
        args.manifest,
        args.excluded,
        on_bad_clip=args.on_bad_clip,
        threads=args.threads,
        rejected=refused,
    )
    if args.splits:
        report = write_splits_report(
            args.splits,
            kept,
            [(r.clip, r.reason) for r in rejected],
            dataset=args.dataset,
            layout=args.layout,
        )
        if "difference" in report:
            print(f"difference to paper Table 1: {report['difference']}", file=sys.stderr)


def _clips_of(args: argparse.Namespace) -> list:
    """The manifest's clips, or one shard's when --shard is given."""
    from thne.data.manifest import read_manifest
    from thne.data.shards import shard_clips

    clips = read_manifest(args.manifest)
    return clips if args.shard is None else shard_clips(clips, args.shard, args.shard_size)


def cmd_audio(args: argparse.Namespace) -> None:
    from thne.features.audio import AudioConfig, extract_audio_features, feature_names
    from thne.features.store import extract_to_h5

    groups = {"groups": args.groups} if args.groups else {}
    cfg = AudioConfig(
        sample_rate=args.sample_rate,
        win_seconds=args.win_seconds,
        hop_seconds=args.hop_seconds,
        n_mfcc=args.n_mfcc,
        fmin=args.fmin,
        fmax=args.fmax,
        f0_resolution=args.f0_resolution,
        **groups,
    )
    excluded = extract_to_h5(
        _clips_of(args),
        args.out,
        lambda c: extract_audio_features(c.media, c.start, c.end, cfg),
        feature_names=feature_names(cfg),
        extractor=f"librosa {_version('librosa')}",
        config=dataclasses.asdict(cfg),
        on_bad_clip=args.on_bad_clip,
        desc="audio",
        workers=args.threads,
    )
    _report_excluded("audio", excluded)


def cmd_visual(args: argparse.Namespace) -> None:
    from thne.features.store import extract_to_h5

    clips = _clips_of(args)
    if args.extractor == "openface":
        names, run, extractor, cfg = _openface_extractor(args, clips)
    elif args.extractor == "landmarks":
        from thne.features.landmarks import FEATURE_NAMES, LandmarkExtractor
        from thne.features.landmarks import extract_landmark_features as landmarks

        model = LandmarkExtractor()

        def run(clip):
            r = landmarks(
                clip.media, clip.start, clip.end, detect_every=args.detect_every, extractor=model
            )
            return r.features, r.timestamps

        names, extractor = list(FEATURE_NAMES), f"dlib-landmarks {_version('dlib-bin')}"
        cfg = {"extractor": "landmarks", "detect_every": args.detect_every}
    else:
        sys.exit(f"thne visual: unknown extractor {args.extractor!r}; use openface or landmarks")
    excluded = extract_to_h5(
        clips,
        args.out,
        run,
        feature_names=names,
        extractor=extractor,
        config=cfg,
        on_bad_clip=args.on_bad_clip,
        desc="visual",
        # OpenFace used its threads already; reading its CSVs is quick.
        workers=1 if args.extractor == "openface" else args.threads,
    )
    _report_excluded("visual", excluded)


def _openface_extractor(args: argparse.Namespace, clips: list):
    """OpenFace features of the clips' media; return what extract_to_h5 needs.

    With --openface-run the run is read from there (the workflow runs OpenFace in its own rule,
    possibly inside a container); otherwise OpenFace is run here first.
    """
    from pathlib import Path

    from thne.features.media import MediaError
    from thne.features.openface import (
        extract_openface_clips,
        feature_names,
        plan_inputs,
        run_openface,
        write_plan,
    )

    if args.openface_run:
        if not args.openface_plan:
            sys.exit("thne visual: --openface-run needs --openface-plan")
        plan, work = Path(args.openface_plan), Path(args.openface_run)
    else:
        work = Path(args.openface_dir or Path(args.out).with_suffix(".openface"))
        plan = work / "plan.tsv"
        work.mkdir(parents=True, exist_ok=True)
        write_plan(plan_inputs(c.media for c in clips), plan)
        run_openface(plan, work, binary=args.openface_bin, threads=args.threads)
    results = extract_openface_clips(clips, plan, work, args.openface_groups, log=args.openface_log)

    def run(clip):
        result = results[clip.clip_id]
        if isinstance(result, MediaError):
            raise result
        return result

    cfg = {"extractor": "openface", "groups": list(args.openface_groups)}
    return feature_names(args.openface_groups), run, "OpenFace FeatureExtraction", cfg


def cmd_openface_plan(args: argparse.Namespace) -> None:
    import shutil
    from pathlib import Path

    from thne.data.manifest import read_manifest
    from thne.data.shards import n_shards, shard_clips
    from thne.features.openface import plan_inputs, write_plan

    clips = read_manifest(args.manifest)
    out = Path(args.out)
    # Written beside the target and renamed, so an interrupted run leaves no partial plan.
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total = n_shards(clips, args.shard_size)
    for shard in range(total):
        media = (c.media for c in shard_clips(clips, shard, args.shard_size))
        write_plan(plan_inputs(media), tmp / f"{shard}.tsv")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"OpenFace plans for {total} shard(s) in {out}", file=sys.stderr)


def cmd_merge(args: argparse.Namespace) -> None:
    from thne.features.store import merge_h5

    n = merge_h5(args.inputs, args.out)
    print(f"merged {len(args.inputs)} shard(s): {n} clips", file=sys.stderr)


def cmd_stats(args: argparse.Namespace) -> None:
    from thne.features.normalise import fit_stats

    fit_stats(args.manifest, args.features, args.out)


def cmd_text(args: argparse.Namespace) -> None:
    from thne.text.tokenize import tokenize_manifest

    cut = tokenize_manifest(
        args.manifest, args.out, encoder=args.encoder, max_length=args.max_length
    )
    print(f"tokenized; {cut} transcript(s) cut at {args.max_length} tokens", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from thne.train.data import load_dataset
    from thne.train.loop import train_run

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cpu"
        if torch.cuda.is_available():
            from thne.devices import claim_gpu

            device = f"cuda:{claim_gpu(torch.cuda.device_count())}"
    print(f"training on {device}", file=sys.stderr)
    cfg = _train_config(args)
    data = load_dataset(
        args.manifest,
        args.text,
        args.audio,
        args.visual,
        max_frames=args.max_frames,
        visual_stats=args.visual_stats,
        audio_stats=args.audio_stats,
    )
    metrics = train_run(data, cfg, args.out_dir, device=device)
    print(f"best validation MAE {metrics['mae']:.4f}", file=sys.stderr)


def _train_config(args: argparse.Namespace):
    """TrainConfig from the flags; switches not given come from the variant's preset when the
    variant is one of the named ones, else from TrainConfig's defaults."""
    from thne.model.thne import VARIANTS, Variant
    from thne.train.config import TrainConfig

    switches = [f.name for f in dataclasses.fields(Variant)]
    if args.model == "mmim":
        from thne.model.mmim import MMIM_SKELETON

        preset = dataclasses.asdict(MMIM_SKELETON)
    elif args.variant not in VARIANTS and all(getattr(args, s) is None for s in switches):
        sys.exit(
            f"thne train: variant {args.variant!r} is not one of {', '.join(VARIANTS)}; "
            "name one of those, or give its switches (--deno1/--no-deno1 and so on)"
        )
    else:
        preset = dataclasses.asdict(VARIANTS.get(args.variant, Variant()))
    for f in dataclasses.fields(TrainConfig):
        if getattr(args, f.name, None) is None:
            setattr(args, f.name, preset.get(f.name, f.default))
    return _dataclass_from_args(TrainConfig, args)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import evaluate_predictions

    m = evaluate_predictions(args.predictions, args.out, variant=args.variant, seed=args.seed)
    print(" ".join(f"{k} {v:.4f}" for k, v in m.items()), file=sys.stderr)


def cmd_aggregate(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import aggregate_runs

    r = aggregate_runs(args.runs, args.out, dataset=args.dataset, variant=args.variant)
    print(" ".join(f"{k} {v:.4f}±{r['std'][k]:.4f}" for k, v in r["mean"].items()), file=sys.stderr)


def cmd_variants(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import aggregate_variants

    r = aggregate_variants(
        args.runs,
        args.out,
        dataset=args.dataset,
        variants=args.variants,
        predictions=args.predictions,
        # Unset flags keep the module's defaults, the numbers the tables say they used.
        **{
            k: v
            for k, v in (("resamples", args.resamples), ("seed", args.bootstrap_seed))
            if v is not None
        },
    )
    for name, summary in r["variants"].items():
        m, sd = summary["mean"]["mae"], summary["std"]["mae"]
        line = f"{name}: mae {m:.4f}±{sd:.4f} over {len(summary['seeds'])} seed(s)"
        if "vs_thne" in summary:
            d = summary["vs_thne"]["mae"]
            lo, hi = d["interval"]
            line += f"; vs thne {d['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        print(line, file=sys.stderr)


def cmd_table(args: argparse.Namespace) -> None:
    from thne.evaluate.tables import describe_features, write_ablation, write_table

    features = describe_features(args.visual, args.audio, args.encoder)
    if args.stage == "table":
        print(
            write_table(
                args.metrics,
                args.out,
                dataset=args.dataset,
                features=features,
                variants_json=args.variants_json,
            )
        )
    else:
        print(write_ablation(args.variants_json, args.out, dataset=args.dataset, features=features))


def cmd_loss_curves(args: argparse.Namespace) -> None:
    from pathlib import Path

    from thne.evaluate.figures import plot_loss_curves

    by_variant: dict[str, list[str]] = {}
    for path in args.histories:
        by_variant.setdefault(Path(path).parent.parent.name, []).append(path)
    plot_loss_curves(by_variant, args.out, title=args.title)


def cmd_cases(args: argparse.Namespace) -> None:
    from thne.evaluate.cases import write_cases

    write_cases(args.predictions, args.manifest, args.out, dataset=args.dataset, n=args.n)


def cmd_report_pages(args: argparse.Namespace) -> None:
    import os
    from pathlib import Path

    import yaml

    from thne.evaluate import html

    out = Path(args.out_dir)
    pages = {
        "table.html": html.markdown_page(args.table),
        "ablation.html": html.markdown_page(args.ablation),
        "cases.html": html.markdown_page(args.cases),
        "splits.html": html.splits_page(args.splits),
        "excluded.html": html.excluded_page(
            args.dataset, args.excluded, {"acoustic": args.audio, "visual": args.visual}
        ),
        "config.html": html.config_page(args.dataset, yaml.safe_load(args.config_yaml)),
    }
    for name, page in pages.items():
        html.write_page(out / name, page)
    from html import escape

    figure = escape(os.path.relpath(args.figure, out), quote=True)
    links = "".join(f"<li><a href='{n}'>{n}</a></li>" for n in pages)
    dataset = escape(args.dataset)
    html.write_page(
        out / "index.html",
        html.page(
            f"thne results: {args.dataset}",
            f"<h1>thne results: {dataset}</h1><ul>{links}</ul><img src='{figure}' width='900'>",
        ),
    )


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _report_excluded(stage: str, excluded: list) -> None:
    for e in excluded:
        print(f"{stage}: excluded clip {e.clip_id}: {e.reason}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from thne.data.ingest import LAYOUTS
    from thne.data.manifest import BAD_CLIP_POLICIES
    from thne.train.config import TrainConfig

    parser = argparse.ArgumentParser(prog="thne", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    def stage(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_)

    def shard(p: argparse.ArgumentParser) -> None:
        p.add_argument("--shard", type=int, default=None, help="only this shard (0-based)")
        p.add_argument("--shard-size", type=int, default=16, help="videos per shard")

    def bad_clip(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--on-bad-clip",
            choices=BAD_CLIP_POLICIES,
            default="fail",
            help="stop at a clip whose media cannot be used, or exclude and record it",
        )

    p = stage("download", "fetch a file over HTTP(S): resumable, retried, mirrors, checksum")
    p.add_argument("--url", required=True)
    p.add_argument("--mirror", action="append", default=[], help="further URLs, tried in order")
    p.add_argument("--sha256", default=None)
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_download)

    p = stage("unpack", "unpack a zip or tar archive safely and restartably")
    p.add_argument("--archive", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_unpack)

    p = stage("ingest", "dataset files -> manifest.tsv, excluded.tsv and splits.json")
    p.add_argument("--layout", choices=LAYOUTS, required=True)
    p.add_argument(
        "--raw-dir", required=True, help="unpacked dataset (folder of label.csv and Raw/)"
    )
    p.add_argument("--manifest", required=True)
    p.add_argument("--excluded", required=True)
    p.add_argument("--splits", help="write the split report (counts beside paper Table 1) here")
    p.add_argument("--dataset", default="", help="mosi or mosei: picks the CMU reader and folds")
    p.add_argument("--labels", help="CMU-MOSEI labels computational sequence (.csd)")
    p.add_argument("--threads", type=int, default=1)
    bad_clip(p)
    p.set_defaults(func=cmd_ingest)

    p = stage("audio", "acoustic features (librosa) -> audio.h5")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    shard(p)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--win-seconds", type=float, default=0.064)
    p.add_argument("--hop-seconds", type=float, default=0.02)
    p.add_argument("--n-mfcc", type=int, default=20)
    p.add_argument(
        "--groups",
        type=_csv,
        default=None,
        help="comma-separated feature groups (default: all of mfcc,rms,zcr,centroid,f0,voicing)",
    )
    p.add_argument("--fmin", type=float, default=65.0)
    p.add_argument("--fmax", type=float, default=500.0)
    p.add_argument("--f0-resolution", type=float, default=0.25, help="pYIN bin width, semitones")
    p.add_argument("--threads", type=int, default=1, help="clips processed in parallel")
    bad_clip(p)
    p.set_defaults(func=cmd_audio)

    p = stage("visual", "visual features (landmarks, head pose, expression) -> visual.h5")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    shard(p)
    p.add_argument("--extractor", choices=("landmarks", "openface"), default="landmarks")
    p.add_argument("--detect-every", type=int, default=1, help="landmarks: detector every N frames")
    p.add_argument("--openface-bin", default=None, help="openface: path of FeatureExtraction")
    p.add_argument(
        "--openface-groups",
        type=_csv,
        default=("aus_r", "aus_c", "pose", "gaze"),
        help="openface: comma-separated column groups",
    )
    p.add_argument(
        "--openface-dir",
        default=None,
        help="openface: where OpenFace is run and its CSVs and log kept (default: beside --out)",
    )
    p.add_argument(
        "--openface-run",
        default=None,
        help="openface: read the finished run in this folder instead of running OpenFace",
    )
    p.add_argument("--openface-plan", default=None, help="openface: the plan of --openface-run")
    p.add_argument("--openface-log", default=None, help="openface: the log named in errors")
    p.add_argument("--threads", type=int, default=1, help="clips processed in parallel")
    bad_clip(p)
    p.set_defaults(func=cmd_visual)

    p = stage("openface-plan", "one OpenFace input plan per shard -> a folder of TSVs")
    p.add_argument("--manifest", required=True)
    p.add_argument("--shard-size", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_openface_plan)

    p = stage("merge", "join shard feature files -> one feature file")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_merge)

    p = stage("stats", "standardisation statistics of a feature file, from the train split")
    p.add_argument("--manifest", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_stats)

    p = stage("text", "tokenize transcripts -> text.h5")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--encoder", default="all-MiniLM-L6-v2")
    p.add_argument("--max-length", type=int, default=50)
    p.set_defaults(func=cmd_text)

    p = stage("train", "train one seed of one variant -> run directory")
    for name in ("manifest", "text", "audio", "visual", "out-dir"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--max-frames", type=int, default=500)
    p.add_argument("--visual-stats", help="statistics from thne stats (default: fit on train)")
    p.add_argument("--audio-stats", help="statistics from thne stats (default: fit on train)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: its default)")
    _add_dataclass_flags(p, TrainConfig)
    p.set_defaults(func=cmd_train)

    p = stage("evaluate", "test metrics of one run from its predictions.tsv")
    p.add_argument("--predictions", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--variant", default="thne")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_evaluate)

    p = stage("aggregate", "mean and std over seeds -> metrics.json")
    p.add_argument("--runs", nargs="+", required=True, help="per-run metrics.json files")
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--variant", default="thne")
    p.set_defaults(func=cmd_aggregate)

    p = stage("variants", "every variant's mean and std over seeds -> variants.json")
    p.add_argument("--runs", nargs="+", required=True, help="per-run metrics.json files")
    p.add_argument("--variants", type=_csv, required=True, help="comma-separated, in order")
    p.add_argument(
        "--predictions",
        nargs="*",
        default=[],
        help="the runs' predictions.tsv: adds each variant's paired bootstrap against thne",
    )
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default: 10,000)")
    p.add_argument("--bootstrap-seed", type=int, help="bootstrap random seed (default: 0)")
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", required=True)
    p.set_defaults(func=cmd_variants)

    for name, help_, source in (
        ("table", "t-HNE beside the paper's Table 3 -> table.md", "--metrics"),
        ("ablation", "variants beside the paper's Table 4 -> ablation.md", "--variants-json"),
    ):
        p = stage(name, help_)
        p.add_argument(source, required=True)
        if name == "table":
            p.add_argument(
                "--variants-json", help="variants.json: MMIM's row and each variant's difference"
            )
        p.add_argument("--visual", required=True, help="visual.h5 the runs used")
        p.add_argument("--audio", required=True, help="audio.h5 the runs used")
        p.add_argument("--encoder", required=True, help="the text encoder the runs used")
        p.add_argument("--out", required=True)
        p.add_argument("--dataset", required=True)
        p.set_defaults(func=cmd_table)

    p = stage("loss-curves", "loss terms per epoch, mean over seeds (Figure 3) -> PNG")
    p.add_argument(
        "--histories",
        nargs="+",
        required=True,
        help="history.tsv files; each run's variant is the name of its run directory's parent",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    p.set_defaults(func=cmd_loss_curves)

    p = stage("cases", "test clips with the smallest and largest errors (Table 5) -> cases.md")
    p.add_argument("--predictions", nargs="+", required=True, help="predictions.tsv per seed")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("-n", type=int, default=5, help="clips per list")
    p.set_defaults(func=cmd_cases)

    p = stage("report-pages", "HTML pages for snakemake --report -> a folder")
    for name in ("table", "ablation", "cases", "figure", "splits", "excluded", "audio", "visual"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--config-yaml", required=True, help="the dataset's config, as YAML text")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_report_pages)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
