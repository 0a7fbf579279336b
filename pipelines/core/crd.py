"""Upstream CustomResourceDefinitions -> strict JSON Schemas, so that what our checks accept the
controllers accept too.

A CRD's ``openAPIV3Schema`` is OpenAPI 3.0 with Kubernetes extensions, and the API server
applies it with rules a plain JSON Schema validator does not know. ``object_schema`` translates
one served version into a JSON Schema (draft 2020-12) that behaves like the API server with
strict field validation (``kubectl apply --validate=strict``, the default since 1.27):

- unknown fields are errors: every object schema with ``properties`` gets
  ``additionalProperties: false`` unless it says ``x-kubernetes-preserve-unknown-fields``
  (structural schemas prune or, strictly, refuse what they do not declare);
- ``x-kubernetes-int-or-string`` and ``nullable`` become ``anyOf`` alternatives;
- ``x-kubernetes-list-type: set`` becomes ``uniqueItems``; ``int32``/``int64`` formats their
  ranges; OpenAPI 3.0's boolean ``exclusiveMinimum``/``exclusiveMaximum`` become numbers;
- patterns are Go RE2: an inline flag group such as ``(?i)`` in the middle of a pattern, which
  Python's ``re`` refuses, becomes a scoped group ``(?i:...)`` up to the end of its group;
- ``metadata``, which CRD schemas leave as a bare ``type: object``, is checked as the API server
  checks ObjectMeta: known fields only, a DNS-subdomain name, string labels and annotations.

Not evaluated: CEL rules (``x-kubernetes-validations``) and ``x-kubernetes-list-type: map``
key uniqueness, which only the API server can apply. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_STRING = {"type": "string"}
# ObjectMeta as a client may send it (apimachinery's ValidateObjectMeta). Server-set fields are
# known (so not "unknown"), with their types only.
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
        "generateName": _STRING,
        "namespace": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL},
        "labels": {
            "type": "object",
            "propertyNames": {"maxLength": 317, "pattern": QUALIFIED_NAME},
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"pattern": QUALIFIED_NAME},
            "additionalProperties": _STRING,
        },
        "finalizers": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": _STRING,
        "resourceVersion": _STRING,
        "selfLink": _STRING,
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": _STRING,
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object"}},
    },
}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# Keywords with the same meaning in OpenAPI 3.0 and JSON Schema 2020-12.
_SAME = (
    "type",
    "enum",
    "required",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "uniqueItems",
    "minimum",
    "maximum",
)


def translate_pattern(pattern: str) -> str:
    """A Go RE2 pattern as Python ``re`` reads it: inline flags mid-pattern become scoped.

    In RE2, ``(?i)`` applies to the rest of the enclosing group, alternatives included, so
    ``a(?i)b|c`` is ``a(?i:b)|(?i:c)``: each scope closes at ``|`` and reopens after it."""
    out: list[str] = []
    scopes: list[list[str]] = [[]]  # per open group: flag scopes opened inside it
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        end = _flag_group_end(pattern, i) if c == "(" and not in_class else 0
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\Z" if nxt == "z" and not in_class else c + nxt)
            i += 2
            continue
        if in_class:
            in_class = c != "]" or out[-1] in ("[", "[^")  # "]" first in a class is literal
            out.append(c)
        elif c == "[":
            in_class = True
            out.append("[^" if pattern.startswith("[^", i) else "[")
            i += 1 if pattern.startswith("[^", i) else 0
        elif end:
            flags = pattern[i + 2 : end]
            if not out:
                out.append(f"(?{flags})")  # a leading global flag is valid Python as it is
            else:
                out.append(f"(?{flags}:")
                scopes[-1].append(flags)
            i = end + 1
            continue
        elif c == "(":
            scopes.append([])
            out.append(c)
        elif c == ")":
            owed = scopes.pop() if len(scopes) > 1 else []
            out.append(")" * len(owed) + ")")
        elif c == "|" and scopes[-1]:
            out.append(")" * len(scopes[-1]) + "|" + "".join(f"(?{f}:" for f in scopes[-1]))
        else:
            out.append(c)
        i += 1
    return "".join(out) + ")" * len(scopes[0])


def _flag_group_end(pattern: str, start: int) -> int:
    """The index of ")" closing a ``(?flags)`` group at ``start``, or 0 if it is not one."""
    j = start + 2
    while j < len(pattern) and (pattern[j].isalpha() or pattern[j] == "-"):
        j += 1
    return j if j < len(pattern) and pattern[j] == ")" and j > start + 2 else 0


def structural(node: Mapping[str, Any], *, in_logic: bool = False) -> dict[str, Any]:
    """One OpenAPI schema node as strict JSON Schema (see the module docstring)."""
    out = _value_keywords(node)
    out.update(_object_keywords(node, in_logic=in_logic))
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            out[key] = [structural(s, in_logic=True) for s in node[key]]
    if "not" in node:
        out["not"] = structural(node["not"], in_logic=True)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _value_keywords(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node's own value constraints (types, bounds, lengths, pattern), translated."""
    out: dict[str, Any] = {k: node[k] for k in _SAME if k in node}
    if "pattern" in node:
        out["pattern"] = translate_pattern(str(node["pattern"]))
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(key) is True and bound in out:
            out[key] = out.pop(bound)
    fmt = node.get("format")
    if node.get("type") == "integer" and fmt in _INT_RANGES:
        low, high = _INT_RANGES[fmt]
        out["minimum"] = max(out.get("minimum", low), low)
        out["maximum"] = min(out.get("maximum", high), high)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _object_keywords(node: Mapping[str, Any], *, in_logic: bool) -> dict[str, Any]:
    """The node's fields and items, each translated, and whether unknown fields are refused."""
    out: dict[str, Any] = {}
    if "properties" in node:
        out["properties"] = {
            k: structural(v, in_logic=in_logic) for k, v in node["properties"].items()
        }
    if isinstance(node.get("items"), Mapping):
        out["items"] = structural(node["items"], in_logic=in_logic)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        out["additionalProperties"] = structural(extra, in_logic=in_logic)
    elif isinstance(extra, bool):
        out["additionalProperties"] = extra
    elif (
        "properties" in node
        and not in_logic
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        # Value validations in allOf/anyOf/oneOf/not may not declare fields of their own
        # (structural schema rule), so only the node itself closes the object.
        out["additionalProperties"] = False
    return out


def served_versions(crd: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """{apiVersion: openAPIV3Schema} of the versions the CRD serves."""
    spec = crd.get("spec") or {}
    group = spec.get("group", "")
    return {
        f"{group}/{v['name']}": v["schema"]["openAPIV3Schema"]
        for v in spec.get("versions") or []
        if v.get("served") and v.get("schema")
    }


def object_schema(crd: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """The strict JSON Schema of one served version's objects (KeyError if not served)."""
    root = structural(served_versions(crd)[api_version])
    kind = crd["spec"]["names"]["kind"]
    props = dict(root.get("properties") or {})
    props["apiVersion"] = {"const": api_version}
    props["kind"] = {"const": kind}
    # CRD schemas may only restrict metadata.name/generateName; ObjectMeta itself is the API
    # server's, so check it the same way for every kind.
    props["metadata"] = {"allOf": [OBJECT_META, props.get("metadata", {})]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **root,
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "required": sorted({*root.get("required", []), "apiVersion", "kind", "metadata"}),
    }
