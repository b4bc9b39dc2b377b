"""Capacity simulator, shard sizing and the demo."""
