"""Are the real Postgres and Redis this suite's services pass needs reachable?

`python -m tests.support.services` exits 0 when both answer (used by the Makefile).
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parley")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def reachable(url: str, default_port: int) -> bool:
    """A TCP connection to the URL's host and port succeeds within a second."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    ok = reachable(POSTGRES_URL, 5432) and reachable(REDIS_URL, 6379)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
