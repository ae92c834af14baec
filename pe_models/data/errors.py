"""The error every dataset adapter raises for bad input (csv, masks, labels, COCO files)."""

from __future__ import annotations

from pe_models.io.errors import StudyReadError


class DatasetError(StudyReadError):
    """A dataset file or folder is missing, malformed or inconsistent with its CT.

    A :class:`~pe_models.io.StudyReadError`, so one ``except StudyReadError`` catches every
    input problem; ``str(error)`` is ``"<path>: <problem>"``.

    Parameters
    ----------
    path
        The file or folder at fault (the csv, the mask, the ``.mat`` file, ...).
    problem
        What is wrong, in words a reader can act on ("has no column pe_present_on_image").
    """
