"""Which Debian mirror and suite this host's apt uses, read from /etc/apt (both formats).

The debian guest is bootstrapped from that mirror and no other host, so it works wherever
apt works (the machines here reach only the Debian archive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.guests.debs import DebError

APT_ETC = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` line or one deb822 stanza, reduced to what a bootstrap needs."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str  # the file it came from, for error messages


def read_sources(etc: Path = APT_ETC) -> list[AptSource]:
    """Every enabled source in sources.list, sources.list.d/*.list and *.sources, in apt's order."""
    found: list[AptSource] = []
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            found += _parse_deb822(text, str(path))
        elif path.name == "sources.list" or path.suffix == ".list":
            found += _parse_one_line(text, str(path))
    return found


def _parse_one_line(text: str, origin: str) -> list[AptSource]:
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # [arch=amd64 signed-by=...] options
        words = line.split()
        if len(words) >= 3 and words[0] in ("deb", "deb-src"):
            found.append(AptSource((words[0],), (words[1],), (words[2],), tuple(words[3:]), origin))
    return found


def _parse_deb822(text: str, origin: str) -> list[AptSource]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, _, value = raw.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if not fields or fields.get("enabled", "yes").lower() == "no":
            continue
        found.append(
            AptSource(
                tuple(fields.get("types", "").split()),
                tuple(fields.get("uris", "").split()),
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
                origin,
            )
        )
    return found


def host_codename(os_release: Path = OS_RELEASE) -> str:
    try:
        text = os_release.read_text()
    except OSError:
        raise DebError(
            f"{os_release}: cannot read it: the debian guest needs a Debian host"
        ) from None
    match = re.search(r'^VERSION_CODENAME="?([a-z]+)"?$', text, re.MULTILINE)
    if not match:
        raise DebError(f"{os_release}: no VERSION_CODENAME: the debian guest needs a Debian host")
    return match.group(1)


def debian_mirror(
    codename: str | None = None, etc: Path = APT_ETC, os_release: Path = OS_RELEASE
) -> tuple[str, str]:
    """(mirror URI, suite): the first ``deb`` source with the host's release and ``main``."""
    suite = codename or host_codename(os_release)
    for source in read_sources(etc):
        wanted = suite in source.suites and "main" in source.components
        if "deb" in source.types and wanted and source.uris:
            return source.uris[0].rstrip("/"), suite
    raise DebError(
        f"{etc}: no enabled 'deb' source for suite {suite!r} with component 'main'; "
        "the debian guest is bootstrapped from the mirror apt uses"
    )
