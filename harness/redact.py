"""What may go into tracked files (plan.json, cell.json, results/fleet.json): no absolute host path, user
name or credential. Paths are written relative to the repository, a Docker endpoint as its scheme and host
alias, and error text with home folders, `user@` and the repository's own path taken out.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from .layout import ROOT

USER_AT = re.compile(r"\b[A-Za-z0-9._-]+@(?=[A-Za-z0-9\[])")          # bench@host, ssh://bench@host
HOME = re.compile(r"(/home/|/Users/)[^/\s'\":]+")
ROOT_HOME = re.compile(r"(?<![\w.-])/root(?=[/\s'\":]|$)")


def repo_path(path: Path | str) -> str:
    """A path as tracked files hold it: relative to the repository when inside it, else `<outside>/NAME`."""
    p = Path(os.path.abspath(path))
    try:
        return str(p.relative_to(ROOT)) or "."
    except ValueError:
        return f"<outside>/{p.name}"


def endpoint_alias(endpoint: str | None) -> str | None:
    """`ssh://bench@epyc.example:2222` -> `ssh://epyc.example`; a unix socket keeps only its file name."""
    if not endpoint:
        return endpoint
    if endpoint.startswith("context "):
        return endpoint
    url = urlparse(endpoint)
    if url.scheme == "unix":
        return f"unix://{Path(url.path).name}"
    return f"{url.scheme}://{url.hostname or ''}" if url.scheme else scrub(endpoint)


def scrub(text: str | None) -> str | None:
    """Error text for a tracked file: the repository's path, home folders and `user@` taken out."""
    if not text:
        return text
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    text = HOME.sub(r"\1~", text)
    text = ROOT_HOME.sub("~", text)
    return USER_AT.sub("", text)
