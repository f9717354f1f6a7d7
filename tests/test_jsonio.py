"""tfgen.jsonio: the files tfgen writes are strict JSON, and recipes read back."""
import json
import math

import numpy as np
import pytest

from tfgen import jsonio


def _strict_loads(text):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_become_strings_that_float_reads_back():
    data = {"threshold": float("inf"), "low": -math.inf, "score": np.float64("nan"),
            "nested": [1.5, (2, float("inf")), {"x": "inf-ish"}], "ok": 3.0, "n": 2}
    text = jsonio.dumps(data)
    assert "Infinity" not in text and "NaN" not in text
    back = _strict_loads(text)
    assert back["threshold"] == "inf" and back["low"] == "-inf" and back["score"] == "nan"
    assert float(back["threshold"]) == math.inf and math.isnan(float(back["score"]))
    assert back["nested"] == [1.5, [2, "inf"], {"x": "inf-ish"}] and back["ok"] == 3.0 and back["n"] == 2
    restored = jsonio.restore(back)
    assert restored["threshold"] == math.inf and restored["low"] == -math.inf
    assert math.isnan(restored["score"]) and restored["nested"][1] == [2, math.inf]
    assert restored["nested"][2] == {"x": "inf-ish"}  # only the exact spellings are numbers
    # Python's own json would have written a token other parsers refuse
    with pytest.raises(ValueError, match="not JSON: Infinity"):
        _strict_loads(json.dumps(data))


def test_dump_writes_the_same_text_to_a_file(tmp_path):
    path = tmp_path / "card.json"
    with open(path, "w") as f:
        jsonio.dump({"a": float("-inf")}, f, indent=1)
    assert _strict_loads(path.read_text()) == {"a": "-inf"}
