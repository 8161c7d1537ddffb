"""A CalDAV server's XML answer is hostile: entities are never expanded, files never read.

``caldav_xml.parse`` builds the tree with ElementTree's C parser after a guard pass; it must
refuse what defusedxml (the reference, its defaults) refuses and build the same tree otherwise.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.providers.base import BadData
from core.providers.caldav_xml import EntitiesRefused, parse

PROBE_ANSWER = (
    b'<?xml version="1.0"?>\n<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    b'xmlns:CS="http://calendarserver.org/ns/"><response><href>/alice/cal-1/</href><propstat><prop>'
    b"<resourcetype><collection /><C:calendar /></resourcetype><displayname>Work &amp; more &#x263A;</displayname>"
    b"<current-user-privilege-set><privilege><read /></privilege><privilege><write /></privilege></current-user-privilege-set>"
    b'<CS:getctag>"abc"</CS:getctag></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>'
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<multistatus xmlns="DAV:"><response><href>&lol9;</href></response></multistatus>"""

HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "quadratic blowup": (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "'
        + b"x" * 50_000
        + b'">]><multistatus xmlns="DAV:"><href>'
        + b"&a;" * 50_000
        + b"</href></multistatus>"
    ),
    "external file": b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY f SYSTEM "file:///etc/passwd">]><multistatus xmlns="DAV:"><href>&f;</href></multistatus>',
    "external over http": (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY f SYSTEM "http://127.0.0.1:9/x">]><multistatus xmlns="DAV:">&f;</multistatus>'
    ),
    "parameter entity": b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><multistatus xmlns="DAV:"/>',
    "unparsed entity": b'<?xml version="1.0"?><!DOCTYPE m [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "y" NDATA n>]><multistatus xmlns="DAV:"/>',
    "declared, unused": b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "harmless">]><multistatus xmlns="DAV:"/>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_an_answer_declaring_entities_is_refused_at_once_and_expands_nothing(name):
    started = time.monotonic()
    with pytest.raises(EntitiesRefused):
        parse(HOSTILE[name])
    assert time.monotonic() - started < 1.0
    with pytest.raises(DefusedXmlException):  # the reference refuses it too
        defused_fromstring(HOSTILE[name])


def test_a_provider_reads_a_hostile_multistatus_as_bad_data_naming_no_file(tmp_path):
    import requests

    from core.http import HttpClient
    from core.providers.caldav import CalDAVProvider

    provider = CalDAVProvider({"server_url": "https://dav.example.com/", "account": "a"}, {"password": "p"}, HttpClient())
    for name, body in HOSTILE.items():
        response = requests.Response()
        response.status_code, response._content = 207, body
        response.request = requests.Request("PROPFIND", "https://dav.example.com/cal/").prepare()
        with pytest.raises(BadData, match="XML that cannot be read: EntitiesRefused") as info:
            provider._multistatus(response)
        assert "root:" not in str(info.value) and "passwd" not in info.value.reason, name


def test_a_real_answer_is_the_tree_defusedxml_builds():
    ours, reference = parse(PROBE_ANSWER), defused_fromstring(PROBE_ANSWER)
    assert ET.tostring(ours) == ET.tostring(reference)
    assert ours.find(".//{DAV:}displayname").text == "Work & more \u263a"


def test_a_doctype_without_entities_is_read_as_defusedxml_reads_it():
    body = b'<?xml version="1.0"?><!DOCTYPE multistatus SYSTEM "http://127.0.0.1:9/dav.dtd"><multistatus xmlns="DAV:"/>'
    assert ET.tostring(parse(body)) == ET.tostring(defused_fromstring(body))


def test_broken_xml_is_refused_like_any_unreadable_answer():
    with pytest.raises(ET.ParseError):
        parse(b"<multistatus xmlns='DAV:'><response></multistatus>")


_NAMES = st.sampled_from(["response", "href", "prop", "getetag", "x-y", "a.b"])
_NS = st.sampled_from(["DAV:", "urn:ietf:params:xml:ns:caldav", "http://calendarserver.org/ns/", ""])
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"), max_size=20)


@st.composite
def _trees(draw, depth=0):
    ns, name = draw(_NS), draw(_NAMES)
    element = ET.Element(f"{{{ns}}}{name}" if ns else name, {draw(_NAMES): draw(_TEXT) for _ in range(draw(st.integers(0, 2)))})
    element.text = draw(_TEXT) or None
    if depth < 3:
        for _ in range(draw(st.integers(0, 3))):
            sub = draw(_trees(depth=depth + 1))
            sub.tail = draw(_TEXT) or None
            element.append(sub)
    return element


_PROLOGUES = st.sampled_from(
    [
        b"",
        b'<?xml version="1.0" encoding="utf-8"?>\n',
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "x.dtd">',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ELEMENT r ANY>]>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "expanded">]>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/hostname">]>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ATTLIST r a CDATA "default">]>',
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_trees(), prologue=_PROLOGUES)
def test_parse_refuses_what_defusedxml_refuses_and_builds_the_same_tree_otherwise(tree, prologue):
    data = prologue + ET.tostring(tree)
    try:
        reference = defused_fromstring(data)
    except DefusedXmlException:
        with pytest.raises(EntitiesRefused):
            parse(data)
        return
    assert ET.tostring(parse(data)) == ET.tostring(reference)
