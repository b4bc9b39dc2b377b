"""The compiled wire paths (fastkin._cy.wire, issue 13) against the Python versions, in-process, same run.

``KinesisApp.handle`` (the server's request handler without the HTTP transport: JSON parse, fast path,
engine, response body) for GetRecords of 10,000 x 100 B records (1 shard, from TRIM_HORIZON, quotas off) and
PutRecords of 500 x 100 B (4 shards, quotas off), with ``fastkin.wire.http._wire`` set to the compiled module
("cy") or to None (the Python functions, "py"); plus the functions alone (records_json; put_records_params
vs put_records_batch; the response body). Rounds alternate py/cy; each figure is the best round's mean.

    PYTHONPATH=src python bench/wire_paths.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import base64
import json
import time

from fastkin.wire import http, model, service
from fastkin.wire.http import KinesisApp

CY = http._wire


def timed(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def compare(name: str, records: int, py, cy, n: int, rounds: int) -> None:
    best = {"py": float("inf"), "cy": float("inf")}
    for _ in range(rounds):
        for label, fn in (("py", py), ("cy", cy)):
            best[label] = min(best[label], timed(fn, n))
    p, c = best["py"], best["cy"]
    print(f"| {name} | {p * 1e3:.3f} ms, {records / p / 1e6:.2f} M rec/s | {c * 1e3:.3f} ms, "
          f"{records / c / 1e6:.2f} M rec/s | {p / c:.1f}x |")


def handle_with(app, wire, headers, body):
    def call():
        http._wire = wire
        st, _, out = app.handle("POST", "/", b"", headers, body)
        assert st == 200, out
    return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    if CY is None:
        raise SystemExit("fastkin._cy.wire is not built (or FASTKIN_NO_EXTENSIONS is set)")
    app = KinesisApp(auth_check=False, quotas=False)
    eng = app.engine
    print("| path | Python | compiled | speed-up |")
    print("|---|---:|---:|---:|")

    # GetRecords 10k x 100 B
    s = eng.create_stream("g", 1)
    for _ in range(20):
        s.put_records([(b"x" * 100, f"k{j}") for j in range(500)])
    it = eng.get_shard_iterator("shardId-000000000000", "TRIM_HORIZON", "g")
    h = {"content-type": "application/x-amz-json-1.1", "x-amz-target": "Kinesis_20131202.GetRecords"}
    body = json.dumps({"ShardIterator": it, "Limit": 10000}).encode()
    http._wire = None
    a = app.handle("POST", "/", b"", h, body)[2]
    http._wire = CY
    assert json.loads(app.handle("POST", "/", b"", h, body)[2])["Records"] == json.loads(a)["Records"]
    compare("GetRecords 10,000 x 100 B, handle()", 10000, handle_with(app, None, h, body),
            handle_with(app, CY, h, body), 10, args.rounds)
    res = eng.get_records(it, 10000)
    assert CY.records_json(res) == service.records_json(res)
    compare("records_json alone", 10000, lambda: service.records_json(res), lambda: CY.records_json(res),
            10, args.rounds)

    # PutRecords 500 x 100 B
    p = eng.create_stream("p", 4)
    h = {"content-type": "application/x-amz-json-1.1", "x-amz-target": "Kinesis_20131202.PutRecords"}
    raw = {"StreamName": "p", "Records": [{"Data": base64.b64encode(b"y" * 100).decode(), "PartitionKey": f"k{j}"}
                                          for j in range(500)]}
    body = json.dumps(raw).encode()
    compare("PutRecords 500 x 100 B, handle()", 500, handle_with(app, None, h, body),
            handle_with(app, CY, h, body), 50, args.rounds)
    shape = http._PUT_RECORDS_SHAPE()
    compare("put_records_params vs put_records_batch", 500, lambda: model.put_records_params(shape, raw, False),
            lambda: CY.put_records_batch(shape, raw), 200, args.rounds)
    r = p.put_records(CY.put_records_batch(shape, raw)[0])
    out = service.put_records_response(type("E", (), {"stream": lambda self, a, b: p})(), model.put_records_params(
        shape, raw, False))
    assert out["FailedRecordCount"] == 0
    recs = r.records

    def py_body():
        return model.json_dumps({"FailedRecordCount": r.failed_record_count, "Records": [
            {"SequenceNumber": x.sequence_number, "ShardId": x.shard_id} for x in recs]})
    assert py_body() == CY.put_records_json(r, False)
    compare("response body (dicts + orjson vs put_records_json)", 500, py_body, lambda: CY.put_records_json(r, False),
            200, args.rounds)
    http._wire = CY


if __name__ == "__main__":
    main()
