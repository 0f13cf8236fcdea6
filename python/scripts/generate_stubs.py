#!/usr/bin/env python3
"""Regenerates pegaflow/_proto/ from proto/src/main/proto/pegaflow/*.proto.

The generated modules are committed so users need no grpcio-tools; tests/test_stubs_in_sync.py fails when
they drift from the .proto files. Run after any proto change:

    python3 python/scripts/generate_stubs.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

PYTHON_ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = PYTHON_ROOT.parent / "proto" / "src" / "main" / "proto"
PROTO_PACKAGE = "pegaflow"  # the directory under PROTO_ROOT, also the proto file names' prefix
OUTPUT_DIR = PYTHON_ROOT / "pegaflow" / "_proto"
TARGET_MODULE = "pegaflow._proto"

INIT_TEXT = '''"""Generated gRPC/protobuf modules. Do not edit: run python/scripts/generate_stubs.py."""
'''


def proto_files() -> list[Path]:
    files = sorted((PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))
    if not files:
        raise FileNotFoundError(f"no .proto files under {PROTO_ROOT / PROTO_PACKAGE}")
    return files


def _fix_imports(text: str, file_name: str) -> str:
    # protoc names modules after the proto path (pegaflow/engine.proto -> pegaflow.engine_pb2), but ours live in
    # pegaflow._proto. The proto file names stay "pegaflow/*.proto" so the descriptor pool matches other languages.
    text = re.sub(
        rf"^from {PROTO_PACKAGE} import (\w+_pb2) as ",
        rf"from {TARGET_MODULE} import \1 as ",
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(
        rf"BuildTopDescriptorsAndMessages\(DESCRIPTOR, '{PROTO_PACKAGE}\.(\w+_pb2)'",
        rf"BuildTopDescriptorsAndMessages(DESCRIPTOR, '{TARGET_MODULE}.\1'",
        text,
    )
    if re.search(rf"^(from|import) {PROTO_PACKAGE}[ .](?!_proto)", text, flags=re.MULTILINE):
        raise RuntimeError(f"{file_name}: an import protoc emitted was not rewritten; update _fix_imports")
    return text


def generate(output_dir: Path) -> list[Path]:
    """Writes the generated package into output_dir (created if missing); returns the files written."""
    import grpc_tools
    from grpc_tools import protoc  # lazy: only this script and the sync test need grpcio-tools

    include_dir = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    with tempfile.TemporaryDirectory(prefix="pegaflow-stubs-") as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include_dir}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
        ]
        # protoc resolves the relative file names against -I, so the cwd does not matter.
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"protoc failed with exit code {rc}: {' '.join(args)}")

        output_dir.mkdir(parents=True, exist_ok=True)
        written = []
        init = output_dir / "__init__.py"
        init.write_text(INIT_TEXT)
        written.append(init)
        for generated in sorted((Path(tmp) / PROTO_PACKAGE).iterdir()):
            target = output_dir / generated.name
            target.write_text(_fix_imports(generated.read_text(), generated.name))
            written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help=f"output package dir (default {OUTPUT_DIR})")
    out = parser.parse_args(argv).out
    if out.resolve() == OUTPUT_DIR.resolve() and out.exists():
        shutil.rmtree(out)  # a proto file removed upstream must not leave a stale module behind
    for path in generate(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
