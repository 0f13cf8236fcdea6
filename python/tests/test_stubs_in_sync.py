"""The committed pegaflow/_proto/ must be exactly what scripts/generate_stubs.py makes from the .proto files."""

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

PYTHON_ROOT = Path(__file__).resolve().parents[1]
COMMITTED = PYTHON_ROOT / "pegaflow" / "_proto"
FIX = "run python/scripts/generate_stubs.py"

pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is not installed: cannot regenerate the stubs to compare")


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_stubs", PYTHON_ROOT / "scripts" / "generate_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_committed_stubs_match_the_proto_files(tmp_path):
    fresh = tmp_path / "_proto"
    _load_generator().generate(fresh)

    committed, regenerated = _files(COMMITTED), _files(fresh)
    # The tool version is in the output too: a different grpcio-tools also shows up as a difference.
    tools = f"compared with grpcio-tools {importlib.metadata.version('grpcio-tools')}"
    assert sorted(committed) == sorted(regenerated), f"generated file set differs ({tools}): {FIX}"
    for name in regenerated:
        assert committed[name] == regenerated[name], f"pegaflow/_proto/{name} is stale ({tools}): {FIX}"
