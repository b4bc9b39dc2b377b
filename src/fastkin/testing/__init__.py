"""Test helpers: the pytest plugin (fixtures), registered by the ``pytest11`` entry point as ``fastkin``."""
