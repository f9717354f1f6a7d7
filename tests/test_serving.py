"""Serving checks for every generative zoo entry (issue 7, item 5; docs/serving.md).

What TF Serving sees of an export: the SignatureDefs that ``saved_model_cli show
--all`` lists, requests in the ``PredictRequest`` form (gRPC) or the REST API's
JSON ``"inputs"`` form, and the signature's own refusal of an ``n`` outside
``[0, max_samples]``. Everything runs in this process on the committed exports
(about 15 s for the whole zoo) except one run of the real ``saved_model_cli``
command, which ties the in-process listing to the tool a user types.
"""

import contextlib
import functools
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

import tfgen
from tfgen import zoo

NAMES = [e["name"] for e in zoo.entries()]  # generative models only: feature networks are not served
MAX_INT32 = 2**31 - 1


def _export_dir(name):
    return str(zoo.zoo_dir() / name / "saved_model")


@functools.lru_cache(maxsize=None)
def _info(name):
    with open(os.path.join(_export_dir(name), zoo.EXPORT_INFO)) as f:
        return json.load(f)


@functools.lru_cache(maxsize=None)
def _saved_model(name):
    return tf.saved_model.load(_export_dir(name))


@functools.lru_cache(maxsize=None)
def _keras_model(name):
    return tfgen.load(name, format="keras")


# ---- saved_model_cli --------------------------------------------------------------------------

def _show_all_in_process(saved_model_dir) -> str:
    """What ``saved_model_cli show --all --dir DIR`` prints, from the CLI's own
    function (``show --all`` calls ``_show_all``), without a new Python process."""
    from tensorflow.python.tools import saved_model_cli

    if not hasattr(saved_model_cli, "_show_all"):  # a TF that moved it: run the command
        return _show_all_command(saved_model_dir)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        saved_model_cli._show_all(saved_model_dir)
    return buf.getvalue()


def _show_all_command(saved_model_dir) -> str:
    exe = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd + ["show", "--all", "--dir", saved_model_dir], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def parse_show_all(text: str) -> dict:
    """``saved_model_cli show --all`` output as ``{tag_set: {signature: {"inputs":
    {key: (dtype, shape)}, "outputs": {...}, "method": str}}}``; a shape is a tuple
    of ints (-1 for an unknown dimension) or ``None`` for an unknown rank."""
    graphs, sig, io_map, tensor = {}, None, None, None
    for line in text.splitlines():
        if m := re.match(r"MetaGraphDef with tag-set: '(.*)' contains the following SignatureDefs:", line):
            sigs = graphs.setdefault(m.group(1), {})
        elif m := re.match(r"signature_def\['(.+)'\]:$", line):
            sig = sigs.setdefault(m.group(1), {"inputs": {}, "outputs": {}, "method": None})
        elif sig is not None and (m := re.match(r"\s+(inputs|outputs)\['(.+)'\] tensor_info:$", line)):
            io_map, tensor = sig[m.group(1)], m.group(2)
        elif tensor is not None and (m := re.match(r"\s+dtype: (\w+)$", line)):
            io_map[tensor] = (m.group(1), None)
        elif tensor is not None and (m := re.match(r"\s+shape: (.+)$", line)):
            shape = m.group(1).strip()
            dims = None if shape == "unknown_rank" else tuple(
                int(d) for d in shape.strip("()").split(",") if d.strip())
            io_map[tensor] = (io_map[tensor][0], dims)
        elif sig is not None and (m := re.match(r"\s+Method name is: ?(.*)$", line)):
            sig["method"], tensor = m.group(1).strip(), None
        elif line.startswith(("The MetaGraph with tag set", "Concrete Functions")):
            sig, tensor = None, None
    return graphs


def _expected_signatures(name) -> dict:
    """The documented signatures (docs/serving.md) for this entry, from its
    ``tfgen_export.json``."""
    info = _info(name)
    latent, data = info["latent_dim"], tuple(info["data_shape"])
    expected = {
        "serving_default": {"inputs": {"n": ("DT_INT32", ()), "seed": ("DT_INT64", ())},
                            "outputs": {"samples": ("DT_FLOAT", (-1, *data))}},
        "generate": {"inputs": {"z": ("DT_FLOAT", (-1, latent))},
                     "outputs": {"x": ("DT_FLOAT", (-1, *data))}},
    }
    if "log_prob" in info["signatures"]:  # IML's density endpoint
        expected["log_prob"] = {"inputs": {"x": ("DT_FLOAT", (-1, *data))},
                                "outputs": {"log_prob": ("DT_FLOAT", (-1,))}}
    return expected


def test_parse_show_all_reads_the_cli_layout():
    """The parser on a fixed excerpt, so a parser bug cannot hide a signature bug."""
    text = ("\nMetaGraphDef with tag-set: 'serve' contains the following SignatureDefs:\n\n"
            "signature_def['generate']:\n"
            "  The given SavedModel SignatureDef contains the following input(s):\n"
            "    inputs['z'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 20)\n"
            "        name: generate_z:0\n"
            "  The given SavedModel SignatureDef contains the following output(s):\n"
            "    outputs['x'] tensor_info:\n        dtype: DT_FLOAT\n        shape: unknown_rank\n"
            "        name: StatefulPartitionedCall:0\n"
            "  Method name is: tensorflow/serving/predict\n"
            "The MetaGraph with tag set ['serve'] contains the following ops: {'MatMul'}\n")
    assert parse_show_all(text) == {"serve": {"generate": {
        "inputs": {"z": ("DT_FLOAT", (-1, 20))}, "outputs": {"x": ("DT_FLOAT", None)},
        "method": "tensorflow/serving/predict"}}}


@pytest.mark.parametrize("name", NAMES)
def test_saved_model_cli_lists_the_documented_signatures(name):
    info, card = _info(name), zoo.card(name)
    # the export info agrees with the card it was published with
    assert info["latent_dim"] == card["recipe"]["latent_dim"]
    assert tuple(info["data_shape"]) == tuple(tfgen.data.info(card["data"])["shape"])
    assert info["max_samples"] > 0

    graphs = parse_show_all(_show_all_in_process(_export_dir(name)))
    assert list(graphs) == ["serve"], "TF Serving loads the 'serve' tag set"
    sigs = graphs["serve"]
    served = {k: v for k, v in sigs.items() if not k.startswith("__")}  # __saved_model_init_op
    assert sorted(served) == sorted(info["signatures"])
    for sig_name, want in _expected_signatures(name).items():
        got = served[sig_name]
        assert got["inputs"] == want["inputs"], sig_name
        assert got["outputs"] == want["outputs"], sig_name
        assert got["method"] == "tensorflow/serving/predict", sig_name  # what the Predict API serves


def test_saved_model_cli_command_matches_in_process_listing():
    """The real ``saved_model_cli`` command (one process, one entry: ~6-10 s)
    prints what the in-process listing the other tests parse prints."""
    name = "gram-ring8" if "gram-ring8" in NAMES else (NAMES or [None])[0]
    if name is None:
        pytest.skip("no zoo entries committed")
    text = _show_all_command(_export_dir(name))
    assert "signature_def['serving_default']" in text
    assert parse_show_all(text) == parse_show_all(_show_all_in_process(_export_dir(name)))


# ---- the loaded SavedModel against the Keras model --------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_saved_model_samples_match_keras_model(name):
    info, loaded, model = _info(name), _saved_model(name), _keras_model(name)
    assert model.latent_dim == info["latent_dim"] and tuple(model.data_shape) == tuple(info["data_shape"])
    serve = loaded.signatures["serving_default"]
    for n, seed in [(16, 0), (5, 2**40 + 7)]:  # a seed beyond int32 must not be truncated
        got = serve(n=tf.constant(n, tf.int32), seed=tf.constant(seed, tf.int64))["samples"].numpy()
        assert got.shape == (n, *info["data_shape"]) and got.dtype == np.float32
        np.testing.assert_allclose(got, np.asarray(model.sample(n, seed=seed)), atol=1e-5,
                                   err_msg=f"{name}: served samples differ from model.sample (seed {seed})")
    a = serve(n=tf.constant(4), seed=tf.constant(1, tf.int64))["samples"].numpy()
    b = serve(n=tf.constant(4), seed=tf.constant(2, tf.int64))["samples"].numpy()
    assert not np.allclose(a, b), "different seeds gave the same samples"
    z = np.random.default_rng(0).standard_normal((3, info["latent_dim"])).astype(np.float32)
    x = loaded.signatures["generate"](z=tf.constant(z))["x"].numpy()
    np.testing.assert_allclose(x, np.asarray(model.generate(z, training=False)), atol=1e-5)


# ---- requests in TF Serving's formats ---------------------------------------------------------

def _signature_def(name, sig_name):
    """The SignatureDef TF Serving validates a request against (from saved_model.pb)."""
    from tensorflow.python.tools import saved_model_utils

    meta = saved_model_utils.get_meta_graph_def(_export_dir(name), "serve")
    return meta.signature_def[sig_name]


def _check_request_like_tf_serving(request, signature_def):
    """TF Serving's own checks of a Predict request: the input keys are exactly the
    signature's, each TensorProto's dtype is the input's, its shape fits."""
    if set(request.inputs) != set(signature_def.inputs):
        raise ValueError(f"inputs {sorted(request.inputs)} != signature's {sorted(signature_def.inputs)}")
    for key, proto in request.inputs.items():
        want = signature_def.inputs[key]
        if proto.dtype != want.dtype:
            raise ValueError(f"input {key!r}: {types_pb2.DataType.Name(proto.dtype)} sent, "
                             f"{types_pb2.DataType.Name(want.dtype)} expected")
        if not tf.TensorShape(want.tensor_shape).is_compatible_with(tf.TensorShape(proto.tensor_shape)):
            raise ValueError(f"input {key!r}: shape {tf.TensorShape(proto.tensor_shape)} does not fit "
                             f"{tf.TensorShape(want.tensor_shape)}")


def _predict(loaded, request):
    """Serve ``request`` the way TF Serving does: TensorProtos to tensors, call the signature."""
    sig = loaded.signatures[request.model_spec.signature_name]
    return {k: v.numpy() for k, v in sig(**{k: tf.constant(tf.make_ndarray(p))
                                             for k, p in request.inputs.items()}).items()}


@pytest.mark.parametrize("name", NAMES)
def test_predict_request_is_accepted(name):
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    info, loaded = _info(name), _saved_model(name)
    data_shape = tuple(info["data_shape"])

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["n"].CopyFrom(tf.make_tensor_proto(4, dtype=tf.int32))
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(0, dtype=tf.int64))
    # the request's keys and dtypes are the signature's, both as TF Serving reads
    # it (the SignatureDef) and as the loaded function declares it
    _check_request_like_tf_serving(request, _signature_def(name, "serving_default"))
    spec = loaded.signatures["serving_default"].structured_input_signature[1]
    assert set(spec) == set(request.inputs)
    for key, proto in request.inputs.items():
        assert tf.dtypes.as_dtype(proto.dtype) == spec[key].dtype, key
        assert spec[key].shape.is_compatible_with(tf.TensorShape(proto.tensor_shape)), key
    out = _predict(loaded, request)
    assert set(out) == {"samples"}
    assert out["samples"].shape == (4, *data_shape) and out["samples"].dtype == np.float32
    assert np.all(np.isfinite(out["samples"]))

    # the reply travels back as a TensorProto with the same shape and dtype
    response = predict_pb2.PredictResponse()
    response.outputs["samples"].CopyFrom(tf.make_tensor_proto(out["samples"]))
    assert response.outputs["samples"].dtype == types_pb2.DT_FLOAT
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["samples"]), out["samples"])

    # a common client mistake, caught by the same checks: make_tensor_proto(0) is int32
    wrong = predict_pb2.PredictRequest()
    wrong.CopyFrom(request)
    wrong.inputs["seed"].CopyFrom(tf.make_tensor_proto(0))
    with pytest.raises(ValueError, match="'seed': DT_INT32 sent, DT_INT64 expected"):
        _check_request_like_tf_serving(wrong, _signature_def(name, "serving_default"))
    missing = predict_pb2.PredictRequest()
    missing.inputs["n"].CopyFrom(tf.make_tensor_proto(4, dtype=tf.int32))
    with pytest.raises(ValueError, match="inputs"):
        _check_request_like_tf_serving(missing, _signature_def(name, "serving_default"))

    # generate(z) and any extra endpoint (IML's log_prob), from the SignatureDef alone
    for sig_name in [s for s in info["signatures"] if s != "serving_default"]:
        signature_def = _signature_def(name, sig_name)
        req = predict_pb2.PredictRequest()
        req.model_spec.name = name
        req.model_spec.signature_name = sig_name
        for key, tensor_info in signature_def.inputs.items():
            shape = [3 if d.size == -1 else d.size for d in tensor_info.tensor_shape.dim]
            value = np.random.default_rng(1).uniform(size=shape)
            req.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=tf.dtypes.as_dtype(tensor_info.dtype)))
        _check_request_like_tf_serving(req, signature_def)
        out = _predict(loaded, req)
        assert set(out) == set(signature_def.outputs), sig_name
        for key, tensor_info in signature_def.outputs.items():
            want = tuple(3 if d.size == -1 else d.size for d in tensor_info.tensor_shape.dim)
            assert out[key].shape == want and out[key].dtype == tf.dtypes.as_dtype(tensor_info.dtype), key


def _rest_to_tensors(body: dict, signature_def) -> dict:
    """TF Serving's REST ``:predict`` columnar form (``{"signature_name": ...,
    "inputs": {...}}``): each JSON value becomes a tensor of the input's dtype."""
    assert set(body["inputs"]) == set(signature_def.inputs)
    return {k: tf.constant(v, dtype=tf.dtypes.as_dtype(signature_def.inputs[k].dtype))
            for k, v in body["inputs"].items()}


@pytest.mark.parametrize("name", NAMES[:2])
def test_rest_json_request_is_accepted(name):
    """The request bodies docs/serving.md shows, as JSON text, on two entries."""
    info, loaded = _info(name), _saved_model(name)
    sample_body = json.loads('{"signature_name": "serving_default", "inputs": {"n": 4, "seed": 0}}')
    out = loaded.signatures["serving_default"](**_rest_to_tensors(
        sample_body, _signature_def(name, "serving_default")))["samples"]
    assert out.shape == (4, *info["data_shape"]) and out.dtype == tf.float32
    z = [[0.0] * info["latent_dim"]] * 2
    generate_body = json.loads(json.dumps({"signature_name": "generate", "inputs": {"z": z}}))
    x = loaded.signatures["generate"](**_rest_to_tensors(generate_body, _signature_def(name, "generate")))["x"]
    assert x.shape == (2, *info["data_shape"]) and x.dtype == tf.float32


# ---- refused requests -------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_signature_refuses_n_outside_limits(name):
    limit = _info(name)["max_samples"]
    serve = tf.saved_model.load(_export_dir(name)).signatures["serving_default"]
    seed = tf.constant(0, tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"n must be <= {limit}"):
        serve(n=tf.constant(limit + 1, tf.int32), seed=seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="n must be <= "):
        serve(n=tf.constant(MAX_INT32, tf.int32), seed=seed)  # refused before any allocation
    with pytest.raises(tf.errors.InvalidArgumentError, match="n must be >= 0"):
        serve(n=tf.constant(-1, tf.int32), seed=seed)
    # the process and the model survive a refusal, and n = 0 is a valid empty request
    assert serve(n=tf.constant(2), seed=seed)["samples"].shape[0] == 2
    assert serve(n=tf.constant(0), seed=seed)["samples"].shape == (0, *_info(name)["data_shape"])


# ---- docs/serving.md stays true -----------------------------------------------------------------

def test_docs_show_this_exports_listing_and_samples():
    """The ``saved_model_cli`` output and the sample values docs/serving.md shows
    for gram-ring8 are what its export gives today."""
    if "gram-ring8" not in NAMES:
        pytest.skip("gram-ring8 is not in this zoo")
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    shown = doc.split("$ saved_model_cli show --all --dir saved_models/gram-ring8/saved_model\n", 1)[1]
    shown = shown.split("```", 1)[0]
    assert parse_show_all(shown) == parse_show_all(_show_all_in_process(_export_dir("gram-ring8")))
    samples = _saved_model("gram-ring8").signatures["serving_default"](
        n=tf.constant(4), seed=tf.constant(0, tf.int64))["samples"].numpy()
    shown_values = json.loads(re.search(r"rounded\):\s*`(\[\[.*?\]\])`", doc, re.S).group(1))
    np.testing.assert_allclose(samples, shown_values, atol=1e-4)
