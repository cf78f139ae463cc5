"""The shipped variants, defined once: the workflow's ``variants:`` and ``thne train --variant``
both read them.

A variant is a set of switches over one model (t-HNE's, :class:`thne.model.thne.Variant`), or
``model: mmim``, and may set Eq. 9's loss weights ``alpha`` and ``beta``, which then replace the
dataset's. The config's ``variants:`` adds variants of a user's own, or replaces one of these.
This module imports nothing heavy: every Snakemake parse reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOSS_WEIGHTS = ("alpha", "beta")
SWITCHES = ("deno1", "deno2", "recovery", "residual", "multimodal")
# Each model's switches where a variant sets none: t-HNE has every part but Eq. 10's residual;
# MMIM (thne/model/mmim.py) has no text-guided attention and no DeNo2, and always its CPC terms.
MODEL_SWITCHES: dict[str, dict[str, bool]] = {
    "thne": {**dict.fromkeys(SWITCHES, True), "residual": False},
    "mmim": {**dict.fromkeys(SWITCHES, True), "residual": False, "deno1": False, "deno2": False},
}

# The paper's Table 4 ablations, its Eq. 10 variant, the text-only baseline, and MMIM (Han et
# al., 2021), the model t-HNE builds on (thne/model/mmim.py).
SHIPPED_VARIANTS: dict[str, dict] = {
    "thne": {},
    "no_deno1": {"deno1": False},
    "no_deno2": {"deno2": False},
    "no_re": {"recovery": False},
    # Paper section 5.2: "To address this issue, we first reduced the weight of l_tm in the L
    # (alpha : 0.1 -> 0.05). Then, to further minimize the influence of the textual modality on
    # the visual and acoustic modalities, we added the original features h_m of the visual and
    # acoustic modalities back into h_mt" (Eq. 10).
    "residual": {"residual": True, "alpha": 0.05},
    "text_only": {"deno1": False, "deno2": False, "recovery": False, "multimodal": False},
    "mmim": {"model": "mmim"},
}


def with_shipped(variants: dict | None) -> dict[str, dict]:
    """The shipped variants, with ``variants`` (a config's) added; an entry named like a
    shipped one changes the keys it gives (``residual: {alpha: 0.1}`` keeps residual on)."""
    merged = {name: dict(entry) for name, entry in SHIPPED_VARIANTS.items()}
    for name, entry in (variants or {}).items():
        merged[name] = {**merged.get(name, {}), **(entry or {})}
    return merged


def variant_values(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a variant's entry (``{"residual": True, "alpha": 0.05}``) sets: its model, every
    switch (its model's, changed by the entry's) and the loss weights it gives."""
    entry = dict(entry or {})
    model = entry.pop("model", "thne")
    if model not in MODEL_SWITCHES:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODEL_SWITCHES)}")
    return {"model": model, **MODEL_SWITCHES[model], **entry}
