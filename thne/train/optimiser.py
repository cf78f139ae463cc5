"""What the training loop asks of a model's optimisation: the one interface behind which each
model keeps its optimisers and its update step.

The loop (:mod:`thne.train.loop`) knows no model by name. It builds the model, asks
:data:`~thne.train.loop.OPTIMISERS` for the model's :class:`Optimiser`, and runs each epoch as
one pass over the training split per stage of ``Optimiser.stages``, in that order, each pass in
a random order of its own, one :meth:`Optimiser.step` per batch. t-HNE has one stage
(:mod:`thne.train.thne_optimiser`, the paper's Algorithm 1), MMIM two
(:mod:`thne.train.mmim_optimiser`). A third model brings a model file and an optimiser file
and names them in :func:`~thne.model.build.build_model` and ``OPTIMISERS``; the loop, the
checkpoint and their exact resume stay as they are.

The model itself needs, besides ``forward``, what validation and ``thne predict`` use:
``losses(out, label)``, ``total_loss(terms, alpha, beta)`` and ``cpc_scores(out)``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Optimiser(Protocol):
    """A model's optimisers and its update step."""

    # The epoch's passes over the training split, in order.
    stages: tuple[str, ...]

    def step(
        self, stage: str, batch: dict[str, torch.Tensor], carry: dict
    ) -> dict[str, torch.Tensor]:
        """One update on ``batch`` (model inputs and ``label``) in ``stage``. Returns the loss
        terms to report, each a detached 0-d tensor averaged over the batch; the loop averages
        each over the clips of the batches that gave it, and logs the epoch's mean of
        ``total``, the loss the model is trained on, which some stage must report.

        ``carry`` is what a stage keeps from one batch to the next (MMIM's entropy memory): it
        is empty when the stage starts, and the step changes it in place. It may hold only
        tensors, numbers, strings and lists, tuples and dicts of them, as it is saved in a
        checkpoint written mid-stage and given back on resume."""
        ...

    def state_dict(self) -> dict:
        """Every optimiser's state, for the checkpoint."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` gave."""
        ...
