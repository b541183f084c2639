"""A CityGML document before it is parsed: its version, from the namespaces it declares, its root
element and its CRS name, read from its first MiB; and the safe-XML rules every pass follows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cim.errors import IngestError
from ingest.citygml.crs import first_srs_name

VERSIONS = {
    "http://www.opengis.net/citygml/1.0": "1.0",
    "http://www.opengis.net/citygml/2.0": "2.0",
    "http://www.opengis.net/citygml/3.0": "3.0",
}
# every parse: no entity resolved, no DTD loaded, no network connection opened
SAFE_PARSING: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
}
HEAD_BYTES = 1 << 20  # how much of a file tells its version and CRS name


@dataclass(frozen=True)
class DocumentHead:
    """What the start of a CityGML document says about the whole."""

    version: str  # the highest CityGML version whose namespace it declares
    root_name: str  # the first element's local name, for the error when it is not CityModel
    crs_name: str | None  # the first srsName


def sniff(head: bytes) -> bool:
    """Whether the start of a file looks like CityGML."""
    return b"<" in head[:512] and any(ns.encode() in head for ns in VERSIONS)


def _text(head: bytes) -> str:
    """The start of a file as text: UTF-16 when it has that byte-order mark, else UTF-8."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    return head.decode("utf-8", errors="ignore")


def _prolog_check(path: Path, head: bytes) -> None:
    """Refuse a DTD (external entities, entity-expansion bombs) before any parsing."""
    text = _text(head)
    prolog = re.sub(r"<\?.*?\?>|<!--.*?-->", "", text, flags=re.DOTALL)
    start = prolog.find("<")
    if start >= 0 and prolog[start:].upper().startswith(("<!DOCTYPE", "<!ENTITY")):
        raise IngestError(
            path,
            "the XML has a document type declaration (<!DOCTYPE>); CityGML needs none, and CIM "
            "refuses it because it can fetch files or URLs or expand entities without bound",
        )


def read_head(path: Path) -> DocumentHead:
    """The version, root name and CRS name of the document at `path`, read without parsing.

    Raises:
        IngestError: a DTD, or no CityGML namespace.
    """
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    _prolog_check(path, head)
    text = _text(head)
    versions = {v for ns, v in VERSIONS.items() if ns in text}
    if not versions:
        raise IngestError(path, "not CityGML: no CityGML 1.0, 2.0 or 3.0 namespace")
    first = re.search(r"<(?![?!])([\w.-]+:)?([\w.-]+)", re.sub(r"<!--.*?-->", "", text, flags=re.S))
    return DocumentHead(
        version=max(versions),
        root_name=first.group(2) if first else "?",
        crs_name=first_srs_name(text),
    )
