"""Scoring new media with a trained run: ``thne predict``.

:mod:`~thne.predict.inputs` reads what to score, :mod:`~thne.runs` loads a trained run,
:mod:`~thne.predict.extract` computes features as the run's training clips had them,
:mod:`~thne.predict.score` runs the model, and :mod:`~thne.predict.explain` draws where the
text looked (Eq. 2).
"""
