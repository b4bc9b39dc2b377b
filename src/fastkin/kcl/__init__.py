"""KCL equivalent: the Consumer worker (leases, checkpoints, failover) and its lease stores."""
