"""The one place secrets are taken out of URLs and text before they are printed, logged or written.

Every URL seedfunnel shows (warehouse, PostgreSQL server, Redis broker, Airflow connection) goes
through ``redact_url``; every message that may quote one (a driver's error, an exception) goes
through ``redact_text`` with the URLs it may hold. The password is replaced by ``***``; the rest
of the URL stays, so a person can still tell which server and database is meant.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
#: The password of any ``scheme://user:password@host`` written in a text.
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    return password or None


def redact_url(url: str | None) -> str:
    """``url`` with its password masked: ``postgresql://u:***@host/db``. Unparseable: masked whole."""
    if not url:
        return ""
    text = str(url)
    try:
        parts = urlsplit(text)
        has_password = parts.password is not None
    except ValueError:
        return "<unparseable URL>"
    if not has_password:
        return text
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()


def redact_text(text: str, *urls: str | None) -> str:
    """``text`` with every URL of ``urls`` shown redacted and each one's password masked wherever
    else it appears (as written, or percent-encoded, or decoded); and the password of any other
    ``scheme://user:password@host`` in it masked too."""
    out = _CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", str(text))
    for url in urls:
        if not url:
            continue
        out = out.replace(str(url), redact_url(url))
        password = _password(str(url))
        if password:
            for spelling in {password, unquote(password), quote(password, safe="")}:
                if spelling:
                    out = out.replace(spelling, MASK)
    return out
