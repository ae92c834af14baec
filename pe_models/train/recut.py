"""Give a trained bundle the cuts of its experiment file, keeping its weights (``--recut``).

Cuts and study rules are chosen on the validation studies after training; the experiment file
then records them. Re-cutting copies the bundle with those values, so that the bundle that is
evaluated and shipped is the one the experiment file describes, without training it again.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from pe_models.bundle import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, load_bundle
from pe_models.io.atomic import atomic_folder
from pe_models.train.experiment import Experiment
from pe_models.train.run import (
    STUDY_RULES,
    bundle_recipe,
    recorded_path,
    study_rules,
    training_card,
)


def recut_bundle(experiment: Experiment, source: Path, folder: Path) -> Path:
    """Copy the bundle at ``source`` to ``folder`` with ``experiment``'s cuts and study rules.

    The weights and the training record are copied unchanged; ``threshold``,
    ``scores_slices`` and the study rules (``min_clot_ml``, ``min_disease_mm``) come from the
    experiment, and the card is written again from it.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ValueError
        The bundle was not built by the experiment's recipe (architecture, task or input) or
        not by ``pe-train``, or ``folder`` is ``source``.
    pe_models.bundle.BundleError
        ``source`` is not a bundle.
    """
    if folder.resolve() == source.resolve():
        raise ValueError(f"recut {experiment.name}: {source} would be overwritten by its own copy")
    bundle = load_bundle(source)
    recipe = bundle_recipe(experiment)
    differing = {
        name: (getattr(bundle.config, name), value)
        for name, value in recipe.items()
        if getattr(bundle.config, name) != value
    }
    if differing:
        details = "; ".join(
            f"{name}: {have!r} vs {want!r}" for name, (have, want) in differing.items()
        )
        raise ValueError(
            f"recut {experiment.name}: {source} was not built by {experiment.path} ({details})"
        )
    training = bundle.config.extra.get("training")
    if not training:
        raise ValueError(f"recut {experiment.name}: {source} holds no pe-train training record")
    kept = {k: v for k, v in bundle.config.extra.items() if k not in STUDY_RULES}
    config = replace(
        bundle.config,
        threshold=experiment.threshold,
        scores_slices=experiment.scores_slices,
        extra=kept | study_rules(experiment),
    )
    trained_by = training.get("experiment_file") or "an unrecorded experiment file"
    card = training_card(experiment, training).rstrip("\n") + (
        f"\n- Cuts: set after training from `{recorded_path(experiment.path)}` "
        f"(`pe-train --recut`); the weights were trained by `{trained_by}`.\n"
    )
    with atomic_folder(folder, replace_existing=True) as staging:
        shutil.copy2(source / WEIGHTS_FILE, staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
    return folder
