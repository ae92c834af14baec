"""Training and evaluation data: every dataset becomes a list of :class:`StudyRecord`."""

from pe_models.data.records import (
    NO_PE,
    SLICE_LABELS,
    LabelledStudy,
    StudyRecord,
    split_by_patient,
)

__all__ = ["NO_PE", "SLICE_LABELS", "LabelledStudy", "StudyRecord", "split_by_patient"]
