import importlib
import sys


def test_package_imports_without_vllm_or_torch():
    sys.modules.pop("pegaflow", None)
    module = importlib.import_module("pegaflow")
    assert module.__version__ == "0.1.0"
    assert "vllm" not in sys.modules
