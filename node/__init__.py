"""The AirReplication storage node: region replicas, replication channels, gRPC service."""
