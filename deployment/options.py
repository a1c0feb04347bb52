"""A target's options for the Kubernetes objects (deployment/manifests.py): each option's rule, and
`check_options`, which refuses a wrong option with a message naming it, what is wrong and what is
allowed. A backend adds its own rules (deployment/backends/kubernetes.py) with the same helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from deployment.manifests import METERING_KEYS, TOKEN_KEY, TOKEN_SHA256_KEY


class BadOptions(ValueError):
    """A target option is wrong: the message names the option, what is wrong and what is allowed."""


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|[kMGTPE]i?|Ki|[eE][0-9]+)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


def _matching(pattern: re.Pattern, allowed: str) -> Callable:
    def check(value):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {allowed}")
        return value
    return check


def boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def whole_number(low: int, high: int) -> Callable:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
        return value
    return check


def one_of(*allowed: str) -> Callable:
    def check(value):
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value
    return check


def _mapping(value, keys: Callable, values: Callable) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a mapping")
    return {keys(k): values(v) for k, v in value.items()}


def _label_key(key):
    prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
    if (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix)) or not (name and _LABEL_VALUE.fullmatch(name)):
        raise ValueError(f"the label key {key!r} is not [prefix/]name (name: 1-63 letters, digits, - _ .)")
    return key


def _node_selector(value) -> dict:
    return _mapping(value, _label_key, _matching(_LABEL_VALUE, "a label value (up to 63 letters, digits, - _ .)"))


def _quantity(value):
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _QUANTITY.fullmatch(text):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi")
    return text


def _amounts(value) -> dict:
    return _mapping(value, one_of(*RESOURCE_NAMES), _quantity)


def _resources(value) -> dict:
    return _mapping(value, one_of("requests", "limits"), _amounts)


def _env(value) -> dict:
    def name(key):
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key) or key in (TOKEN_KEY, TOKEN_SHA256_KEY,
                                                                                "RUNNER_PORT", *METERING_KEYS):
            raise ValueError(f"{key!r} is not a variable name, or it is one the portal sets "
                             f"({TOKEN_SHA256_KEY} or {TOKEN_KEY} from the Secret, RUNNER_PORT from the option "
                             f"port, {', '.join(METERING_KEYS)} for a licensed model)")
        return key
    return _mapping(value, name, lambda v: v if isinstance(v, str) else json.dumps(v))


def _autoscaler(value) -> dict:
    if not isinstance(value, dict) or set(value) - {"min", "max", "cpu_percent"} or "max" not in value:
        raise ValueError(f"{value!r} is not {{min, max, cpu_percent}} (max is required)")
    low = whole_number(1, 1000)(value.get("min", 1))
    high = whole_number(1, 1000)(value["max"])
    if low > high:
        raise ValueError(f"min {low} is more than max {high}")
    return {"min": low, "max": high, "cpu_percent": whole_number(1, 1000)(value.get("cpu_percent", 80))}


_DNS_SUBDOMAIN_TEXT = "a DNS name (lowercase letters, digits, - and .)"
MANIFEST_OPTIONS: dict[str, Callable] = {
    "namespace": _matching(_DNS_LABEL, "a namespace name (up to 63 lowercase letters, digits and -)"),
    "create_namespace": boolean,
    "port": whole_number(1024, 65535),  # the runner is not root: it cannot bind lower ports
    "resources": _resources,
    "image_pull_secret": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "image_registry": _matching(_REGISTRY, "a registry host with an optional :port"),
    "node_selector": _node_selector,
    "placement": one_of("strict", "preferred"),
    "hpa": _autoscaler,
    "ingress_host": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "ingress_class": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "ingress_tls_secret": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "host_network": boolean,
    "env": _env,
}


def check_options(options, extra: Mapping[str, Callable] | None = None) -> dict:
    """The options, checked and normalised; `extra` adds a backend's own rules."""
    rules = {**MANIFEST_OPTIONS, **(extra or {})}
    if not isinstance(options, dict):
        raise BadOptions(f"the options must be a mapping of names to values, not {type(options).__name__}")
    unknown = sorted(set(options) - set(rules))
    if unknown:
        raise BadOptions(f"unknown option {', '.join(map(repr, unknown))}: the allowed options are "
                         f"{', '.join(sorted(rules))}")
    checked = {}
    for name, value in options.items():
        try:
            checked[name] = rules[name](value)
        except ValueError as exc:
            raise BadOptions(f"option {name!r}: {exc}") from None
    return checked
