"""Clear node log lines for refused TLS handshakes.

gRPC's C core does the TLS handshake and tells the application nothing when one fails: no
servicer or interceptor runs. All it does is write a line such as `Handshake failed with
error SSL_ERROR_SSL: ...:CERTIFICATE_VERIFY_FAILED: certificate has expired` to file
descriptor 2. So, with TLS on, the node routes that descriptor through a pipe, passes every
line on unchanged, and logs what a failed handshake means. Python's own output (logging,
tracebacks, kill point lines) keeps the original stderr, so none of it waits on the relay.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading

_HANDSHAKE = re.compile(r"Handshake failed with (?:fatal )?error \S+: (.*)")

# The same line comes from either end, so each meaning names "the peer": a client the node
# refused, or a node it called.
_MEANINGS = [
    ("WRONG_VERSION_NUMBER", "the peer spoke plaintext, not TLS"),
    ("HTTP_REQUEST", "the peer spoke plaintext, not TLS"),
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the peer presented no certificate"),
    ("certificate has expired", "the peer's certificate has expired"),
    ("certificate is not yet valid", "the peer's certificate is not valid yet"),
    ("unable to get local issuer", "the peer's certificate is not signed by this node's CA"),
    ("self signed certificate", "the peer's certificate is not signed by this node's CA"),
    ("self-signed certificate", "the peer's certificate is not signed by this node's CA"),
]


# gRPC core writes the handshake line at INFO: these GRPC_VERBOSITY values (any case) drop it,
# and setting another from Python is too late once grpc is imported.
_HIDING_VERBOSITIES = {"ERROR", "NONE"}


def verbosity_hides_handshakes(verbosity: str | None) -> bool:
    """Whether this GRPC_VERBOSITY keeps gRPC core from writing failed handshakes."""
    return verbosity is not None and verbosity.upper() in _HIDING_VERBOSITIES


def explain(line: str) -> str | None:
    """The log line for a gRPC core output line, if it reports a failed TLS handshake."""
    match = _HANDSHAKE.search(line)
    if match is None:
        return None
    reason = match.group(1).rsplit("OPENSSL_internal:", 1)[-1].strip()
    meaning = next((m for needle, m in _MEANINGS if needle in reason), "the handshake failed")
    return f"refused a TLS connection: {meaning} [{reason}]"


def relay_core_stderr(log: logging.Logger) -> None:
    """Send file descriptor 2 through a relay that logs `explain`ed lines on `log`.

    Call before logging is configured, so that Python's handlers get the original stderr.
    """
    original = os.dup(2)
    sys.stderr = os.fdopen(original, "w", buffering=1, errors="backslashreplace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    threading.Thread(target=_relay, args=(read_end, log), name="core-stderr", daemon=True).start()


def _relay(read_end: int, log: logging.Logger) -> None:
    with os.fdopen(read_end, "rb") as lines:
        for raw in lines:
            line = raw.decode(errors="replace")
            sys.stderr.write(line)
            text = explain(line)
            if text is not None:
                log.warning(text)
