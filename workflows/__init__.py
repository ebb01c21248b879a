"""Temporal workflows: AddPeer, RemovePeer, RegionMigration."""
