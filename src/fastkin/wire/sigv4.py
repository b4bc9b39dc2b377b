"""SigV4 verification for ``fastkin serve --credentials``: the signature is recomputed with botocore's signer
over the request as received and compared; failures answer with AWS's authentication errors."""
from __future__ import annotations

import re

from .. import errors as E

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([\w-]+)/([\w-]+)/aws4_request")
_SIGNED = re.compile(r"SignedHeaders=([^,\s]+)")
_SIG = re.compile(r"Signature=([0-9a-f]+)")


def verify(credentials: dict[str, str], scope, headers: dict, body: bytes) -> None:
    """Raise AWS's authentication errors unless the request carries a valid SigV4 signature by one of
    ``credentials`` (access key id -> secret)."""
    auth = headers.get("authorization")
    cred = CREDENTIAL.search(auth) if auth else None
    if not auth:
        raise E.MissingAuthenticationTokenException("Missing Authentication Token")
    if cred is None or not auth.startswith("AWS4-HMAC-SHA256 "):
        raise E.IncompleteSignatureException(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
    akid = cred.group(1)
    secret = credentials.get(akid)
    if secret is None:
        raise E.UnrecognizedClientException("The security token included in the request is invalid.")
    sh, sg = _SIGNED.search(auth), _SIG.search(auth)
    amz_date = headers.get("x-amz-date")
    if sh is None or sg is None or not amz_date:
        raise E.IncompleteSignatureException(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    signed = sh.group(1).split(";")
    host = headers.get("host", "")
    qs = scope.get("query_string", b"").decode()
    url = f"http://{host}{scope.get('raw_path', scope['path'].encode()).decode()}" + (f"?{qs}" if qs else "")
    req = AWSRequest(method=scope["method"], url=url, data=body,
                     headers={k: headers[k] for k in signed if k in headers})
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, secret, headers.get("x-amz-security-token")), cred.group(4), cred.group(3))
    signer._timestamp = amz_date
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != sg.group(1):
        raise E.InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. Check "
            "your AWS Secret Access Key and signing method. Consult the service documentation for details.")


# -- the shape of a request's authentication (always checked unless ``auth_check=False``) --------------------

_QUERY_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date")


def check_present(headers: dict, query: dict[str, str]) -> None:
    """AWS's answers to a request without authentication or with a malformed one (before any signature is
    computed): no Authorization header and no query-string auth, both at once, a header missing its
    Credential/Signature/SignedHeaders or a date header, query-string auth missing a parameter."""
    auth = headers.get("authorization")
    by_query = "X-Amz-Algorithm" in query
    if auth and by_query:
        raise E.InvalidSignatureException(
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.")
    if not auth and not by_query:
        raise E.MissingAuthenticationTokenException("Missing Authentication Token")
    msg = ""
    if auth:
        fields = {}
        for part in re.split(r"[, ]", auth)[1:]:
            if part:
                key, _, value = part.strip().partition("=")
                fields[key] = value
        for name in ("Credential", "Signature", "SignedHeaders"):
            if not fields.get(name):
                msg += f"Authorization header requires '{name}' parameter. "
        if not headers.get("x-amz-date") and not headers.get("date"):
            msg += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        if msg:
            msg += f"Authorization={auth}"
    else:
        for name in _QUERY_PARAMS:
            if not query.get(name):
                msg += f"AWS query-string parameters must include '{name}'. "
        if msg:
            msg += "Re-examine the query-string parameters."
    if msg:
        raise E.IncompleteSignatureException(msg)


def placeholder_auth(region: str = "us-east-1", access_key: str = "AKIDFASTKIN", date: str = "20250101T000000Z",
                     service: str = "kinesis") -> dict[str, str]:
    """Headers of a plausibly signed request (``Authorization`` and ``X-Amz-Date``), for hand-written clients
    of a server that checks only the header's shape (no ``--credentials``): the signature is not computed."""
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{date[:8]}/{region}/{service}/aws4_request, "
                             f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}",
            "X-Amz-Date": date}
