import threading

import pytest

import fastkin


@pytest.mark.parametrize("explicit_hash_keys", [False, True])
def test_threads_lose_and_duplicate_nothing(core_name, explicit_hash_keys):
    eng = fastkin.Engine(core=core_name, quotas=False)
    s = eng.create_stream("s", shard_count=4)
    n_threads, batches = 4, 40
    seen_put = []
    lock = threading.Lock()

    def producer(t):
        mine = []
        for b in range(batches):
            if explicit_hash_keys:       # parsing them runs Python code in the middle of the call
                res = s.put_records([(f"{t}-{b}-{i}".encode(), f"k{t}-{i}", str((2**128 - 1) // 50 * i))
                                     for i in range(50)])
            else:
                res = s.put_records([(f"{t}-{b}-{i}".encode(), f"k{t}-{i}") for i in range(50)])
            mine += [r.sequence_number for r in res]
            mine.append(s.put_record(f"{t}-{b}-single".encode(), f"k{t}").sequence_number)
        with lock:
            seen_put.extend(mine)

    read = {}

    def consumer(shard_id, stop):
        it = s.get_shard_iterator(shard_id, "TRIM_HORIZON")
        got = []
        while True:
            done = stop.is_set()
            r = s.get_records(it)
            got += [(x.sequence_number, x.data) for x in r.records]
            it = r.next_shard_iterator
            if done and not r.records:
                break
        read[shard_id] = got

    stop = threading.Event()
    cons = [threading.Thread(target=consumer, args=(f"shardId-{i:012d}", stop)) for i in range(4)]
    prods = [threading.Thread(target=producer, args=(t,)) for t in range(n_threads)]
    for t in cons + prods:
        t.start()
    for t in prods:
        t.join()
    stop.set()
    for t in cons:
        t.join()
    all_read = [x for v in read.values() for x in v]
    expected = n_threads * batches * 51
    assert len(seen_put) == expected and len(set(seen_put)) == expected
    assert sorted(q for q, _ in all_read) == sorted(seen_put)
    assert len({d for _, d in all_read}) == expected
    for v in read.values():                      # per shard, in sequence order
        assert [int(q) for q, _ in v] == sorted(int(q) for q, _ in v)


def test_control_plane_reads_while_another_thread_reshards():
    eng = fastkin.Engine(quotas=False)
    s = eng.create_stream("s", shard_count=2)
    errors = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                eng.list_shards(stream_name="s")
                eng.describe_stream(stream_name="s")
                s.put_records([(b"x", f"k{i}") for i in range(20)])
            except Exception as exc:      # noqa: BLE001 - the assertion below reports it
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(60):
        x = max(s.open_shards(), key=lambda i: i.end_hash - i.start_hash)
        eng.split_shard(x.shard_id, str((x.start_hash + x.end_hash) // 2), stream_name="s")
    stop.set()
    t.join()
    assert errors == []
    assert len(s.open_shards()) == 62
