"""The paths of a dataset's runs: training inputs, seeds' run folders, grid points."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping


def train_inputs(ds: str) -> dict[str, str]:
    """What a training run reads: the manifest, tokenized text, features and statistics."""
    return {
        "manifest": f"data/{ds}/manifest.tsv",
        "text": f"features/{ds}/text.h5",
        "audio": f"features/{ds}/audio.h5",
        "visual": f"features/{ds}/visual.h5",
        "audio_stats": f"features/{ds}/audio.stats.json",
        "visual_stats": f"features/{ds}/visual.stats.json",
    }


def run_paths(
    config: Mapping, ds: str, filename: str, variants: Iterable[str], folder: str = "runs"
) -> list[str]:
    """``filename`` of every seed of ``variants``, variant by variant, under
    results/<ds>/<folder>/ (runs: the untuned runs; tuned: the chosen points')."""
    seeds = config["datasets"][ds]["train"]["seeds"]
    return [
        f"results/{ds}/{folder}/{variant}/seed{seed}/{filename}"
        for variant in variants
        for seed in seeds
    ]


def trained_runs(config: Mapping, ds: str, filename: str) -> list[str]:
    """``filename`` of every seed of every variant the dataset trains (train.variants)."""
    return run_paths(config, ds, filename, config["datasets"][ds]["train"]["variants"])


def grid_section(config: Mapping, ds: str) -> Mapping:
    grid = config["datasets"][ds].get("grid")
    if grid is None:
        raise ValueError(
            f"datasets.{ds}.grid: no grid search is configured for this dataset "
            "(config/config.yaml's mosi section has the paper's)"
        )
    return grid


def grid_point(grids: Mapping, ds: str, point: str) -> dict:
    """The values of the grid point named ``point`` (its folder name)."""
    points = grids.get(ds, {})
    if point not in points:
        raise ValueError(f"{point}: not a point of datasets.{ds}.grid.axes")
    return points[point]


def grid_runs(config: Mapping, grids: Mapping, ds: str, variant: str, filename: str) -> list[str]:
    """``filename`` of every point and search seed of ``variant``, in the grid's order."""
    seeds = grid_section(config, ds)["seeds"]
    return [
        f"results/{ds}/grid/{variant}/{point}/seed{seed}/{filename}"
        for point in grids[ds]
        for seed in seeds
    ]


def grid_variants(config: Mapping, ds: str) -> list[str]:
    """The variants a dataset's grid tunes, thne among them."""
    return grid_section(config, ds)["variants"]


def grid_files(config: Mapping, ds: str, filename: str) -> list[str]:
    """``filename`` of each tuned variant's grid folder (best.json: its chosen point)."""
    return [f"results/{ds}/grid/{variant}/{filename}" for variant in grid_variants(config, ds)]


def untuned_runs(config: Mapping, ds: str, filename: str) -> list[str]:
    """``filename`` of every seed of the untuned runs of the variants the grid tunes."""
    return run_paths(config, ds, filename, grid_variants(config, ds))


def tuned_runs(
    config: Mapping, ds: str, filename: str, chosen: Callable[[str, str], object]
) -> list[str]:
    """``filename`` of every seed of every tuned variant, asking ``chosen(ds, variant)`` for
    each first: in the workflow that plans them after the selections (a rule whose params
    read a chosen point must wait for them)."""
    variants = grid_variants(config, ds)
    for variant in variants:
        chosen(ds, variant)
    return run_paths(config, ds, filename, variants, folder="tuned")
