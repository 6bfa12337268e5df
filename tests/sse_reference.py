"""A naive reference model of SSE parsing, shared by the SSE property and fuzz tests.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from dataclasses import dataclass

from rxtokens.sse import SseEvent

BOM = b"\xef\xbb\xbf"


@dataclass
class Reference:
    """The spec, naively: decode the whole stream, walk it one character at a time."""

    events: list[SseEvent]
    last_event_id: str
    reconnection_time: int | None


def reference(stream: bytes) -> Reference:
    """The events, last event ID and reconnection time the spec gives for a whole `stream`."""
    if stream.startswith(BOM):  # the UTF-8 decode algorithm strips one leading BOM
        stream = stream[3:]
    text = stream.decode("utf-8", "replace")

    lines: list[str] = []
    line = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":
            lines.append(line)
            line = ""
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif char == "\n":
            lines.append(line)
            line = ""
        else:
            line += char
        i += 1
    # `line` is now an unterminated last line: discarded at end of file.

    events: list[SseEvent] = []
    data = ""
    event_type = ""
    id_buffer = ""
    id_string = ""
    block_retry: int | None = None
    reconnection_time: int | None = None
    for line in lines:
        if line == "":
            id_string = id_buffer
            if data != "":
                if data.endswith("\n"):
                    data = data[:-1]
                events.append(SseEvent(event_type or "message", data, id_buffer, block_retry))
            data = ""
            event_type = ""
            block_retry = None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            colon = line.index(":")
            name, value = line[:colon], line[colon + 1 :]
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry" and value != "" and all(c in "0123456789" for c in value):
            block_retry = reconnection_time = int(value)
    return Reference(events, id_string, reconnection_time)
