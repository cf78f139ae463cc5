"""``thne app``: a local web page where a trained run scores a clip.

Reading guide: :mod:`~thne.app.catalog` finds the trained runs and describes them,
:mod:`~thne.app.request` scores one clip with the chosen runs through ``thne predict``'s own
function (:mod:`~thne.app.recording` gives a webcam recording its duration first), and
:mod:`~thne.app.page` is the Gradio page around the two. The command is
:mod:`thne.stages.app`.
"""
