"""KPL equivalent: the batching, aggregating, retrying Producer and the KPL aggregation format."""
from .aggregation import Aggregator, UserRecord, aggregate, deaggregate, is_aggregated
from .producer import Producer, ProducerMetrics, ProducerResult

__all__ = ["Producer", "ProducerResult", "ProducerMetrics", "Aggregator", "UserRecord", "aggregate", "deaggregate",
           "is_aggregated"]
