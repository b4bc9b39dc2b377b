# A/B helper: with bench/nowire first on PYTHONPATH, a process (e.g. the `fastkin serve` subprocess of
# bench_http.py or wire_http_get.py) answers with the Python wire paths (fastkin.wire.http._wire = None).
import fastkin.wire.http as _h

_h._wire = None
