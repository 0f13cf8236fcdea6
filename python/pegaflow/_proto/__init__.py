"""Generated gRPC/protobuf modules. Do not edit: run python/scripts/generate_stubs.py."""
