"""One recorded HAR answer as a route response: headers, redacted secrets, text or file body."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.io.importers._common import literal_text

REDACTED = "REDACTED"
MAX_INLINE_TEXT = 64 * 1024  # longer bodies go to a file beside the profile, not into the YAML
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-encoding",
        "content-length",
    }
)
_SECRET_HEADER = re.compile(
    r"authorization|cookie|api[-_]?key|token|secret|passw|session|csrf|xsrf|signature|credential",
    re.IGNORECASE,
)
_NOT_SECRET = frozenset({"www-authenticate", "authentication-info", "x-content-type-options"})
_SECRET_QUERY = re.compile(
    r"^(key|sig|sid|auth|code|pwd)$|api[-_]?key|token|secret|passw|signature|session|credential",
    re.IGNORECASE,
)
_TEXTUAL = re.compile(
    r"^text/|[/+](json|xml|javascript|ecmascript|x-www-form-urlencoded)\b|^image/svg"
)


def secret_header(name: str) -> bool:
    return name.lower() not in _NOT_SECRET and bool(_SECRET_HEADER.search(name))


def secret_query(name: str) -> bool:
    return bool(_SECRET_QUERY.search(name))


@dataclass
class Answer:
    """A response for the profile, the losses met building it, and the file it needs if any."""

    response: dict[str, Any]
    notes: list[tuple[str, str, str]] = field(default_factory=list)  # (pointer, kind, what)
    file: tuple[str, bytes] | None = None


def build_answer(resp: dict[str, Any], where: str, file_stem: str, keep_secrets: bool) -> Answer:
    """The profile response for a HAR `response` object found at `where`."""
    answer = Answer({"status": int(resp["status"])})
    content = resp.get("content") if isinstance(resp.get("content"), dict) else {}
    assert isinstance(content, dict)
    headers = _headers(resp.get("headers"), f"{where}/headers", answer, keep_secrets)
    mime = str(content.get("mimeType") or "")
    if mime and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = mime
    if headers:
        answer.response["headers"] = headers
    body = _body(content, f"{where}/content", answer)
    if body is None:
        return answer
    textual = bool(_TEXTUAL.search(mime.split(";")[0].strip().lower())) if mime else False
    if textual and len(body) <= MAX_INLINE_TEXT:
        try:
            answer.response["body"] = literal_text(body.decode("utf-8"))
            return answer
        except UnicodeDecodeError:
            pass
    base = mime.split(";")[0].strip().lower()
    ext = mimetypes.guess_extension(base) if base else None
    name = f"{file_stem}{ext or '.bin'}"
    answer.response["file"] = name
    answer.file = (name, body)
    return answer


def _headers(raw: Any, where: str, answer: Answer, keep_secrets: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    lowered: dict[str, str] = {}
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict) or "name" not in item:
            continue
        name, value = str(item["name"]), str(item.get("value", ""))
        low = name.lower()
        if name.startswith(":") or low in HOP_BY_HOP:
            continue  # HTTP/2 pseudo-headers and hop-by-hop headers belong to one connection
        if low in lowered:
            first = lowered[low]
            if low == "set-cookie":
                answer.notes.append(
                    (
                        f"{where}/{index}",
                        "dropped",
                        f"a second {name} header: a profile response holds one "
                        "value per header, the first is kept",
                    )
                )
                continue
            if not (secret_header(name) and not keep_secrets):  # a redacted one stays REDACTED
                out[first] = f"{out[first]}, {literal_text(value)}"
            continue
        if secret_header(name) and not keep_secrets:
            value = REDACTED
            answer.notes.append(
                (
                    f"{where}/{index}",
                    "approximated",
                    f"the {name} header's value is redacted "
                    "(import with --keep-secrets to keep it)",
                )
            )
        lowered[low] = name
        out[name] = literal_text(value)
    return out


def _body(content: dict[str, Any], where: str, answer: Answer) -> bytes | None:
    text = content.get("text")
    size = content.get("size")
    if not isinstance(text, str):
        if isinstance(size, int) and size > 0:
            answer.notes.append(
                (
                    where,
                    "dropped",
                    f"the body ({size} bytes) was not saved in the HAR; the "
                    "answer has an empty body",
                )
            )
        return None
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            answer.notes.append(
                (
                    where,
                    "dropped",
                    "the body is marked base64 but is not valid base64; the "
                    "answer has an empty body",
                )
            )
            return None
    if text == "":
        return None
    return text.encode("utf-8")
