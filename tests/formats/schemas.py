"""The official ALTO 4.4 and PAGE 2019 schemas, loaded offline from tests/data/xsd."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

XSD = Path(__file__).resolve().parents[1] / "data" / "xsd"
_XLINK_URL = "http://www.loc.gov/standards/xlink/xlink.xsd"


class _Vendored(etree.Resolver):  # type: ignore[misc]
    """ALTO imports xlink.xsd by its loc.gov URL: serve the vendored copy instead."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        if system_url == _XLINK_URL:
            return self.resolve_filename(str(XSD / "xlink.xsd"), context)
        return None


@cache
def schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_Vendored())
    return etree.XMLSchema(etree.parse(str(XSD / name), parser))


def validate(xml: str, name: str) -> etree._ElementTree:
    """``xml`` parsed (without network) and checked against the schema ``name``."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    tree = etree.ElementTree(etree.fromstring(xml.encode(), parser))
    checker = schema(name)
    assert checker.validate(tree), "\n".join(str(e) for e in checker.error_log)
    return tree
