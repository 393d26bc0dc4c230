"""Reading a request's JSON body with bounds checked *before* parsing.

Python's json parser recurses once per nesting level: a body of 100,000 ``[`` raised RecursionError,
a 500. Every JSON endpoint reads its body through :func:`read_json`, which refuses oversized or deeply
nested bodies with :class:`BadJSON` (the views answer 400).
"""

import json
import re

MAX_BYTES = 64 * 1024
MAX_DEPTH = 20

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


class BadJSON(ValueError):
    pass


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays/objects in ``raw``, brackets inside strings not counted."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def read_json(request, *, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, empty=None):
    """The parsed JSON body of ``request``; ``empty`` stands for an empty body (None: refused)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        raise BadJSON(f"the body is {declared} bytes; at most {max_bytes} are accepted")
    raw = request.body
    if len(raw) > max_bytes:
        raise BadJSON(f"the body is {len(raw)} bytes; at most {max_bytes} are accepted")
    if not raw.strip():
        if empty is None:
            raise BadJSON("the body is empty")
        return empty
    if nesting_depth(raw) > max_depth:
        raise BadJSON(f"the JSON is nested more than {max_depth} levels deep")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadJSON(f"the body is not valid JSON ({exc})") from None
