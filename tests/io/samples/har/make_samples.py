"""Writes the HAR samples (run once by hand; the .har files are checked in, not regenerated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CHROME_REQ = [
    {"name": "Accept", "value": "*/*"},
    {"name": "User-Agent", "value": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"},
]


def entry(
    method: str,
    url: str,
    status: int,
    mime: str,
    text: str | None = None,
    *,
    encoding: str | None = None,
    req_headers: list[dict[str, str]] | None = None,
    headers: list[dict[str, str]] | None = None,
    post: str | None = None,
    size: int | None = None,
    when: str = "2024-05-02T10:15:00.000Z",
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "size": size if size is not None else len(text or ""),
        "mimeType": mime,
    }
    if text is not None:
        content["text"] = text
    if encoding:
        content["encoding"] = encoding
    request: dict[str, Any] = {
        "method": method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "headers": CHROME_REQ + (req_headers or []),
        "queryString": [],
        "cookies": [],
        "headersSize": -1,
        "bodySize": len(post or ""),
    }
    if post is not None:
        request["postData"] = {"mimeType": "application/json", "text": post}
    return {
        "startedDateTime": when,
        "time": 42.5,
        "request": request,
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "headers": ([{"name": "Content-Type", "value": mime}] if mime else [])
            + (headers or []),
            "cookies": [],
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": content["size"],
        },
        "cache": {},
        "timings": {
            "blocked": 1,
            "dns": -1,
            "connect": -1,
            "send": 0.2,
            "wait": 40.1,
            "receive": 1.2,
            "ssl": -1,
        },
    }


def har(entries: list[dict[str, Any]], creator: str) -> dict[str, Any]:
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": creator, "version": "120.0"},
            "pages": [],
            "entries": entries,
        }
    }


shop = [
    entry(
        "GET",
        "https://shop.example.com/",
        200,
        "text/html; charset=utf-8",
        "<!doctype html><title>Shop</title><div id=app>{{ cart.count }} items</div>",
        headers=[
            {"name": "Content-Encoding", "value": "gzip"},
            {"name": "Content-Length", "value": "312"},
            {"name": "Cache-Control", "value": "no-cache"},
        ],
    ),
    entry(
        "GET",
        "https://shop.example.com/static/logo.png",
        200,
        "image/png",
        PNG,
        encoding="base64",
        headers=[{"name": "Cache-Control", "value": "max-age=86400"}],
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/products?page=1&sort=price",
        200,
        "application/json",
        '{"items":[{"id":1,"name":"Kettle","price":24.5}],"next":2}',
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/products?page=2&sort=price",
        200,
        "application/json",
        '{"items":[{"id":2,"name":"Toaster","price":31}],"next":null}',
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/products",
        200,
        "application/json",
        '{"items":[],"next":1}',
    ),
    entry(
        "POST",
        "https://api.shop.example.com/v1/cart",
        201,
        "application/json",
        '{"cart":"c-77","count":1}',
        post='{"product":1,"qty":1}',
        req_headers=[
            {"name": "Cookie", "value": "session=s3cr3t-session"},
            {"name": "Authorization", "value": "Bearer eyJhbGciOi.secret"},
        ],
        headers=[
            {"name": "Set-Cookie", "value": "cart=c-77; Path=/; HttpOnly"},
            {"name": "Set-Cookie", "value": "seen=1; Path=/"},
            {"name": "Connection", "value": "keep-alive"},
        ],
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/search/caf%C3%A9%20cr%C3%A8me",
        200,
        "application/json; charset=utf-8",
        '{"hits":["Caf\\u00e9 cr\\u00e8me"]}',
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/orders/42",
        202,
        "application/json",
        '{"id":42,"state":"processing"}',
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/orders/42",
        200,
        "application/json",
        '{"id":42,"state":"shipped"}',
    ),
    entry(
        "GET",
        "https://api.shop.example.com/v1/orders/42",
        200,
        "application/json",
        '{"id":42,"state":"shipped"}',
    ),
]

login = [
    entry(
        "POST",
        "http://127.0.0.1:5000/login",
        200,
        "application/json",
        '{"ok":true}',
        post='{"user":"ada","password":"hunter2"}',
        headers=[
            {"name": "X-Api-Key", "value": "live_5f2a9c"},
            {"name": "WWW-Authenticate", "value": "Bearer realm=app"},
        ],
    ),
    entry(
        "GET",
        "http://127.0.0.1:5000/me?access_token=abc123&fields=name",
        200,
        "application/json",
        '{"name":"Ada"}',
    ),
    entry(
        "GET",
        "http://127.0.0.1:5000/me?access_token=zzz999&fields=name",
        200,
        "application/json",
        '{"name":"Ada"}',
    ),
    entry("GET", "http://127.0.0.1:5000/avatar.png", 304, "", None),
    entry("GET", "http://127.0.0.1:5000/report.csv", 200, "text/csv", None, size=2048),
    entry("GET", "https://ads.tracker.example/pixel.gif", 0, "", None),
    entry("GET", "ws://127.0.0.1:5000/live", 101, "", None),
    entry("GET", "data:image/gif;base64,R0lGODlhAQABAAAAACw=", 200, "image/gif", None),
    entry("GET", "http://localhost:5001/status?tag=a&tag=b", 200, "text/plain", "up\n"),
]

H2 = [{"name": ":status", "value": "200"}, {"name": "server", "value": "nginx"}]
BUNDLE = "/* app bundle */\n" + "console.log('{{ not a template }}');\n" * 2000
dashboard = [
    entry(
        "GET",
        "http://localhost:8080/app.js",
        200,
        "application/javascript",
        BUNDLE,
        headers=[*H2, {"name": "content-encoding", "value": "br"}],
    ),
    entry(
        "GET",
        "http://localhost:8080/api/metrics?window=5m",
        200,
        "application/json",
        '{"rps":12.5}',
        headers=[*H2, {"name": "x-auth-token", "value": "t0k3n"}],
    ),
    entry(
        "GET",
        "http://localhost:9090/api/v1/query?query=up",
        200,
        "application/json",
        '{"status":"success","data":{"result":[]}}',
        headers=H2,
    ),
    entry("GET", "http://localhost:8080/favicon.ico", 404, "text/html", "<h1>Not Found</h1>"),
    entry(
        "OPTIONS",
        "http://localhost:9090/api/v1/query",
        204,
        "",
        None,
        headers=[
            {"name": "access-control-allow-origin", "value": "*"},
            {"name": "vary", "value": "Origin"},
            {"name": "vary", "value": "Accept"},
        ],
    ),
]

for name, entries, creator in (
    ("shop-session", shop, "WebInspector"),
    ("login-flow", login, "Firefox"),
    ("dashboard-http2", dashboard, "Firefox"),
):
    text = json.dumps(har(entries, creator), indent=2) + "\n"
    (HERE / f"{name}.har").write_text(text, encoding="utf-8")
