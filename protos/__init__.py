"""The node gRPC API: air_node.proto and its generated stubs (`python -m protos.generate`)."""
