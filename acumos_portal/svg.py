"""Is an uploaded SVG logo safe to serve? Decided by parsing it and walking every element and attribute
against an allow-list, never by searching its text (entities, CDATA, namespaces and CSS escapes all hide
words from a search).

A logo is a picture: shapes, paths, text, gradients, patterns, clip paths, masks, markers, filters, a
<style> sheet, and animations of how it looks. Anything that runs or fetches is refused, with the element
or attribute named: scripts, <foreignObject> (HTML inside), event handlers (on…), links and references
other than to an element of the same file (href="#id", url(#id)), embedded or linked images, animations
of handlers or links, CSS at-rules, escapes and functions that fetch, processing instructions
(<?xml-stylesheet?>), and any DTD or entity (defusedxml: no entity expansion, no billion laughs).

Elements and attributes of the editors' own namespaces (Inkscape, Sodipodi, RDF and Dublin Core
metadata) are kept: browsers give them no behaviour. Their children are checked like any other."""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
XML = "http://www.w3.org/XML/1998/namespace"
EDITOR_NAMESPACES = {
    "http://www.inkscape.org/namespaces/inkscape": "inkscape",
    "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd": "sodipodi",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://creativecommons.org/ns#": "cc",
}

FILTER_PRIMITIVES = {
    "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite", "feConvolveMatrix", "feDiffuseLighting",
    "feDisplacementMap", "feDistantLight", "feDropShadow", "feFlood", "feFuncA", "feFuncB", "feFuncG", "feFuncR",
    "feGaussianBlur", "feMerge", "feMergeNode", "feMorphology", "feOffset", "fePointLight", "feSpecularLighting",
    "feSpotLight", "feTile", "feTurbulence",
}  # not feImage: it fetches
ANIMATIONS = {"animate", "animateMotion", "animateTransform", "set"}
ELEMENTS = {
    "svg", "g", "defs", "symbol", "use", "switch", "title", "desc", "metadata", "a", "style",
    "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan", "textPath",
    "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker", "filter", "mpath",
} | FILTER_PRIMITIVES | ANIMATIONS

# Attributes that are CSS properties too: their values are checked as CSS (url(), functions, escapes).
PRESENTATION = {
    "alignment-baseline", "baseline-shift", "clip", "clip-path", "clip-rule", "color", "color-interpolation",
    "color-interpolation-filters", "color-rendering", "cursor", "direction", "display", "dominant-baseline",
    "enable-background", "fill", "fill-opacity", "fill-rule", "filter", "flood-color", "flood-opacity", "font",
    "font-family", "font-size", "font-size-adjust", "font-stretch", "font-style", "font-variant", "font-weight",
    "glyph-orientation-horizontal", "glyph-orientation-vertical", "image-rendering", "isolation", "kerning",
    "letter-spacing", "lighting-color", "marker", "marker-end", "marker-mid", "marker-start", "mask", "mix-blend-mode",
    "opacity", "overflow", "paint-order", "pointer-events", "shape-rendering", "stop-color", "stop-opacity", "stroke",
    "stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit",
    "stroke-opacity", "stroke-width", "text-anchor", "text-decoration", "text-rendering", "transform",
    "transform-box", "transform-origin", "unicode-bidi", "vector-effect", "visibility", "word-spacing",
    "writing-mode",
}
GEOMETRY = {
    "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "fr", "width", "height", "d",
    "points", "pathLength", "offset", "dx", "dy", "rotate", "textLength", "lengthAdjust", "startOffset", "method",
    "spacing", "side", "viewBox", "preserveAspectRatio",
}
OTHER_ATTRIBUTES = {
    "id", "class", "lang", "tabindex", "version", "baseProfile", "media", "type", "systemLanguage",
    "requiredFeatures", "requiredExtensions", "gradientUnits", "gradientTransform", "spreadMethod",
    "patternUnits", "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits", "maskContentUnits",
    "filterUnits", "primitiveUnits", "markerUnits", "markerWidth", "markerHeight", "refX", "refY", "orient",
    # filter primitives
    "in", "in2", "result", "stdDeviation", "mode", "values", "operator", "k1", "k2", "k3", "k4", "edgeMode",
    "kernelMatrix", "order", "divisor", "bias", "targetX", "targetY", "preserveAlpha", "surfaceScale",
    "diffuseConstant", "specularConstant", "specularExponent", "kernelUnitLength", "scale", "xChannelSelector",
    "yChannelSelector", "baseFrequency", "numOctaves", "seed", "stitchTiles", "azimuth", "elevation", "z",
    "pointsAtX", "pointsAtY", "pointsAtZ", "limitingConeAngle", "tableValues", "slope", "intercept", "amplitude",
    "exponent", "radius",
    # animations (what they animate: attributeName, checked on its own)
    "attributeName", "attributeType", "begin", "dur", "end", "min", "max", "restart", "repeatCount", "repeatDur",
    "calcMode", "keyTimes", "keySplines", "from", "to", "by", "additive", "accumulate", "path", "keyPoints",
}
# An animation may change how the logo looks, never a handler, a link or a style sheet.
ANIMATABLE = PRESENTATION | GEOMETRY | {"class", "stdDeviation", "values", "offset", "baseFrequency", "scale"}
ANIMATION_VALUES = {"from", "to", "by", "values"}
REFERENCES = {"href", f"{{{XLINK}}}href"}  # only to an element of this file: "#id"
LOCAL_REFERENCE = re.compile(r"#[A-Za-z_][\w.:-]*")
XML_ATTRIBUTES = {f"{{{XML}}}space", f"{{{XML}}}lang"}  # not xml:base, which moves every relative address
XLINK_ATTRIBUTES = {f"{{{XLINK}}}title"}

# CSS, in style="" and <style>: the functions a picture needs, url() only to "#id", no at-rules or escapes.
CSS_FUNCTIONS = {
    "url", "rgb", "rgba", "hsl", "hsla", "hwb", "calc", "min", "max", "clamp", "matrix", "matrix3d", "translate",
    "translatex", "translatey", "translate3d", "rotate", "rotatex", "rotatey", "rotatez", "rotate3d", "scale",
    "scalex", "scaley", "scale3d", "skew", "skewx", "skewy", "perspective", "blur", "brightness", "contrast",
    "drop-shadow", "grayscale", "hue-rotate", "invert", "opacity", "saturate", "sepia", "cubic-bezier", "steps",
}
CSS_PROPERTIES = PRESENTATION | {"font-kerning", "line-height", "text-transform", "white-space", "animation",
                                 "animation-name", "animation-duration", "animation-delay", "animation-timing-function",
                                 "animation-iteration-count", "animation-direction", "animation-fill-mode",
                                 "transition", "mix-blend-mode"}
_CSS_FUNCTION = re.compile(r"([-\w]+)\s*\(")
_CSS_LOCAL_URL = re.compile(r"""url\(\s*(['"]?)#[A-Za-z_][\w.:-]*\1\s*\)""", re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CSS_RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")


class UnsafeSvg(ValueError):
    """Why an SVG is refused, in words for the person who uploaded it."""


class NotSvg(UnsafeSvg):
    """The file is not an SVG at all: not XML, or another kind of document."""


def check_svg(data: bytes) -> None:
    """Raise UnsafeSvg naming the first thing that is not allowed; return if the SVG is safe."""
    root, lines = _parse(data)
    if _split(root.tag)[1] != "svg":
        raise NotSvg(f"its root element is {_name(root.tag)}")
    if root.tag != f"{{{SVG}}}svg":
        raise UnsafeSvg(f'its <svg> is not in the SVG namespace: add xmlns="{SVG}" (browsers draw nothing '
                        "without it).")
    for element in root.iter():
        _check_element(element, lines.get(element))


def _parse(data: bytes) -> tuple[Element, dict]:
    builder = _LineKeepingBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    builder.expat = parser.parser
    try:
        parser.feed(data)
        root = parser.close()
    except DTDForbidden:
        raise UnsafeSvg("it has a DOCTYPE (a DTD); remove the <!DOCTYPE …> line: an SVG needs none.") from None
    except EntitiesForbidden as error:
        raise UnsafeSvg(f"it declares the entity {error.name!r}; entities are not allowed.") from None
    except ExternalReferenceForbidden:
        raise UnsafeSvg("it refers to an external entity; entities are not allowed.") from None
    except ParseError as error:
        raise NotSvg(f"not well-formed XML: {error}") from None
    if builder.instructions:  # before the root too, where no element holds them
        text, line = builder.instructions[0]
        raise UnsafeSvg(f"it has the processing instruction <?{text}?> (line {line}); none is allowed.")
    return root, builder.lines


class _LineKeepingBuilder(TreeBuilder):
    """Notes the line each element starts on, for the error message, and every processing instruction
    (<?xml-stylesheet href=…?> would fetch a style sheet), which ElementTree would otherwise drop."""

    expat = None

    def __init__(self):
        super().__init__()
        self.lines: dict[Element, int] = {}
        self.instructions: list[tuple[str, int]] = []

    def start(self, tag, attrs):
        element = super().start(tag, attrs)
        self.lines[element] = self.expat.CurrentLineNumber
        return element

    def pi(self, target, text=None):
        self.instructions.append((f"{target} {text or ''}".strip(), self.expat.CurrentLineNumber))


def _check_element(element: Element, line: int | None) -> None:
    where = f" (line {line})" if line else ""
    namespace, name = _split(element.tag)
    if namespace in EDITOR_NAMESPACES:
        return  # an editor's own markup: inert (its children are walked like any other)
    if namespace != SVG or name not in ELEMENTS:
        raise UnsafeSvg(f"{_name(element.tag)}{where} is not an element a logo may have (shapes, paths, text, "
                        "gradients, patterns, clip paths, masks, filters, <style> and animations are).")
    if name in ANIMATIONS:
        _check_animation(element, where)
    for attribute, value in element.attrib.items():
        _check_attribute(element.tag, attribute, value, where)
    if name == "style":
        _check_style_sheet(element.text or "", where)


def _check_attribute(tag: str, attribute: str, value: str, where: str) -> None:
    element, shown = _name(tag), _attribute_name(attribute)
    namespace, name = _split(attribute)
    if namespace in EDITOR_NAMESPACES:
        return
    if attribute in REFERENCES:
        if not LOCAL_REFERENCE.fullmatch(value.strip()):
            raise UnsafeSvg(f'{element}{where} has {shown}="{value}"; a link or reference may only point inside the '
                            'file ("#id").')
        return
    if name.lower().startswith("on") and not namespace:
        raise UnsafeSvg(f"{element}{where} has the event handler {shown}; scripts are not allowed.")
    if attribute == "style":
        _check_declarations(value, f"{element}{where} style")
    elif attribute in PRESENTATION or (attribute in ANIMATION_VALUES and _split(tag)[1] in ANIMATIONS):
        _check_css_value(value, f"{element}{where} {shown}")
    elif (attribute in GEOMETRY or attribute in OTHER_ATTRIBUTES or attribute in XML_ATTRIBUTES | XLINK_ATTRIBUTES
          or attribute.startswith("data-")):  # data-name="Layer 1": editors' labels
        if "url(" in value.lower():
            raise UnsafeSvg(f"{element}{where} has url() in {shown}; only presentation attributes may use url(#id).")
    else:
        raise UnsafeSvg(f"{element}{where} has the attribute {shown}, which a logo may not have.")


def _check_animation(element: Element, where: str) -> None:
    target = element.get("attributeName")
    if target is None and _split(element.tag)[1] == "animateMotion":
        return  # it moves the element along a path; it changes no attribute
    if target not in ANIMATABLE:
        raise UnsafeSvg(f'{_name(element.tag)}{where} animates attributeName="{target}"; an animation may change how '
                        "the logo looks, never an event handler, a link or a style.")


def _check_style_sheet(css: str, where: str) -> None:
    css = _CSS_COMMENT.sub("", css)
    if "@" in css or "\\" in css:
        raise UnsafeSvg(f"<style>{where} has an at-rule (@…) or a CSS escape (\\); neither is allowed.")
    for _selector, declarations in _CSS_RULE.findall(css):
        _check_declarations(declarations, f"<style>{where}")
    if _CSS_RULE.sub("", css).strip():
        raise UnsafeSvg(f"<style>{where} is not a plain list of rules (selector {{ property: value; … }}).")


def _check_declarations(declarations: str, context: str) -> None:
    for declaration in _CSS_COMMENT.sub("", declarations).split(";"):
        if not declaration.strip():
            continue
        prop, colon, value = declaration.partition(":")
        prop = prop.strip().lower()
        if not colon or prop not in CSS_PROPERTIES:
            raise UnsafeSvg(f'{context} sets "{declaration.strip()}"; only presentation properties (fill, stroke, '
                            "opacity, font-…, …) are allowed.")
        _check_css_value(value, f"{context} {prop}")


def _check_css_value(value: str, context: str) -> None:
    if "\\" in value or "@" in value:
        raise UnsafeSvg(f"{context} has a CSS escape (\\) or an at-rule (@); neither is allowed.")
    for function in _CSS_FUNCTION.finditer(value):
        name = function.group(1).lower()
        if name not in CSS_FUNCTIONS:
            raise UnsafeSvg(f"{context} uses {name}(); it is not allowed.")
        if name == "url" and not _CSS_LOCAL_URL.match(value, function.start()):
            raise UnsafeSvg(f"{context} has a url() outside the file; only url(#id) is allowed.")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _name(tag: str) -> str:
    namespace, name = _split(tag)
    if namespace in ("", SVG):
        return f"<{name}>"
    return f"<{name}> (namespace {namespace})"


def _attribute_name(attribute: str) -> str:
    namespace, name = _split(attribute)
    prefix = {XLINK: "xlink:", XML: "xml:"}.get(namespace, f"{{{namespace}}}" if namespace else "")
    return prefix + name
