import importlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]


def test_package_imports_without_vllm_or_torch():
    sys.modules.pop("pegaflow", None)
    module = importlib.import_module("pegaflow")
    assert module.__version__ == "0.1.0"
    assert "vllm" not in sys.modules


@pytest.mark.timeout(240)
def test_the_built_wheel_ships_pegaflow_without_the_test_only_code(tmp_path):
    """``pip install ./python`` installs this wheel: the fake vLLM, the test node launcher and the demo stay out."""
    source = tmp_path / "python"  # a clean copy: setuptools would reuse python/build/ from earlier builds
    shutil.copytree(PYTHON_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", ".*cache", "tests"))
    isolation = []
    if importlib.util.find_spec("setuptools") is not None:
        isolation = ["--no-build-isolation"]  # faster; otherwise pip fetches setuptools from the index
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(tmp_path), str(source)],
        check=True,
        timeout=230,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("pegaflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"pegaflow"}, top
    assert "pegaflow/vllm/connector.py" in names and "pegaflow/_proto/engine_pb2.py" in names
    assert not [n for n in names if "fake" in n or "localnode" in n or n.endswith("vllm/demo.py")], names
