"""Generated gRPC stubs; regenerate with tools/gen_proto.py."""
