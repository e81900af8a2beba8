"""Build the DCAT-AP 3.0 catalog of the shared datasets as an RDF graph.

Every dataset in force is described. An open one (its contract declares `hubPublicRelease`)
has public access rights and two distributions, its released aggregates as CSV and JSON; a
restricted one is metadata only, with non-public access rights and where to ask for access.
No column, row or count of a restricted dataset appears here.

Every value node is typed with the class DCAT-AP's strict shapes expect (foaf:Agent,
vcard:Kind, dct:LicenseDocument...): harvesters such as ckanext-dcat and data.europa.eu
read the types, and the strict shape file refuses an untyped publisher.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import quote

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from contracts import Contract

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU = "http://publications.europa.eu/resource/authority/"
ACCESS_RIGHT = Namespace(EU + "access-right/")
FREQUENCY = Namespace(EU + "frequency/")
FILE_TYPE = Namespace(EU + "file-type/")
IANA = Namespace("http://www.iana.org/assignments/media-types/")
LOCAL_AUTHORITY = URIRef("http://purl.org/adms/publishertype/LocalAuthority")
PREFIXES = (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("vcard", VCARD),
            ("skos", SKOS), ("rdfs", RDFS), ("xsd", XSD))
# The released aggregates of an open dataset, as GET /open/datasets/{id} serves them.
FORMATS = (("csv", "text/csv", "CSV"), ("json", "application/json", "JSON"))
# Minutes between runs -> the EU frequency vocabulary's code for a cron run that often.
EVERY_MINUTES = {1: "1MIN", 5: "5MIN", 10: "10MIN", 15: "15MIN", 30: "30MIN"}


@dataclass(frozen=True)
class CatalogFacts:
    """What the graph says beyond the contracts: where the hub is, who publishes, under
    which licence, and per open dataset its time span and last publication."""

    base_url: str
    publisher: str
    licence: str
    temporal: dict[str, tuple[date, date]] = field(default_factory=dict)
    modified: dict[str, datetime] = field(default_factory=dict)


def catalog_graph(contracts: Iterable[Contract], facts: CatalogFacts) -> Graph:
    """The catalog node, its publisher and every dataset (in id order)."""
    g = _graph()
    base = facts.base_url.rstrip("/")
    catalog = URIRef(f"{base}/open/catalog")
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Literal(f"{facts.publisher}: shared city datasets", lang="en")))
    g.add((catalog, DCTERMS.description, Literal(
        "Every dataset the city's departments share through the Civic Data Hub: open ones "
        "as k-anonymous aggregates anyone may download, restricted ones as metadata with "
        "the way to ask for access.", lang="en")))
    g.add((catalog, DCTERMS.publisher, _agent(g, f"{base}/open/catalog#publisher",
                                              facts.publisher)))
    g.add((catalog, FOAF.homepage, _document(g, f"{base}/")))
    g.add((catalog, DCTERMS.license, _licence(g, facts.licence)))
    for contract in sorted(contracts, key=lambda c: c.dataset_id):
        if not contract.retired:
            g.add((catalog, DCAT.dataset, _dataset(g, contract, base, facts)))
    return g


def _graph() -> Graph:
    g = Graph()
    for prefix, namespace in PREFIXES:
        g.bind(prefix, namespace)
    return g


def _dataset(g: Graph, contract: Contract, base: str, facts: CatalogFacts) -> URIRef:
    node = URIRef(f"{base}/open/catalog#{quote(contract.dataset_id)}")
    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTERMS.identifier, Literal(contract.dataset_id)))
    g.add((node, DCTERMS.title, Literal(contract.title, lang="en")))
    g.add((node, DCTERMS.description, Literal(contract.description or contract.title,
                                              lang="en")))
    g.add((node, DCAT.keyword, Literal(contract.department.replace("_", " "), lang="en")))
    g.add((node, DCTERMS.publisher, _department(g, base, contract.department)))
    g.add((node, DCAT.contactPoint, _contact(g, base, contract.department)))
    g.add((node, DCTERMS.conformsTo, _standard(g, base, contract)))
    frequency = accrual_frequency(contract.source.schedule if contract.source else None)
    if frequency:
        g.add((node, DCTERMS.accrualPeriodicity, _typed(g, FREQUENCY[frequency],
                                                        DCTERMS.Frequency)))
    if contract.open:
        _open_parts(g, node, contract, base, facts)
    else:
        _restricted_parts(g, node, contract, base)
    return node


def _open_parts(g: Graph, node: URIRef, contract: Contract, base: str,
                facts: CatalogFacts) -> None:
    g.add((node, DCTERMS.accessRights, _rights(g, ACCESS_RIGHT.PUBLIC)))
    g.add((node, DCAT.landingPage, _document(g, f"{base}/open/datasets/{contract.dataset_id}")))
    span = facts.temporal.get(contract.dataset_id)
    if span is not None:
        # Named, not blank: the official JSON-LD context reads dct:temporal as an @id, and
        # a blank node there was lost when compacting.
        period = _typed(g, URIRef(f"{node}-period"), DCTERMS.PeriodOfTime)
        g.add((period, DCAT.startDate, Literal(span[0], datatype=XSD.date)))
        g.add((period, DCAT.endDate, Literal(span[1], datatype=XSD.date)))
        g.add((node, DCTERMS.temporal, period))
    modified = facts.modified.get(contract.dataset_id)
    if modified is not None:
        g.add((node, DCTERMS.modified, Literal(modified, datatype=XSD.dateTime)))
    for suffix, media, file_type in FORMATS:
        g.add((node, DCAT.distribution, _distribution(g, node, contract, base, facts,
                                                      suffix, media, file_type)))


def _distribution(g: Graph, dataset: URIRef, contract: Contract, base: str,
                  facts: CatalogFacts, suffix: str, media: str, file_type: str) -> URIRef:
    node = URIRef(f"{dataset}-{suffix}")
    # Typed too: the strict shapes check the class of every value, URLs included.
    url = _typed(g, URIRef(f"{base}/open/datasets/{contract.dataset_id}?format={suffix}"),
                 RDFS.Resource)
    g.add((node, RDF.type, DCAT.Distribution))
    g.add((node, DCTERMS.title, Literal(f"{contract.title}: released aggregates ({file_type})",
                                        lang="en")))
    g.add((node, DCAT.accessURL, url))
    g.add((node, DCAT.downloadURL, url))
    g.add((node, DCAT.mediaType, _typed(g, IANA[media], DCTERMS.MediaType)))
    g.add((node, DCTERMS.format, _typed(g, FILE_TYPE[file_type], DCTERMS.MediaTypeOrExtent)))
    g.add((node, DCTERMS.license, _licence(g, facts.licence)))
    g.add((node, DCTERMS.accessRights, _rights(g, ACCESS_RIGHT.PUBLIC)))
    return node


def _restricted_parts(g: Graph, node: URIRef, contract: Contract, base: str) -> None:
    ask = f"{base}/console/requests/new?dataset={quote(contract.dataset_id)}"
    g.add((node, DCTERMS.accessRights, _rights(g, ACCESS_RIGHT.RESTRICTED)))
    # Where to ask, on the page harvesters link to and in the text they show.
    g.add((node, DCAT.landingPage, _document(g, ask)))
    g.add((node, RDFS.comment, Literal(
        f"Restricted to the city's departments: staff ask for access at {ask} (or POST "
        f"{base}/access-requests); anyone may ask for its publication at POST "
        f"{base}/open/feedback.", lang="en")))


def accrual_frequency(cron: str | None) -> str | None:
    """The EU frequency code of a cron schedule (minute hour day month weekday), or None
    when the schedule fits no code (or there is none)."""
    fields = (cron or "").split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    if month != "*":
        return "ANNUAL" if day != "*" else None
    if minute.startswith("*/") and hour == "*":
        return EVERY_MINUTES.get(int(minute[2:])) if minute[2:].isdigit() else None
    if minute.isdigit() and hour == "*":
        return "HOURLY"
    if not (minute.isdigit() and hour.isdigit()):
        return None
    if day != "*":
        return "MONTHLY"
    return "WEEKLY" if weekday != "*" else "DAILY"


def _typed(g: Graph, node: URIRef, kind: URIRef) -> URIRef:
    g.add((node, RDF.type, kind))
    return node


def _agent(g: Graph, uri: str, name: str) -> URIRef:
    node = _typed(g, URIRef(uri), FOAF.Agent)
    g.add((node, FOAF.name, Literal(name, lang="en")))
    kind = _typed(g, LOCAL_AUTHORITY, SKOS.Concept)
    g.add((kind, SKOS.prefLabel, Literal("Local Authority", lang="en")))
    g.add((node, DCTERMS.type, kind))
    return node


def _department(g: Graph, base: str, department: str) -> URIRef:
    return _agent(g, f"{base}/open/catalog#department-{department}",
                  f"Department: {department.replace('_', ' ')}")


def _contact(g: Graph, base: str, department: str) -> URIRef:
    node = _typed(g, URIRef(f"{base}/open/catalog#contact-{department}"), VCARD.Kind)
    g.add((node, VCARD.fn, Literal(f"{department.replace('_', ' ')} data team")))
    g.add((node, VCARD.hasURL, URIRef(f"{base}/open/feedback")))
    return node


def _standard(g: Graph, base: str, contract: Contract) -> URIRef:
    node = _typed(g, URIRef(f"{base}/contracts/{contract.dataset_id}"), DCTERMS.Standard)
    g.add((node, DCTERMS.title, Literal(f"ODCS data contract {contract.dataset_id} "
                                        f"{contract.version}", lang="en")))
    return node


def _licence(g: Graph, uri: str) -> URIRef:
    return _typed(g, URIRef(uri), DCTERMS.LicenseDocument)


def _document(g: Graph, uri: str) -> URIRef:
    return _typed(g, URIRef(uri), FOAF.Document)


def _rights(g: Graph, code: URIRef) -> URIRef:
    # The EU access-right code itself: harvesters map its URI to public / restricted.
    node = _typed(g, code, DCTERMS.RightsStatement)
    g.add((node, RDFS.label, Literal(str(code).rsplit("/", 1)[1].lower(), lang="en")))
    return node
