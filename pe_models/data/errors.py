"""The error every dataset adapter raises for bad input (csv, masks, labels, COCO files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or :class:`DatasetError` naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DatasetError(path, "not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(path, f"is not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise DatasetError(path, "must hold a JSON object")
    return document
