"""The boto3 / HTTP wire layer: the botocore model, the dispatcher, the in-process mock and `fastkin serve`.

Everything here needs the `boto` or `server` extra (botocore); the core layer never imports it."""
