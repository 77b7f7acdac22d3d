"""The run parameters' JSON Schema, built from the model catalog (models/*.json), the one source of the parameters.

Form and multipart clients send every value as a string, so each number, boolean and choice also has a string
form whose pattern says exactly what the server's decoder accepts (ranges included): schemathesis then finds no
request the document calls valid that the server refuses, and none it calls invalid that the server takes.
What no schema can say (an image that decodes, a URL that answers, a public webhook host, a hold the credit
covers) is refused with 422 or 402 after the syntax is accepted; see docs/api.md.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

SEED_MAX = 9007199254740991
CUSTOM = "^[cC][uU][sS][tT][oO][mM]$"
# Text: no control characters but tab and line feed; CR only before LF (TextRules.swift).
# (The server also takes CR LF as a line break; the document leaves CR out to keep its patterns simple to
# generate from: schemathesis' coverage phase took minutes on the exact form.)
TEXT_CHAR = "[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]"
TEXT = f"^{TEXT_CHAR}*$"
TEXT_NONBLANK = f"^{TEXT_CHAR}*[^\\s\\u0000-\\u001f\\u007f-\\u009f]{TEXT_CHAR}*$"


def int_range(lo: int, hi: int) -> str:
    """A regex alternation (no anchors) for the decimal integers lo..hi, 0 <= lo <= hi, without leading zeros."""
    if lo > hi:
        return "(?!)"
    parts: list[str] = []
    for digits in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(hi, 10 ** digits - 1)
        if a <= b:
            parts += _same_length(str(a), str(b))
    return "(?:" + "|".join(parts) + ")"


def _same_length(a: str, b: str) -> list[str]:
    if a == b:
        return [a]
    if len(a) == 1:
        return [f"[{a}-{b}]"]
    rest = len(a) - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        return [f"[{a[0]}-{b[0]}][0-9]{{{rest}}}"]
    if a[0] == b[0]:
        return [a[0] + p for p in _wrap(_same_length(a[1:], b[1:]))]
    out: list[str] = []
    out += [a[0] + p for p in _wrap(_same_length(a[1:], "9" * rest))]
    if int(b[0]) - int(a[0]) > 1:
        out.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}][0-9]{{{rest}}}")
    out += [b[0] + p for p in _wrap(_same_length("0" * rest, b[1:]))]
    return out


def _wrap(parts: list[str]) -> list[str]:
    return ["(?:" + "|".join(parts) + ")"] if len(parts) > 1 else parts


def integer_text(lo: int, hi: int) -> str:
    """What Problems.integer reads from a string: -?digits(.0+)? within lo..hi (leading zeros allowed)."""
    alts = []
    if hi >= max(lo, 0):
        alts.append("0*" + int_range(max(lo, 0), hi))
    if lo < 0:
        alts.append("-0*" + int_range(0, -lo))
    elif lo == 0:
        alts.append("-0+")
    return "(?:" + "|".join(alts) + ")(?:\\.0+)?"


def decimal_text(lo: float, hi: float) -> str:
    """What Problems.number reads from a string: -?digits(.digits)? within lo..hi (integer bounds)."""
    lo_i, hi_i = int(lo), int(hi)
    assert lo_i == lo and hi_i == hi, "decimal patterns are built for integer bounds"
    alts = []
    if hi_i >= max(lo_i, 0):
        below = int_range(max(lo_i, 0), hi_i - 1)
        alts.append(f"0*(?:{below}(?:\\.[0-9]+)?|{hi_i}(?:\\.0+)?)")
    if lo_i < 0:
        below = int_range(0, -lo_i - 1)
        alts.append(f"-0*(?:{below}(?:\\.[0-9]+)?|{-lo_i}(?:\\.0+)?)")
    else:
        alts.append("-0+(?:\\.0+)?")
    return "(?:" + "|".join(alts) + ")"


def caseless(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def optional(schema_alternatives: list[dict], required: bool) -> dict:
    return {"oneOf": schema_alternatives + ([] if required else [{"type": "null"}])}


def parameter(d: dict) -> dict:
    kind, required, desc = d["kind"], d.get("required", False), d.get("description", "")
    empty = "" if required else "|"  # an optional parameter sent as "" takes its default
    out: dict
    if kind == "string":
        out = {"type": "string", "minLength": 1 if required else 0, "pattern": TEXT_NONBLANK if required else TEXT}
        if "max_length" in d:
            out["maxLength"] = d["max_length"]
    elif kind == "integer":
        lo, hi = int(d["minimum"]), int(d["maximum"])
        out = optional([{"type": "integer", "minimum": lo, "maximum": hi},
                        {"type": "string", "pattern": f"^(?:{integer_text(lo, hi)}{empty})$"}], required)
    elif kind == "number":
        lo, hi = d["minimum"], d["maximum"]
        out = optional([{"type": "number", "minimum": lo, "maximum": hi},
                        {"type": "string", "pattern": f"^(?:{decimal_text(lo, hi)}{empty})$"}], required)
    elif kind == "boolean":
        out = optional([{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                        {"type": "string", "enum": ["true", "True", "1", "false", "False", "0"] + ([] if required else [""])}], required)
    elif kind == "choice":
        words = d["choices"] + list(d.get("choice_aliases", {}))
        alternatives = [{"type": "string", "pattern": "^(?:" + "|".join(caseless(w) for w in words) + empty + ")$"}]
        numeric = [float(c) for c in d["choices"] if re.fullmatch(r"[0-9]+(\.[0-9]+)?", c)]
        if numeric:
            alternatives.append({"type": "number", "enum": [int(n) if n == int(n) else n for n in numeric]})
        out = optional(alternatives, required)
    elif kind == "seed":
        out = optional([{"type": "integer", "minimum": 0, "maximum": SEED_MAX},
                        # No leading zeros in the document: with them the pattern took schemathesis minutes to cover.
                        {"type": "string", "pattern": f"^{int_range(0, SEED_MAX)}?$"}], False)
    elif kind == "file":
        # Text rules hold here too: around and inside the value only spaces, tabs and line feeds.
        data = "[dD][aA][tT][aA]:(?:[!-+\\--:<-~]*;)*[bB][aA][sS][eE]64(?:;[!-+\\--~]*)?,[A-Za-z0-9+/= \\t\\n]*"
        url = "[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?"
        out = optional([{"type": "string", "maxLength": 30000000, "pattern": f"^[ \\t\\n]*(?:{data}|{url})?[ \\t\\n]*$"}], False)
    else:
        raise ValueError(f"unknown kind {kind}")
    out["description"] = desc
    if "default" in d:
        out["default"] = d["default"]
    return out


def blank(name: str) -> dict:
    """The parameter is absent, null or (for text) empty: the server treats all three as not given."""
    return {"anyOf": [{"not": {"required": [name]}},
                      {"properties": {name: {"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^\\s*$"}]}}}]}


def run_input(models_dir: Path) -> dict:
    entries = [json.loads(p.read_text()) for p in sorted(models_dir.glob("*.json"))]
    definitions: dict[str, dict] = {}
    for entry in entries:
        for d in entry["parameters"]:
            if d.get("supported", True):
                definitions.setdefault(d["name"], d)
    properties: dict[str, dict] = {
        "model_id": {"type": "string", "enum": [e["id"] for e in entries], "description": "The model to run."},
        "api_key": {"type": "string", "pattern": TEXT, "description": "The API key, for clients that cannot set the Authorization header."},
    }
    for name, d in definitions.items():
        required = d.get("required", False) and name != "aspect_ratio"
        properties[name] = parameter({**d, "required": required})
        for alias in d.get("aliases", []):
            properties[alias] = {**parameter({**d, "required": required}), "description": f"Alias of {name}; send one of the two."}
    properties["wait"] = {"description": "Seconds to hold the connection for the run (0-600); 0 answers at once with the request_id. Also `Prefer: wait=N`.",
                          "oneOf": [{"type": "integer", "minimum": 0, "maximum": 600},
                                    {"type": "string", "pattern": f"^(?:{integer_text(0, 600)}|)$"}, {"type": "null"}]}
    properties["webhook"] = {"description": "http(s) URL POSTed the /check body when the run starts and ends, signed per Standard Webhooks (see docs/api.md).",
                             "oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2048,
                                       "pattern": "^ *(?:[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?)? *$"}]}
    properties["webhook_events_filter"] = {
        "description": "Which events to send: start, completed (default both). Comma-separated, or a JSON array.",
        "oneOf": [{"type": "null"}, {"type": "string", "pattern": "^( *(start|completed)( *, *(start|completed))* *)?$"},
                  {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["start", "completed"]}}]}
    rules = [
        # aspect_ratio is required unless an image gives the size. (Further rules between parameters, such as
        # width and height only with custom and mask only with image, are stated in the descriptions: as
        # if/then/else schemas they made schemathesis' coverage phase run for minutes.)
        # (null and "" are no value to the server.)
        {"anyOf": [{"required": ["aspect_ratio"], "properties": {"aspect_ratio": {"type": "string", "minLength": 1}}},
                   {"required": ["image"], "properties": {"image": {"type": "string", "pattern": "\\S"}}}]},
        # Without an image, custom needs width and height, and no other ratio takes them.
        {"if": {"allOf": [{"required": ["aspect_ratio"], "properties": {"aspect_ratio": {"type": "string", "pattern": CUSTOM}}}, blank("image")]},
         "then": {"not": {"anyOf": [blank("width"), blank("height")]}}},
        {"if": {"allOf": [{"required": ["aspect_ratio"], "properties": {"aspect_ratio": {"not": {"type": "string", "pattern": CUSTOM}}}}, blank("image")]},
         "then": {"allOf": [blank("width"), blank("height")]}},
        # A mask needs an image to paint on.
        {"if": {"not": blank("mask")}, "then": {"not": blank("image")}},
        # A filter needs a webhook to filter.
        {"if": {"required": ["webhook_events_filter"], "properties": {"webhook_events_filter": {"type": ["string", "array"], "minLength": 1}}},
         "then": {"required": ["webhook"], "properties": {"webhook": {"type": "string", "pattern": "\\S"}}}},
    ]
    for name, d in definitions.items():
        for alias in d.get("aliases", []):
            rules.append({"not": {"required": [name, alias]}})
    return {"type": "object", "additionalProperties": False, "required": ["model_id", "prompt"],
            "properties": properties, "allOf": rules}
