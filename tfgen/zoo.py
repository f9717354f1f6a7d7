"""The pretrained zoo: ``saved_models/NAME/{saved_model/, model.keras, card.json}``.

``tfgen.load(name_or_path)`` takes a zoo name (``"gram-ring8"``), a zoo
entry folder, or a SavedModel export folder. Cards are data: JSON with the
recipe, seed, steps, data, metrics and the command that measured them.
"""

from __future__ import annotations

import difflib
import json
import os
import pathlib

from tfgen.export import EXPORT_INFO, ExportedModel

CARD = "card.json"


def zoo_dir() -> pathlib.Path:
    """``$TFGEN_ZOO_DIR``, else the repository's ``saved_models/``."""
    env = os.environ.get("TFGEN_ZOO_DIR")
    return pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[1] / "saved_models"


def entries(kind: str | None = "generative_model") -> list[dict]:
    """The cards of the zoo entries of one ``kind``, sorted by name.

    ``"generative_model"`` (the default; a card without a ``kind``) or
    ``"feature_network"`` (the classifiers the image metrics use, e.g.
    ``lenet-mnist``); ``None`` for all.
    """
    root = zoo_dir()
    cards = []
    if root.is_dir():
        for card in sorted(root.glob(f"*/{CARD}")):
            with open(card) as f:
                entry = {"name": card.parent.name, **json.load(f)}
            if kind is None or entry.get("kind", "generative_model") == kind:
                cards.append(entry)
    return cards


def card(name: str) -> dict:
    path = _entry_path(name) / CARD
    with open(path) as f:
        return json.load(f)


def _entry_path(name: str) -> pathlib.Path:
    path = zoo_dir() / name
    if not (path / CARD).is_file():
        known = [e["name"] for e in entries(kind=None)]
        hint = difflib.get_close_matches(name, known, n=1)
        raise ValueError(f"unknown zoo entry {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                         + f" (known: {', '.join(known) or 'none'})")
    return path


def load(name_or_path, *, format: str = "saved_model"):
    """Load a zoo entry or an export.

    Args:
      name_or_path: a zoo name, a zoo entry folder, or a SavedModel folder.
      format: ``"saved_model"`` returns an ``ExportedModel`` (``sample(n,
        seed)``, ``generate(z)``; needs no tfgen model code), ``"keras"``
        returns the full Keras model from ``model.keras`` (trainable further).
    """
    if format not in ("saved_model", "keras"):
        raise ValueError(f"format must be 'saved_model' or 'keras', got {format!r}")
    path = pathlib.Path(os.fspath(name_or_path))
    if not path.exists():
        if os.sep in str(name_or_path) or str(name_or_path).startswith("."):
            raise FileNotFoundError(f"no such file or directory: {str(name_or_path)!r}")
        path = _entry_path(str(name_or_path))
    if (path / CARD).is_file():
        kind = json.loads((path / CARD).read_text()).get("kind", "generative_model")
        if kind == "feature_network":
            raise ValueError(f"{str(name_or_path)!r} is a feature network for the image metrics, not a "
                             "generative model: load it with tfgen.metrics.FeatureNetwork.load")
    if format == "keras":
        keras_file = path / "model.keras" if path.is_dir() else path
        if not keras_file.is_file():
            raise FileNotFoundError(f"no model.keras in {str(path)!r}")
        return load_keras(keras_file)
    if (path / "saved_model" / EXPORT_INFO).is_file():
        path = path / "saved_model"
    return ExportedModel(str(path))


def _copy_weights_only(src, dst):
    """Copy a run's ``model.keras`` without its optimizer state (2-3x the weights
    for Adam/RMSProp): the zoo keeps entries small. The copy loads uncompiled;
    compile it to train further."""
    model = load_keras(src, compile=False)
    model.save(os.fspath(dst))


def load_keras(path, *, compile: bool = True):
    """``keras.models.load_model`` in safe mode, with a clear error for non-tfgen files."""
    import zipfile

    import keras

    import tfgen.models  # noqa: F401  (registers the classes)

    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a .keras file (not a zip archive)")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=compile)
    except Exception as e:  # keras raises many types for foreign or broken files
        raise ValueError(f"{path!r} could not be loaded as a tfgen model: {e}") from e
    from tfgen.models.base import GenerativeModel

    if not isinstance(model, GenerativeModel):
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not a tfgen GenerativeModel")
    return model


def publish(run_dir, name: str, *, command: str = "", overwrite: bool = False) -> pathlib.Path:
    """Make a finished run (``Trainer`` output) a zoo entry: copy its export and
    ``model.keras`` and write ``card.json`` from its ``recipe.json``,
    ``metrics.json`` and ``evaluations/*.json``. Written beside the
    destination and renamed into place."""
    import shutil
    import tempfile

    run = pathlib.Path(os.fspath(run_dir))
    for need in ("saved_model", "model.keras", "recipe.json", "metrics.json"):
        if not (run / need).exists():
            raise FileNotFoundError(f"{str(run)!r} is not a finished run: {need} is missing")
    dest = zoo_dir() / name
    if dest.exists() and not overwrite:
        raise FileExistsError(f"zoo entry {name!r} exists; pass overwrite=True to replace it")
    zoo_dir().mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}-", dir=zoo_dir()))
    try:
        shutil.copytree(run / "saved_model", tmp / "saved_model")
        _copy_weights_only(run / "model.keras", tmp / "model.keras")
        pictures = sorted((run / "samples").glob("epoch_*.png"))
        if pictures:  # the run's last sample picture, so a card has a face
            shutil.copy2(pictures[-1], tmp / "samples.png")
        with open(run / "recipe.json") as f:
            recipe = json.load(f)
        with open(run / "metrics.json") as f:
            metrics = json.load(f)
        card_data = {"name": name, "recipe": recipe, "seed": metrics.get("seed"),
                     "steps": metrics.get("steps"), "data": metrics.get("dataset"),
                     "train_seconds": metrics.get("train_seconds"),
                     "final_logs": metrics.get("final_logs"), "metrics": metrics.get("metrics"),
                     "command": command, "tfgen_version": metrics.get("tfgen_version")}
        # further evaluations of the run (``tfgen evaluate RUN --metric ...`` writes them)
        evaluations = {}
        for path in sorted((run / "evaluations").glob("*.json")):
            with open(path) as f:
                evaluations[path.stem] = json.load(f)
        if evaluations:
            card_data["evaluations"] = evaluations
        with open(tmp / CARD, "w") as f:
            json.dump(card_data, f, indent=1)
        if dest.exists():
            old = dest.with_name(f".{name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
