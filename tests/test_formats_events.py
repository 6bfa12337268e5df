"""The server's SSE event format (rxtokens.formats.events): writer, Python decoder, web page.

The page reads the events with the browser's ``EventSource`` and
``rxtokens/static/events.js``; `test_the_page_and_the_python_decoder_agree`
serves the same bytes to both (real headless Chromium) and compares.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import reactivex
from aiohttp import web

import rxtokens.formats
from rxtokens.errors import ProviderError, StreamDecodeError
from rxtokens.formats.events import (
    PING,
    Done,
    Failed,
    decode_event,
    done_event,
    error_event,
    retry_block,
    token_event,
)
from rxtokens.server import create_app, start_server
from rxtokens.sse import SseEvent, SseParser
from rxtokens.tokens import (
    TOKEN_TYPES,
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    token_to_dict,
)

from .chromium import browser, open_page, require_chromium

EVENTS_JS = Path(__file__).resolve().parent.parent / "rxtokens" / "static" / "events.js"

TOKENS = [
    TextDelta("Hé, "),
    TextDelta("line one\nline two 😀"),
    ReasoningDelta("think"),
    RefusalDelta("no"),
    ToolCallDelta(0, "call_1", "get_weather", '{"city": '),
    ToolCallDelta(0, None, None, '"Paris"}'),
    ToolCall(0, "call_1", "get_weather", {"city": "Paris"}),
    TextDelta("second choice", index=1),
    Usage(12, 7),
    Finish("stop"),
]
PARTIAL = Completion(text="Hé, line one", finish_reason=None)


def _server_stream(end: str) -> bytes:
    """What the server writes for TOKENS, a ping, then `end` ("done" or "error")."""
    out = retry_block(20)
    for seq, token in enumerate(TOKENS[:5], 1):
        out += token_event(seq, token)
    out += PING
    for seq, token in enumerate(TOKENS[5:], 6):
        out += token_event(seq, token)
    last = len(TOKENS) + 1
    if end == "done":
        out += done_event(last, Completion(text="Hé, line one\nline two 😀", finish_reason="stop"))
    else:
        out += error_event(last, "cancelled", "cancelled by DELETE", PARTIAL)
    return out.encode()


_TEXT = '{"type":"text","text":"odd","index":0}'
ODD = (
    (
        "\ufeff"  # a BOM starts the stream (dropped)
        ": a comment\n"
        "retry: 15\n"
        "retry: 1x\n"  # not a number: ignored
        "\n"
        "event: text\r\nid: 1\r\ndata: " + _TEXT + "\r\n\r\n"  # CRLF
        "event: text\rid: 2\rdata: " + _TEXT + "\r\r"  # lone CR
        'event: text\nid: 3\ndata: {"type":"text",\ndata: "text":"multi\\nline","index":0}\n\n'
        "event: text\nid: 4\ndata\ndata:" + _TEXT + "\n\n"  # a bare `data`, no space after ':'
        "event: text\nid: 40\n\n"  # no data: not dispatched, but the id is kept
        "event: text\ndata: " + _TEXT + "\n\n"  # id 40 still in effect
        "id: 5\n\n"  # an id-only block
        "data: a plain message\n\n"  # event "message": not part of the format
        "event: text \ndata: " + _TEXT + "\n\n"  # "text " is not a token type
        "event: surprise\nid: 6\ndata: {}\n\n"  # unknown event name
        "foo: bar\nevent: finish\nid: 7\n"  # an unknown field
        'data: {"type":"finish","reason":"length","index":0}\n\n'
        "event: error\nid: 8\ndata: plain text failure\n\n"  # an error whose body is not JSON
        'event: error\nid: 9\ndata: "just a string"\n\n'
        'event: error\nid: 10\ndata: {"type": 5, "message": ""}\n\n'
        "id:\n"  # resets the last event id
        'event: error\ndata: {"type": "ProviderError", "message": "boom", "partial": '
        + json.dumps(PARTIAL.to_dict())
        + "}\n\n"
        "event: done\nid: 11\ndata: " + json.dumps(Completion(text="odd").to_dict()) + "\n\n"
        "event: text\nid: 12\ndata: " + _TEXT  # unterminated at the end: never dispatched
    ).encode()
)

CASES = {"done": _server_stream("done"), "error": _server_stream("error"), "odd": ODD}


def _pieces(data: bytes, size: int = 5) -> list[bytes]:
    """Split anywhere: inside CRLF, inside UTF-8 sequences, inside the BOM."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def python_reading(data: bytes) -> list[dict[str, Any]]:
    """The Python side: SseParser + decode_event, as the sse() client reads a stream."""
    parser = SseParser()
    events: list[SseEvent] = []
    for piece in _pieces(data):
        events += parser.feed(piece)
    events += parser.close()
    out: list[dict[str, Any]] = []
    for event in events:
        item = decode_event(event)
        if item is None:
            continue
        if isinstance(item, Done):
            out.append({"kind": "done", "id": event.id, "completion": item.completion().to_dict()})
        elif isinstance(item, Failed):
            partial = None if item.partial is None else item.partial.to_dict()
            out.append(
                {
                    "kind": "error",
                    "id": event.id,
                    "type": item.error_type,
                    "message": item.message,
                    "partial": partial,
                }
            )
        else:
            out.append({"kind": "token", "id": event.id, "token": token_to_dict(item)})
    result: list[dict[str, Any]] = json.loads(json.dumps(out))  # as JSON values (tuples -> lists)
    return result


def test_writer_and_decoder_round_trip_every_token_kind() -> None:
    events = SseParser().feed(_server_stream("done"))
    decoded = [decode_event(e) for e in events]
    assert decoded[:-1] == TOKENS
    assert [e.id for e in events] == [str(i) for i in range(1, len(TOKENS) + 2)]
    done = decoded[-1]
    assert isinstance(done, Done)
    assert done.completion().text == "Hé, line one\nline two 😀"


def test_error_events_become_provider_errors_with_the_partial() -> None:
    (event,) = SseParser().feed(_server_stream("error"))[-1:]
    failed = decode_event(event)
    assert failed == Failed("cancelled", "cancelled by DELETE", PARTIAL)
    error = failed.exception()
    assert isinstance(error, ProviderError)
    assert str(error) == "remote stream failed: cancelled: cancelled by DELETE"
    assert error.error_type == "cancelled"
    assert error.partial == PARTIAL
    assert str(Failed(None, "x", None).exception()) == "remote stream failed: x"


def test_malformed_events() -> None:
    with pytest.raises(StreamDecodeError, match="is not a token"):
        decode_event(SseEvent("text", '{"type": "text", "nope": 1}', "3"))
    with pytest.raises(StreamDecodeError, match="not a Completion"):
        Done("[1, 2]").completion()
    assert decode_event(SseEvent("error", "[]")) == Failed(None, "[]", None)
    assert decode_event(SseEvent("ping", "x")) is None


def test_the_formats_depend_on_no_transport() -> None:
    """Pure modules: the standard library and rxtokens' errors, sse, tokens, _finish only."""
    for path in sorted(Path(rxtokens.formats.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                continue  # another format
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                allowed = ("errors", "sse", "tokens", "_finish")
                assert node.module in allowed, (path.name, node.module)
            elif isinstance(node, ast.ImportFrom):
                top = (node.module or "").split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", (path.name, top)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    assert top in sys.stdlib_module_names, (path.name, alias.name)


def test_the_page_knows_every_token_type() -> None:
    match = re.search(r"TOKEN_TYPES = Object\.freeze\(\[(.*?)\]\)", EVENTS_JS.read_text(), re.S)
    assert match is not None
    assert sorted(re.findall(r'"(\w+)"', match.group(1))) == sorted(TOKEN_TYPES)


_READ_IN_PAGE = """
new Promise((resolve) => {
  const got = [];
  const es = new EventSource(%s);
  rxtokensEvents.listen(es, (item) => { if (item !== null) got.push(item); }, () => {
    if (es.readyState === EventSource.CLOSED) resolve(got);
  });
  setTimeout(() => { es.close(); resolve({timeout: got}); }, 20000);
})
"""


async def test_the_page_and_the_python_decoder_agree() -> None:
    require_chromium()  # skipped locally without it, a failure in CI
    connections: dict[str, int] = {}

    async def serve_case(request: web.Request) -> web.StreamResponse:
        name = request.match_info["case"]
        connections[name] = connections.get(name, 0) + 1
        if connections[name] > 1:  # the EventSource reconnected: end it
            return web.Response(status=204)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in _pieces(CASES[name]):
            await response.write(piece)
        await response.write_eof()
        return response

    app = create_app(upstream=lambda messages, params: reactivex.empty(), auth=False)
    app.router.add_get("/agree/{case}", serve_case)
    runner = await start_server(app, port=0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with browser() as (session, devtools), open_page(session, devtools) as page:
            await page.call("Page.navigate", url=f"{base}/")
            await page.wait_for("document.readyState === 'complete' && !!window.rxtokensEvents")
            for name, data in CASES.items():
                in_page = await page.js(_READ_IN_PAGE % json.dumps(f"/agree/{name}"))
                expected = python_reading(data)
                assert in_page == expected, name
                assert len(expected) >= 3, name
    finally:
        await runner.cleanup()
    assert connections == dict.fromkeys(CASES, 2)
