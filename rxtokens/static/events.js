// The server's own SSE events, as the page reads them: the format of
// rxtokens/formats/events.py (its docstring has the bytes). The browser's EventSource
// parses the SSE syntax (ids, retry, comments, multi-line data); decodeEvent gives one
// event its meaning, as the Python decoder (rxtokens.formats.events.decode_event) does:
//   a token event  -> {kind: "token", id, token}        (token: the token's JSON object)
//   "done"         -> {kind: "done", id, completion}    (the final Completion's JSON)
//   "error"        -> {kind: "error", id, type, message, partial}
//   anything else  -> null (not part of the format)
// tests/test_formats_events.py feeds the same bytes to both and asserts they agree.
(() => {
  "use strict";
  // every token kind (rxtokens.tokens.TOKEN_TYPES): an EventSource needs one listener per name
  const TOKEN_TYPES = Object.freeze([
    "action_result", "finish", "intent", "partial_tool_call", "reasoning", "refusal", "step",
    "text", "tool_call", "tool_call_delta", "tool_result", "usage",
  ]);
  const DONE = "done";
  const ERROR = "error";

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function decodeError(data) {
    let body;
    try {
      body = JSON.parse(data);
    } catch (err) {
      body = { message: data };
    }
    if (!isObject(body)) body = { message: String(body) };
    const kind = body.type === undefined || body.type === null ? null : String(body.type);
    return {
      type: kind,
      message: String(body.message || "the remote stream failed"),
      partial: isObject(body.partial) ? body.partial : null,
    };
  }

  // One event (its name, data and the last event id in effect) -> its meaning, or null.
  function decodeEvent(type, data, lastEventId) {
    if (type === DONE) return { kind: "done", id: lastEventId, completion: JSON.parse(data) };
    if (type === ERROR) return { kind: "error", id: lastEventId, ...decodeError(data) };
    if (TOKEN_TYPES.includes(type)) return { kind: "token", id: lastEventId, token: JSON.parse(data) };
    return null;
  }

  // Listen to every event of the format on an EventSource; `handle` gets decodeEvent's result.
  // Connection errors (plain Events without data) go to `onConnectionError`.
  function listen(source, handle, onConnectionError) {
    const onEvent = (event) => handle(decodeEvent(event.type, event.data, event.lastEventId));
    for (const type of TOKEN_TYPES) source.addEventListener(type, onEvent);
    source.addEventListener(DONE, onEvent);
    source.addEventListener(ERROR, (event) => {
      if (event instanceof MessageEvent) onEvent(event); // the server's own "error" event
      else if (onConnectionError) onConnectionError(event);
    });
  }

  window.rxtokensEvents = Object.freeze({ TOKEN_TYPES, DONE, ERROR, decodeEvent, listen });
})();
