"""The SVG logo check (acumos_portal/svg.py): an SVG is parsed and walked against an allow-list. Logos
as editors write them pass; everything that could run or fetch is refused, naming what it found. The
security review's bypasses of the old regex are here, each refused (the form that uses this check is
tested in tests/pages/test_manage.py)."""

from __future__ import annotations

import pytest

from acumos_portal.svg import NotSvg, UnsafeSvg, check_svg

HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 24 24">'

PLAIN = f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- the mark -->\n{HEAD}<title>A</title><path d="M0 0h24z"/></svg>'
# What Illustrator writes: a <style> sheet in CDATA, classes, data-name labels, xml:space, enable-background.
ILLUSTRATOR = """<?xml version="1.0" encoding="utf-8"?>
<svg version="1.1" id="Layer_1" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" x="0px"
     y="0px" viewBox="0 0 48 48" style="enable-background:new 0 0 48 48;" xml:space="preserve">
<style type="text/css"><![CDATA[
  .st0{fill:#0B5FFF;}
  .st1{fill:url(#grad);stroke:#FFFFFF;stroke-width:2;} /* a gradient of this file */
]]></style>
<g data-name="Layer 1">
  <linearGradient id="grad" gradientUnits="userSpaceOnUse" x1="0" y1="0" x2="48" y2="48">
    <stop offset="0" style="stop-color:#0B5FFF"/><stop offset="1" style="stop-color:#7C3AED"/>
  </linearGradient>
  <circle class="st0" cx="24" cy="24" r="22"/><rect class="st1" x="12" y="12" width="24" height="24" rx="4"/>
</g>
</svg>"""
# What Inkscape writes: its own namespaces on elements and attributes, and RDF metadata.
INKSCAPE = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:svg="http://www.w3.org/2000/svg"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
     xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
     xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:cc="http://creativecommons.org/ns#"
     xmlns:dc="http://purl.org/dc/elements/1.1/" width="64" height="64" sodipodi:docname="logo.svg">
  <sodipodi:namedview id="namedview1" pagecolor="#ffffff" inkscape:zoom="8"/>
  <metadata><rdf:RDF><cc:Work rdf:about=""><dc:format>image/svg+xml</dc:format></cc:Work></rdf:RDF></metadata>
  <g inkscape:label="Layer 1" inkscape:groupmode="layer" id="layer1">
    <path style="fill:#ff6600;stroke:none" d="M 8,8 H 56 V 56 H 8 Z" sodipodi:nodetypes="ccccc"/>
  </g>
</svg>"""
# Masks, clip paths, filters, a symbol used by reference, and animations of how it looks.
EFFECTS = f"""{HEAD}<defs>
  <clipPath id="clip"><rect width="24" height="24" rx="6"/></clipPath>
  <mask id="fade"><rect width="24" height="24" fill="white"/></mask>
  <filter id="shadow"><feGaussianBlur in="SourceAlpha" stdDeviation="1"/><feOffset dx="1" dy="1" result="o"/>
    <feMerge><feMergeNode in="o"/><feMergeNode in="SourceGraphic"/></feMerge></filter>
  <symbol id="dot" viewBox="0 0 2 2"><circle cx="1" cy="1" r="1"/></symbol>
</defs>
<g clip-path="url(#clip)" mask="url('#fade')" filter="url(#shadow)">
  <use href="#dot" width="4" height="4"/><use xlink:href="#dot" x="8" width="4" height="4"/>
  <circle r="3" cx="12" cy="12"><animate attributeName="opacity" values="1;.4;1" dur="2s" repeatCount="9"/></circle>
  <rect width="4" height="4"><animateTransform attributeName="transform" type="rotate" to="360" dur="4s"/></rect>
  <a href="#dot"><text x="2" y="20" font-family="Inter, sans-serif">Acme</text></a>
</g></svg>"""


@pytest.mark.parametrize("logo", [PLAIN, ILLUSTRATOR, INKSCAPE, EFFECTS], ids=["plain", "illustrator", "inkscape",
                                                                               "effects"])
def test_a_logo_as_editors_write_it_is_accepted(logo):
    check_svg(logo.encode())  # raises if refused


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>"""

# The review's four bypasses of the old regex, then the billion laughs, then what else runs or fetches.
REFUSED = {
    "entity-encoded javascript: link": (
        f'{HEAD}<a xlink:href="javascript&#58;alert(document.domain)"><rect width="9" height="9"/></a></svg>',
        '<a> (line 1) has xlink:href="javascript:alert(document.domain)"; a link or reference may only point inside '
        'the file ("#id").'),
    "foreignObject with an iframe srcdoc": (
        f'{HEAD}<foreignObject width="9" height="9"><iframe xmlns="http://www.w3.org/1999/xhtml" '
        'srcdoc="&lt;script&gt;alert(document.domain)&lt;/script&gt;"/></foreignObject></svg>',
        "<foreignObject> (line 1) is not an element a logo may have"),
    "SMIL set of an event handler": (
        f'{HEAD}<rect width="9" height="9"><set attributeName="onmouseover" to="alert(1)"/></rect></svg>',
        '<set> (line 1) animates attributeName="onmouseover"; an animation may change how the logo looks, never an '
        "event handler, a link or a style."),
    "image from a tracker": (
        f'{HEAD}<image href="https://tracker.example/x.png" width="9" height="9"/></svg>',
        "<image> (line 1) is not an element a logo may have"),
    "billion laughs": (BILLION_LAUGHS, "it has a DOCTYPE (a DTD); remove the <!DOCTYPE …> line"),
    "a script": (f"{HEAD}\n<script>alert(1)</script></svg>", "<script> (line 2) is not an element a logo may have"),
    "a script in the XHTML namespace, inside Inkscape's markup": (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd">'
        '<sodipodi:namedview><h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(1)</h:script></sodipodi:namedview>'
        "</svg>",
        "<script> (namespace http://www.w3.org/1999/xhtml) (line 1) is not an element a logo may have"),
    "an event handler": (f'{HEAD}<rect onclick="alert(1)"/></svg>', "<rect> (line 1) has the event handler onclick"),
    "an event handler on the root": ('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
                                     "<svg> (line 1) has the event handler onload"),
    "an animated link": (f'{HEAD}<a href="#x"><animate attributeName="href" to="javascript:alert(1)"/></a></svg>',
                         'animates attributeName="href"'),
    "an animated xlink:href": (f'{HEAD}<a href="#x"><set attributeName="xlink:href" to="https://evil.example/"/>'
                               "</a></svg>", 'animates attributeName="xlink:href"'),
    "an external use": (f'{HEAD}<use href="https://evil.example/sprite.svg#icon"/></svg>',
                        'has href="https://evil.example/sprite.svg#icon"; a link or reference may only point inside'),
    "a data: use": (f'{HEAD}<use href="data:image/svg+xml,&lt;svg onload=alert(1)&gt;"/></svg>',
                    "a link or reference may only point inside the file"),
    "feImage": (f'{HEAD}<filter id="f"><feImage href="https://tracker.example/x.png"/></filter></svg>',
                "<feImage> (line 1) is not an element a logo may have"),
    "a style sheet from elsewhere": ('<?xml-stylesheet href="https://tracker.example/x.css"?>\n' + PLAIN.split("\n")[2],
                                     'the processing instruction <?xml-stylesheet href="https://tracker.example/x.css"?>'),
    "an @import": (f"{HEAD}<style>@import url(https://tracker.example/x.css);</style></svg>", "an at-rule (@…)"),
    "a url() to elsewhere in <style>": (f"{HEAD}<style>.a{{fill:url(https://tracker.example/x.svg#p)}}</style></svg>",
                                        "<style> (line 1) fill has a url() outside the file"),
    "a url() to elsewhere in style=": (f'{HEAD}<rect style="cursor: url(//tracker.example/c.png), auto"/></svg>',
                                       "<rect> (line 1) style cursor has a url() outside the file"),
    "a url() to elsewhere in an attribute": (f'{HEAD}<rect fill="url(https://tracker.example/p.svg#p)"/></svg>',
                                             "<rect> (line 1) fill has a url() outside the file"),
    "a CSS escape hiding url(": (f'{HEAD}<rect style="fill: u\\72l(https://tracker.example/p)"/></svg>',
                                 "a CSS escape (\\)"),
    "image-set, which fetches without url(": (
        f'{HEAD}<style>.a{{fill:image-set("https://tracker.example/x.png" 1x)}}</style></svg>', "uses image-set()"),
    "a property that is not a presentation one": (f'{HEAD}<rect style="background-image: none"/></svg>',
                                                  'sets "background-image: none"'),
    "xml:base": (f'{HEAD}<g xml:base="https://evil.example/"><use href="#a"/></g></svg>',
                 "<g> (line 1) has the attribute xml:base, which a logo may not have"),
    "an external entity": ('<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                           '<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>', "DOCTYPE"),
    "a DOCTYPE alone": ('<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'
                        f"{HEAD}</svg>", "DOCTYPE"),
    "no SVG namespace": ('<svg viewBox="0 0 1 1"><rect/></svg>', "its <svg> is not in the SVG namespace"),
}


@pytest.mark.parametrize(("svg", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_what_could_run_or_fetch_is_refused_and_named(svg, reason):
    with pytest.raises(UnsafeSvg) as refused:
        check_svg(svg.encode())
    assert reason in str(refused.value)
    assert not isinstance(refused.value, NotSvg)  # an SVG, refused for what it holds


@pytest.mark.parametrize(("data", "reason"), [
    (b"GIF89a" + b"\x00" * 40, "not well-formed XML"),
    (b"<html><body>hi</body></html>", "its root element is <html>"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><rect></svg>', "not well-formed XML: mismatched tag: line 1"),
])
def test_what_is_not_an_svg_at_all_says_so(data, reason):
    with pytest.raises(NotSvg) as refused:
        check_svg(data)
    assert reason in str(refused.value)
