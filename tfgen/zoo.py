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
import zipfile

from tfgen import jsonio
from tfgen.export import EXPORT_INFO, ExportedModel, ModelFileError, check_export  # noqa: F401 (re-exported)

CARD = "card.json"


def _read_card(path: pathlib.Path) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{str(path)!r} is corrupt: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ModelFileError(f"{str(path)!r} is corrupt: a zoo card is a JSON object, "
                             f"got {type(data).__name__}")
    return data


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
            if card.parent.name.startswith("."):  # a publish in progress, or left by a kill
                continue
            entry = {**_read_card(card), "name": card.parent.name}  # the folder is what tfgen.load finds
            if kind is None or entry.get("kind", "generative_model") == kind:
                cards.append(entry)
    return cards


def card(name: str) -> dict:
    return _read_card(_entry_path(name) / CARD)


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
      name_or_path: a zoo name, a zoo entry folder, a SavedModel folder, or
        (with ``format="keras"``) a ``.keras`` file.
      format: ``"saved_model"`` returns an ``ExportedModel`` (``sample(n,
        seed)``, ``generate(z)``; needs no tfgen model code), ``"keras"``
        returns the full Keras model from ``model.keras`` (trainable further).

    Raises:
      FileNotFoundError: the path, or the file the format needs, does not exist.
      ModelFileError (a ValueError): the file is not a tfgen model, is
        truncated or corrupt, or holds a ``Lambda`` layer; checked before
        TensorFlow or Keras deserializes anything.
      ValueError: an unknown zoo name or format.
    """
    if format not in ("saved_model", "keras"):
        raise ValueError(f"format must be 'saved_model' or 'keras', got {format!r}")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a zoo name or a path, got {type(name_or_path).__name__}")
    raw = os.fspath(name_or_path)
    if not raw:
        raise ValueError("name_or_path is empty: pass a zoo name or a path")
    path = pathlib.Path(raw)
    if not path.exists():
        if os.sep in raw or raw.startswith(".") or raw.endswith(".keras"):
            raise FileNotFoundError(f"no such file or directory: {raw!r}")
        path = _entry_path(raw)
    if (path / CARD).is_file():
        kind = _read_card(path / CARD).get("kind", "generative_model")
        if kind == "feature_network":
            raise ValueError(f"{raw!r} is a feature network for the image metrics, not a "
                             "generative model: load it with tfgen.metrics.FeatureNetwork.load")
    if format == "keras":
        keras_file = path / "model.keras" if path.is_dir() else path
        if not keras_file.is_file():
            raise FileNotFoundError(f"no model.keras in {str(path)!r}")
        return load_keras(keras_file)
    if path.is_file():
        hint = (": it is a .keras file, so pass format='keras'" if zipfile.is_zipfile(path)
                else "; format='saved_model' needs the folder that holds saved_model.pb")
        raise ModelFileError(f"{str(path)!r} is a file, not a SavedModel directory{hint}")
    if not (path / "saved_model.pb").is_file() and (path / "saved_model").is_dir():
        path = path / "saved_model"  # a zoo entry or a run directory
    return ExportedModel(str(path))  # it checks the files and names the folder in its errors


def _copy_weights_only(src, dst):
    """Copy a run's ``model.keras`` without its optimizer state (2-3x the weights
    for Adam/RMSProp): the zoo keeps entries small. The copy loads uncompiled;
    compile it to train further."""
    model = load_keras(src, compile=False)
    model.save(os.fspath(dst))


def _find_code(obj, where: str = "the model"):
    """The first place in a Keras config that would deserialize code (a ``Lambda``
    layer, or a Python lambda anywhere), as words; None when there is none."""
    if isinstance(obj, dict):
        kind = obj.get("class_name")
        if kind in ("Lambda", "__lambda__"):
            name = obj.get("config", {}).get("name") if isinstance(obj.get("config"), dict) else None
            return f"{'layer ' + repr(name) if name else 'a Python lambda'} in {where}"
        if isinstance(obj.get("config"), dict) and isinstance(obj["config"].get("name"), str) and kind:
            where = f"{kind} {obj['config']['name']!r}"
        for value in obj.values():
            found = _find_code(value, where)
            if found:
                return found
    elif isinstance(obj, list):
        for value in obj:
            found = _find_code(value, where)
            if found:
                return found
    return None


def check_keras_file(path, *, tfgen_model: bool = True) -> dict:
    """Check that ``path`` is a whole ``.keras`` file of a tfgen model without
    deserializing it: a complete zip archive with ``config.json`` and
    ``model.weights.h5`` whose top-level object is a registered tfgen
    ``GenerativeModel`` and which holds no ``Lambda`` layer (Keras' safe mode
    refuses Python lambdas; tfgen refuses every ``Lambda``, since a tfgen model
    never needs one). ``tfgen_model=False`` accepts any Keras model (a feature
    network) and keeps the other checks. Returns the config. Raises
    ``FileNotFoundError`` or ``ModelFileError``."""
    import keras

    import tfgen.models  # noqa: F401  (registers the classes)
    from tfgen.models.base import GenerativeModel

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such .keras file: {path!r}")
    if os.path.isdir(path):
        hint = (" (a SavedModel: load it with tfgen.load)"
                if os.path.isfile(os.path.join(path, "saved_model.pb")) else "")
        raise ModelFileError(f"{path!r} is a directory, not a .keras file{hint}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path):
        why = ("it starts like one but its end is missing (an interrupted copy or download?)"
               if head == b"PK\x03\x04" else "a .keras file is a zip of config.json and model.weights.h5")
        raise ModelFileError(f"{path!r} is truncated or not a zip archive, so not a .keras file: {why}")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise ModelFileError(f"{path!r} is not a tfgen model: the zip archive has no config.json, "
                                     "so it is not a .keras file")
            if "model.weights.h5" not in names:
                raise ModelFileError(f"{path!r} is incomplete: the .keras archive has no model.weights.h5")
            broken = z.testzip()
            if broken is not None:
                raise ModelFileError(f"{path!r} is corrupt: {broken} in it fails its CRC check")
            config = json.loads(z.read("config.json"))
    except ModelFileError:
        raise
    except Exception as e:  # BadZipFile, zlib.error, EOFError, JSONDecodeError, ...
        raise ModelFileError(f"{path!r} is truncated or corrupt: {type(e).__name__}: {e}") from e
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{path!r} is corrupt: its config.json is not a Keras object config")
    registered = config.get("registered_name") or ""
    cls = keras.saving.get_registered_object(registered) if registered.startswith("tfgen>") else None
    if tfgen_model and not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        module = config.get("module") or "?"
        raise ModelFileError(f"{path!r} is not a tfgen model: it holds a {config['class_name']} "
                             f"(from {module}), not a tfgen GenerativeModel")
    code = _find_code(config)
    if code:
        raise ModelFileError(f"{path!r} contains a Lambda layer ({code}), which tfgen refuses to "
                             "deserialize (arbitrary code)")
    return config


def load_keras(path, *, compile: bool = True):
    """``keras.models.load_model`` in safe mode, after ``check_keras_file``: a
    clear ``FileNotFoundError`` or ``ModelFileError`` for missing, foreign,
    truncated or corrupt files and for files holding a ``Lambda`` layer."""
    import keras

    from tfgen.models.base import GenerativeModel

    path = os.fspath(path)
    check_keras_file(path)
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=compile)
    except Exception as e:  # keras raises many types for foreign or broken files
        raise ModelFileError(f"{path!r} could not be loaded as a tfgen model: {e}") from e
    if not isinstance(model, GenerativeModel):
        raise ModelFileError(f"{path!r} holds a {type(model).__name__}, not a tfgen GenerativeModel")
    return model


def publish(run_dir, name: str, *, command: str = "", overwrite: bool = False) -> pathlib.Path:
    """Make a finished run (``Trainer`` output) a zoo entry: copy its export and
    ``model.keras`` and write ``card.json`` from its ``recipe.json``,
    ``metrics.json`` and ``evaluations/*.json``. Written beside the
    destination and renamed into place."""
    import shutil
    import tempfile

    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"name must be a plain folder name (letters, digits, '.', '_', '-'; "
                         f"not starting with '.' or '-'), got {name!r}")
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
                     **({"train_seconds_from_step": metrics["train_seconds_from_step"]}
                        if metrics.get("train_seconds_from_step") else {}),
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
            jsonio.dump(card_data, f, indent=1)
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
