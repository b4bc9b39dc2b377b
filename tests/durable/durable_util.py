"""Helpers shared by the data-directory tests."""
from __future__ import annotations


def shard_records(e, stream: str) -> dict[str, list]:
    """shard id -> every record the stream's shard holds from TRIM_HORIZON (fastkin Record objects), oldest
    first, read with GetRecords (limit 10,000, quotas off) until a page comes back empty."""
    out = {}
    for sh in e.list_shards(stream_name=stream)["Shards"]:
        it = e.get_shard_iterator(sh["ShardId"], "TRIM_HORIZON", stream_name=stream)
        recs: list = []
        while it:
            page = e.get_records(it, limit=10000, quota=False)
            if not page.records:
                break
            recs += page.records
            it = page.next_shard_iterator
        out[sh["ShardId"]] = recs
    return out
