"""KPL equivalent: the batching, aggregating, retrying Producer and the KPL aggregation format."""
