"""Capacity simulator (scenario, simulator, plot), shard sizing and the demo.

    from fastkin.sim import builtin, run
    result = run(builtin("aws-on-demand-blog"), plot=False)
"""
from .._lazy import lazy_getattr
from .scenario import Scenario, builtin, builtin_names, load_scenario
from .simulator import SimulationResult, run
from .sizing import ShardEstimate, shards_needed

__getattr__ = lazy_getattr(__name__, frozenset({"plot", "demo"}), {})

__all__ = ["run", "SimulationResult", "Scenario", "load_scenario", "builtin", "builtin_names", "shards_needed",
           "ShardEstimate"]
