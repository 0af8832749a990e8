"""`import lmlab` and the entry points stay light: heavy libraries load inside the functions that use them."""

import subprocess
import sys

import pytest

HEAVY = {"torch", "transformers", "tokenizers", "datasets", "matplotlib"}


@pytest.mark.parametrize("module", ["lmlab", "lmlab.cli", "lmlab.config", "lmlab.data.corpus",
                                    "lmlab.data.tokenizer", "lmlab.models", "lmlab.lm.hf"])
def test_import_is_light(module):
    code = f"import sys, {module}\nprint(sorted({HEAVY!r} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", f"{module} imports {out.strip()}"
