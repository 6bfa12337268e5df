"""Operators: every processing stage of a token stream, used with ``pipe()``.

Each public operator is a short documented factory here; its implementation
lives in a private module of its family (``_sse.py``, ``_decode_openai.py`` ...).
Factories validate their arguments eagerly (raising `ConfigError`) and create
all per-subscription state inside ``subscribe``.
"""

from __future__ import annotations

import re as _re
from collections.abc import Callable
from typing import Any as _Any
from typing import Literal as _Literal

import tiktoken
from reactivex import Observable
from reactivex import abc as _abc
from reactivex import operators as _ops

from ..coalesce import TokenMerger as TokenMerger
from ..errors import ConfigError as _ConfigError
from ..eventstream import DEFAULT_MAX_MESSAGE_BYTES as _DEFAULT_MAX_MESSAGE_BYTES
from ..eventstream import EventStreamMessage as _EventStreamMessage
from ..sse import SseEvent, SseParser
from ..tokens import Completion, StreamToken
from ..tokens import PartialToolCall as PartialToolCall
from ..tokens import TextDelta as _TextDelta
from ..tools import Tool as Tool
from ..tools import ToolRegistry as ToolRegistry
from ._adaptive import AdaptiveFlowController as AdaptiveFlowController
from ._adaptive import AdaptiveIterator as AdaptiveIterator
from ._adaptive import FlowSnapshot as FlowSnapshot
from ._adaptive import adaptive_operator as _adaptive_operator
from ._aggregate import aggregate_operator as _aggregate_operator
from ._backpressure import buffer_operator as _buffer_operator
from ._backpressure import coalesce_operator as _coalesce_operator
from ._budget import take_budget_operator as _take_budget_operator
from ._cache import cache_operator as _cache_operator
from ._chunk_by import Boundary as Boundary
from ._chunk_by import ChunkProcessor as _ChunkProcessor
from ._chunk_by import compile_boundary as _compile_boundary
from ._decode import decoder_operator as _decoder_operator
from ._decode_anthropic import AnthropicDecoder as _AnthropicDecoder
from ._decode_bedrock import BedrockDecoder as _BedrockDecoder
from ._decode_gemini import GeminiDecoder as _GeminiDecoder
from ._decode_openai import OpenAIChatDecoder as _OpenAIChatDecoder
from ._decode_responses import OpenAIResponsesDecoder as _OpenAIResponsesDecoder
from ._dispatch import dispatch_tools_operator as _dispatch_tools_operator
from ._eventstream import parse_aws_eventstream_ as _parse_aws_eventstream
from ._first_of import first_of_observable as _first_of_observable
from ._intents import KeywordClassifier as KeywordClassifier
from ._intents import Throttle as _Throttle
from ._intents import detect_intents_operator as _detect_intents_operator
from ._match import TextMatch as TextMatch
from ._match import on_match_operator as _on_match_operator
from ._metrics import MetricsSnapshot as MetricsSnapshot
from ._metrics import StreamMetrics as StreamMetrics
from ._metrics import metrics_operator as _metrics_operator
from ._pacing import frames_operator as _frames_operator
from ._pacing import rate_limit_operator as _rate_limit_operator
from ._pacing import smooth_operator as _smooth_operator
from ._partial_json import parse_partial_arguments as parse_partial_arguments
from ._partial_json import (
    partial_tool_arguments_operator as _partial_tool_arguments_operator,
)
from ._pattern import compile_pattern as _compile_pattern
from ._processor import processor_operator as _processor_operator
from ._redact import RedactProcessor as _RedactProcessor
from ._redact import StopWhenProcessor as _StopWhenProcessor
from ._retry import is_retryable
from ._retry import retry_with_backoff_operator as _retry_with_backoff_operator
from ._sse import parse_sse_ as _parse_sse
from ._tiktoken import TokenCounter as TokenCounter
from ._tiktoken import count_tokens_operator as _count_tokens_operator
from ._tiktoken import decode_token_ids_operator as _decode_token_ids_operator
from ._tiktoken import load_encoding as load_encoding
from ._tiktoken import resolve_encoding as _resolve_encoding
from ._ui_message_stream import (
    from_ui_message_stream_operator as _from_ui_message_stream_operator,
)
from ._ui_message_stream import to_ui_message_stream_operator as _to_ui_message_stream_operator

__all__ = [
    "AdaptiveFlowController",
    "AdaptiveIterator",
    "Boundary",
    "FlowSnapshot",
    "KeywordClassifier",
    "MetricsSnapshot",
    "PartialToolCall",
    "StreamMetrics",
    "TextMatch",
    "TokenCounter",
    "TokenMerger",
    "Tool",
    "ToolRegistry",
    "adaptive_backpressure",
    "aggregate",
    "cache",
    "chunk_by",
    "count_tokens",
    "decode_anthropic",
    "decode_bedrock",
    "decode_gemini",
    "decode_openai_chat",
    "decode_openai_responses",
    "decode_token_ids",
    "detect_intents",
    "dispatch_tools",
    "filter_tokens",
    "first_of",
    "frames",
    "from_ui_message_stream",
    "is_retryable",
    "load_encoding",
    "metrics",
    "on_backpressure_buffer",
    "on_backpressure_coalesce",
    "on_backpressure_latest",
    "on_match",
    "parse_aws_eventstream",
    "parse_partial_arguments",
    "parse_sse",
    "partial_tool_arguments",
    "rate_limit",
    "redact",
    "retry_with_backoff",
    "smooth",
    "stop_when",
    "take_budget",
    "to_ui_message_stream",
]

# --- sse ---


def parse_sse(
    *, max_event_bytes: int | None = None
) -> Callable[[Observable[bytes]], Observable[SseEvent]]:
    """Parse a ``text/event-stream`` byte stream into `SseEvent` s.

    Each subscription gets its own `rxtokens.sse.SseParser` (WHATWG "event
    stream interpretation", exact: BOM, CR/LF/CRLF, comments, ``data`` /
    ``event`` / ``id`` / ``retry``), so two subscriptions to the same chain
    never share parser state. Chunks may be cut anywhere (inside a line, a
    CRLF or a UTF-8 character); each chunk's events are emitted in order, as
    soon as the empty line that ends them arrives. Completion of the source
    ends the stream, discarding an unterminated final block as the spec
    requires; errors pass through unchanged (events completed before them
    are delivered first); disposing unsubscribes the source. A chunk that is
    not bytes-like fails the stream with a `TypeError`; with `max_event_bytes`,
    an event that grows beyond it before its blank line fails the stream with
    `StreamDecodeError` (the providers use 16 MiB).

    Marble diagram::

        source:      -("data: a\\n\\nda")-("ta: b\\n\\n")-("data: c")-|
        parse_sse(): -A------------------B------------------------|
                     A = SseEvent(data="a"), B = SseEvent(data="b"); "data: c" discarded

        source:      -("data: a\\n\\n")-#
        parse_sse(): -A----------------#

    Args:
        max_event_bytes: the largest unterminated event accepted (None: no limit).

    Returns:
        An operator ``Observable[bytes] -> Observable[SseEvent]``.

    Raises:
        ConfigError: `max_event_bytes` is not a positive int.

    Example:
        >>> import reactivex
        >>> chunks = reactivex.of(b"event: ping\\ndata: 1\\n\\nda", b"ta: 2\\n\\n")
        >>> chunks.pipe(parse_sse()).subscribe(print)  # doctest: +ELLIPSIS
        SseEvent(event='ping', data='1', id='', retry=None)
        SseEvent(event='message', data='2', id='', retry=None)
        <...>
    """
    if max_event_bytes is not None:
        SseParser(max_event_bytes=max_event_bytes)  # validate eagerly
    return _parse_sse(max_event_bytes)


def parse_aws_eventstream(
    *, max_message_bytes: int = _DEFAULT_MAX_MESSAGE_BYTES
) -> Callable[[Observable[bytes]], Observable[_EventStreamMessage]]:
    """Parse an ``application/vnd.amazon.eventstream`` byte stream into messages.

    The binary framing of Amazon Bedrock's ``ConverseStream`` (AWS "event
    stream encoding"). Each subscription gets its own
    `rxtokens.eventstream.EventStreamParser`: chunks may be cut anywhere, and
    each `rxtokens.eventstream.EventStreamMessage` (immutable ``headers``,
    ``payload`` bytes) is emitted as soon as its last byte arrives, after its
    prelude CRC, lengths, message CRC and headers were checked. A CRC
    mismatch, an impossible length, a malformed header or a message announced
    longer than `max_message_bytes` (refused before it is buffered) fails the
    stream with `StreamDecodeError` and disposes the source; a source that
    completes inside a message fails it with `TruncatedStreamError`; errors
    pass through (messages completed before them are delivered first).

    Marble diagram::

        source:                  -(m1[:5])-(m1[5:] + m2)-(m3[:9])-|
        parse_aws_eventstream(): ----------(M1, M2)-----------------#
                                 M1, M2 = the messages; m3 is cut: TruncatedStreamError

    Args:
        max_message_bytes: the largest message accepted (default: botocore's
            limits, a 16 MiB payload plus 128 KiB of headers).

    Returns:
        An operator ``Observable[bytes] -> Observable[EventStreamMessage]``.

    Raises:
        ConfigError: `max_message_bytes` is not an int of at least 16.

    Example:
        >>> import reactivex
        >>> from rxtokens.eventstream import encode_message
        >>> wire = encode_message({":event-type": "ping"}, b"{}") * 2
        >>> chunks = reactivex.of(wire[:7], wire[7:40], wire[40:])
        >>> chunks.pipe(parse_aws_eventstream()).subscribe(
        ...     lambda m: print(m.event_type, m.payload))  # doctest: +ELLIPSIS
        ping b'{}'
        ping b'{}'
        <...>
    """
    return _parse_aws_eventstream(max_message_bytes)


# --- aggregate ---


def aggregate() -> Callable[[Observable[StreamToken]], Observable[Completion]]:
    """Aggregate a token stream into its final `Completion` (one emission, at completion).

    Per choice index, `TextDelta`, `ReasoningDelta` and `RefusalDelta` texts
    are concatenated; tool calls are assembled from `ToolCallDelta` fragments
    (keyed by ``(choice, index)``, ``id``/``name`` from the first fragment that
    has them, arguments parsed as JSON, an empty string meaning ``{}``) or
    taken whole from a `ToolCall`, which replaces the fragments of the same
    call. ``finish_reason`` is the normalised reason of `Finish` (``stop``,
    ``length``, ``tool_calls`` ...: the same for every provider); ``usage``
    is the latest `Usage`; ``choices`` is sorted by index and always contains
    choice 0, which the top-level fields mirror. Token kinds that carry no part
    of the answer pass; a `Completion` item is given back; any other item is a
    `ConfigError`.

    Errors: if the source fails with a `StreamError`, the error is forwarded
    with ``.partial`` set to the completion of everything received so far
    (unless it already carries one); unfinished tool arguments in it are
    parsed as far as they go. Other exceptions pass through untouched. Tool
    arguments that are not a JSON object at completion fail the stream with a
    `StreamDecodeError` naming the tool and the offending text (with ``.partial``).

    The incremental core is `rxtokens.completion.CompletionBuilder`
    (``add(token)``, ``build()``), for code that needs "the completion so far".

    Marble diagram::

        source:      -T("Hel")-T("lo")-Finish("stop")-|
        aggregate(): ---------------------------------(C)|     C.text == "Hello"

        source:      -T("Hel")-#                        # = ProviderError
        aggregate(): ----------#                        #.partial.text == "Hel"

    Returns:
        An operator ``Observable[StreamToken] -> Observable[Completion]``.

    Example:
        >>> import reactivex
        >>> from rxtokens import TextDelta, Finish
        >>> tokens = reactivex.of(TextDelta("Hel"), TextDelta("lo"), Finish("stop"))
        >>> tokens.pipe(aggregate()).run().text
        'Hello'
    """
    return _aggregate_operator()


# --- decoders ---


def decode_openai_chat() -> Callable[[Observable[SseEvent]], Observable[StreamToken]]:
    """Decode OpenAI Chat Completions stream events (and compatible servers') into tokens.

    ``delta.content`` -> `TextDelta`; ``delta.reasoning_content`` /
    ``delta.reasoning`` -> `ReasoningDelta`; ``delta.refusal`` -> `RefusalDelta`;
    tool call fragments -> `ToolCallDelta` (merged by ``index``; ``id`` and
    ``name`` only on the first fragment) and a `ToolCall` with parsed arguments
    as soon as the call is complete (the next call starts, the choice finishes,
    or ``[DONE]``); ``finish_reason`` -> `Finish`; ``usage`` (the
    ``include_usage`` trailing chunk) -> `Usage`. Choices of ``n > 1`` keep
    their ``index``. The role-only first chunk, logprobs and unknown fields
    emit nothing.

    Errors: ``{"error": {...}}`` after HTTP 200 -> `ProviderError` (even if
    ``[DONE]`` follows); completion without ``data: [DONE]`` ->
    `TruncatedStreamError`; invalid JSON -> `StreamDecodeError` quoting the data.
    Errors carry ``partial=None``: `aggregate()` attaches the partial
    `Completion` downstream.

    Marble diagram::

        source:  -{role}-{"Hi"}-{" there"}-{finish:stop}-{usage}-[DONE]-|
        decode:  --------T("Hi")-T(" there")-Finish("stop")-Usage(3,2)---|

        source:  -{"Hi"}-|                       (no [DONE])
        decode:  -T("Hi")-#                      # = TruncatedStreamError

    Returns:
        An operator ``Observable[SseEvent] -> Observable[StreamToken]``, with
        one decoder state per subscription.

    Example:
        >>> import reactivex
        >>> from rxtokens import SseEvent
        >>> events = [SseEvent(data='{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'),
        ...           SseEvent(data="[DONE]")]
        >>> reactivex.from_iterable(events).pipe(decode_openai_chat()).run()
        TextDelta(text='Hi', index=0)
    """
    return _decoder_operator(_OpenAIChatDecoder)


def decode_openai_responses() -> Callable[[Observable[SseEvent]], Observable[StreamToken]]:
    """Decode OpenAI Responses API stream events into tokens.

    ``response.output_text.delta`` -> `TextDelta`; ``response.refusal.delta``
    -> `RefusalDelta`; reasoning (summary) text deltas -> `ReasoningDelta`;
    ``.done`` events repeat the full text and emit only what was not streamed
    (never twice); function calls -> `ToolCallDelta` (the first with
    ``call_id`` and ``name``) then `ToolCall` on
    ``response.function_call_arguments.done``; ``response.completed`` /
    ``response.incomplete`` -> `Usage` and `Finish` (raw ``completed``, or the
    incomplete reason such as ``max_output_tokens``; normalised ``stop``,
    ``tool_calls`` when a function was called, ``length`` ...) and end the stream.

    Errors: ``response.failed`` and ``error`` -> `ProviderError`; completion
    before a terminal event -> `TruncatedStreamError`; invalid JSON ->
    `StreamDecodeError`.

    Marble diagram::

        source:  -created-text.delta("Hi")-text.done("Hi")-completed-|
        decode:  ---------T("Hi")-----------------------Usage-Finish--|

    Returns:
        An operator ``Observable[SseEvent] -> Observable[StreamToken]``.

    Example:
        >>> import reactivex
        >>> from rxtokens import SseEvent
        >>> events = [
        ...     SseEvent("response.output_text.delta",
        ...              '{"type":"response.output_text.delta","delta":"Hi"}'),
        ...     SseEvent("response.completed",
        ...              '{"type":"response.completed","response":{"status":"completed"}}')]
        >>> reactivex.from_iterable(events).pipe(decode_openai_responses()).run()
        Finish(reason='stop', index=0, raw='completed')
    """
    return _decoder_operator(_OpenAIResponsesDecoder)


def decode_anthropic() -> Callable[[Observable[SseEvent]], Observable[StreamToken]]:
    """Decode Anthropic Messages stream events into tokens.

    ``message_start`` -> `Usage` (input tokens); ``text_delta`` -> `TextDelta`;
    ``thinking_delta`` -> `ReasoningDelta`; a ``tool_use`` block ->
    `ToolCallDelta` (``id``, ``name``), its ``input_json_delta`` s ->
    `ToolCallDelta` fragments, its ``content_block_stop`` -> `ToolCall`;
    ``signature_delta`` is not text (ignored); ``message_delta`` -> `Usage`
    (cumulative: replaces, never adds) and `Finish` (``stop_reason``);
    ``message_stop`` ends the stream; ``ping`` is ignored.

    Errors: ``event: error`` -> `ProviderError` with the error ``type``
    (``overloaded_error`` ...); completion before ``message_stop`` ->
    `TruncatedStreamError`; invalid JSON -> `StreamDecodeError`.

    Marble diagram::

        source:  -message_start-ping-text_delta("Hi")-message_delta-message_stop-|
        decode:  -Usage(9,1)---------T("Hi")----------Usage(9,2),Finish----------|

    Returns:
        An operator ``Observable[SseEvent] -> Observable[StreamToken]``.

    Example:
        >>> import reactivex
        >>> from rxtokens import SseEvent
        >>> events = [
        ...     SseEvent("content_block_delta", '{"type":"content_block_delta","index":0,'
        ...              '"delta":{"type":"text_delta","text":"Hi"}}'),
        ...     SseEvent("message_stop", '{"type":"message_stop"}')]
        >>> reactivex.from_iterable(events).pipe(decode_anthropic()).run()
        TextDelta(text='Hi', index=0)
    """
    return _decoder_operator(_AnthropicDecoder)


def decode_bedrock() -> Callable[[Observable[_EventStreamMessage]], Observable[StreamToken]]:
    """Decode Amazon Bedrock ``ConverseStream`` messages into tokens.

    Use after `parse_aws_eventstream`. ``contentBlockDelta``: ``text`` ->
    `TextDelta`, ``reasoningContent.text`` -> `ReasoningDelta` (its
    ``signature`` is not text: ignored), ``toolUse.input`` -> `ToolCallDelta`
    fragments; ``contentBlockStart`` with ``toolUse`` -> `ToolCallDelta`
    (``toolUseId``, ``name``); ``contentBlockStop`` of a tool block ->
    `ToolCall`; ``messageStop`` -> `Finish` (normalised, raw ``stopReason``); ``metadata``
    -> `Usage` and the end of the stream; ``messageStart`` is ignored.

    Errors: exception messages by ``:exception-type``: ``throttlingException``
    -> `RateLimitError` (429); ``internalServerException`` /
    ``serviceUnavailableException`` -> `ProviderHTTPError` (500 / 503,
    retryable like the same HTTP statuses); ``validationException``,
    ``modelStreamErrorException`` and others -> `ProviderError` with the type
    as ``error_type``. Completion before ``messageStop`` and ``metadata`` ->
    `TruncatedStreamError`; invalid JSON -> `StreamDecodeError`.

    Marble diagram::

        source:  -messageStart-contentBlockDelta("Hi")-messageStop-metadata-|
        decode:  --------------T("Hi")-----------------Finish------Usage----|

    Returns:
        An operator ``Observable[EventStreamMessage] -> Observable[StreamToken]``.

    Example:
        >>> import reactivex
        >>> from rxtokens.eventstream import encode_message
        >>> def event(kind, payload):
        ...     return encode_message(
        ...         {":event-type": kind, ":content-type": "application/json",
        ...          ":message-type": "event"}, payload)
        >>> body = (event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}')
        ...         + event("messageStop", b'{"stopReason":"end_turn"}')
        ...         + event("metadata", b'{"usage":{"inputTokens":3,"outputTokens":1}}'))
        >>> reactivex.of(body).pipe(parse_aws_eventstream(), decode_bedrock()).subscribe(
        ...     print)  # doctest: +ELLIPSIS
        TextDelta(text='Hi', index=0)
        Finish(reason='stop', index=0, raw='end_turn')
        Usage(input_tokens=3, output_tokens=1, estimated=False)
        <...>
    """
    return _processor_operator(_BedrockDecoder)


def decode_gemini() -> Callable[[Observable[SseEvent]], Observable[StreamToken]]:
    """Decode Gemini ``streamGenerateContent?alt=sse`` chunks into tokens.

    Text parts -> `TextDelta`; ``thought: true`` parts -> `ReasoningDelta`;
    whole ``functionCall`` parts -> `ToolCall` (``id`` None unless the server
    sent one); ``usageMetadata`` (running totals, repeated) -> `Usage` when it
    changes; ``finishReason`` -> `Finish`. Gemini sends no ``[DONE]``: the
    chunk with ``finishReason`` is the terminal event, and the end of the body
    after it is success.

    Errors: an ``{"error": {...}}`` chunk -> `ProviderError` (``status`` as
    error type); completion before a ``finishReason`` -> `TruncatedStreamError`;
    invalid JSON -> `StreamDecodeError`.

    Marble diagram::

        source:  -{text "Hi"}-{text "!", finishReason STOP}-|
        decode:  -T("Hi")-----T("!"),Usage,Finish("STOP")---|

    Returns:
        An operator ``Observable[SseEvent] -> Observable[StreamToken]``.

    Example:
        >>> import reactivex
        >>> from rxtokens import SseEvent
        >>> events = [SseEvent(data='{"candidates": [{"content": {"parts": [{"text": "Hi"}]},'
        ...                         ' "finishReason": "STOP"}]}')]
        >>> reactivex.from_iterable(events).pipe(decode_gemini()).run()
        Finish(reason='stop', index=0, raw='STOP')
    """
    return _decoder_operator(_GeminiDecoder)


# --- broadcast-related ---


def partial_tool_arguments(
    *, strings: bool = True
) -> Callable[[Observable[StreamToken]], Observable[PartialToolCall]]:
    """The parsed-so-far arguments of each tool call, as its fragments arrive.

    For every `ToolCallDelta`, the arguments received so far for that call
    (keyed by ``(choice, index)``; ``id`` and ``name`` from the first fragment
    that has them) are parsed with pydantic-core's tolerant JSON parser
    (``from_json(..., allow_partial=...)``) and emitted as a `PartialToolCall`
    when the parsed dict changed (the first fragment emits ``{}``, so a UI can
    show the call as soon as its name is known). A `ToolCall` emits the final
    arguments with ``complete=True``; later fragments of that call are
    ignored. Other tokens emit nothing (merge the result with the token
    stream if you need both). A buffer that is not (yet) the start of a JSON
    object emits nothing: the stream itself is not failed, `aggregate()`
    reports malformed arguments at the end.

    Every emission is consistent with the final arguments: a key appears only
    once its value started, a string value only grows (with ``strings=False``,
    unfinished strings are left out), a number appears only when complete.
    Parsing re-reads the call's arguments on each fragment (O(n) each; fine
    for tool arguments of a few KB).

    Marble diagram::

        source:  -D('{"city')-D('": "Pa')-D('ris"}')-ToolCall({"city": "Paris"})-|
        output:  -P({})-------P({city: "Pa"})-P({city: "Paris"})-P(..., complete)-|

    Args:
        strings: show unfinished string values as far as they go (default).

    Returns:
        An operator ``Observable[StreamToken] -> Observable[PartialToolCall]``.

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from rxtokens import ToolCallDelta
        >>> fragments = [ToolCallDelta(0, "call_1", "weather", '{"city": "Pa'),
        ...              ToolCallDelta(0, None, None, 'ris", "days": 3}')]
        >>> out = reactivex.from_iterable(fragments).pipe(partial_tool_arguments())
        >>> [p.arguments for p in out.pipe(ops.to_list()).run()]
        [{'city': 'Pa'}, {'city': 'Paris', 'days': 3}]
    """
    return _partial_tool_arguments_operator(strings=strings)


# --- tokens and filters ---


def decode_token_ids(
    encoding: str | tiktoken.Encoding = "cl100k_base",
) -> Callable[[Observable[int]], Observable[_TextDelta]]:
    """Decode a stream of BPE token ids (tiktoken) into `TextDelta` s.

    A token can hold part of a multi-byte UTF-8 character: its bytes are
    buffered and only complete characters are emitted, so no delta ever holds
    a U+FFFD that the whole text would not have, and no delta is empty. The
    concatenated output equals ``encoding.decode(all_ids)`` for any split
    (invalid byte sequences become U+FFFD exactly as there); incomplete bytes
    left at completion are flushed the same way. An id outside the
    vocabulary fails the stream with `StreamDecodeError`.

    The encoding is loaded eagerly and offline (see `load_encoding`).

    Marble diagram (cl100k_base spells "🦜" as three ids: 9468, 99, 250)::

        ids:                 -a--b--c--d-|     a = 13347 (b"Hi"), b = 9468 (b"\\xf0\\x9f"),
        decode_token_ids():  -H--------E-|     c = 99 (b"\\xa6"), d = 250 (b"\\x9c")
                                               H = T("Hi"), E = T("🦜")

    Args:
        encoding: a tiktoken encoding name or object.

    Returns:
        An operator ``Observable[int] -> Observable[TextDelta]``.

    Raises:
        ConfigError: the encoding is unknown or not available offline.

    Example:
        >>> import reactivex
        >>> enc = load_encoding("cl100k_base")
        >>> ids = reactivex.from_iterable(enc.encode("Grüße 😀"))
        >>> "".join(t.text for t in ids.pipe(decode_token_ids(enc)).to_list().run())
        'Grüße 😀'
    """
    return _decode_token_ids_operator(_resolve_encoding(encoding))


def count_tokens(
    encoding: str | tiktoken.Encoding | None = None,
    model: str | None = None,
    *,
    counter: TokenCounter | None = None,
    on_count: Callable[[int], object] | None = None,
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """Count the output tokens of the streamed text with tiktoken, exactly, as it streams.

    Tokens pass through untouched. The text of `TextDelta` s (each choice
    separately) is counted with a `TokenCounter`: the count at any moment is
    exactly ``len(encoding.encode_ordinary(text_so_far))`` summed over choices,
    whatever the chunking, at a cost of about one ``encode`` call per 128
    characters. Reasoning, refusal and tool-call text are not counted.

    Running counts: pass a `TokenCounter` as `counter` (it is reset when a
    subscription starts; read ``counter.output_tokens`` any time; share it
    with one subscription at a time) and/or an `on_count` callback, called
    with the running count after each `TextDelta` (an exception in it fails
    the stream). Reading the count encodes the text not yet counted (at
    most ~1,000 characters); `on_count` does that after every delta, which
    costs several times more than counting alone (``benchmarks/operators.py``).

    At completion, if no provider `Usage` passed through, the operator emits
    ``Usage(input_tokens=None, output_tokens=n, estimated=True)`` before
    completing. Provider usage passes through untouched and suppresses it.

    The encoding: `encoding` (name or object), else the one tiktoken maps
    `model` to (a ``"provider:"`` prefix is ignored; models tiktoken does not
    know, like other providers' models, use ``cl100k_base``, so the count is
    an estimate of another tokenizer), else ``cl100k_base``. It is loaded
    eagerly and never downloaded (see `load_encoding`): ``o200k_base``
    models (gpt-4o, o1 ...) need the file in ``TIKTOKEN_CACHE_DIR`` or an
    Encoding object passed in.

    Marble diagram::

        source:          -T("Hel")-T("lo world")-|
        count_tokens():  -T("Hel")-T("lo world")-(U|     U = Usage(None, 2, estimated=True)

        source:          -T("Hi")-Usage(3, 1)-|
        count_tokens():  -T("Hi")-Usage(3, 1)-|           provider usage: no estimate

    Args:
        encoding: a tiktoken encoding name or object.
        model: a model name whose encoding to use (instead of `encoding`).
        counter: a `TokenCounter` to update (one per subscription otherwise).
        on_count: called with the running count after each text delta.

    Returns:
        An operator ``Observable[StreamToken] -> Observable[StreamToken]``.

    Raises:
        ConfigError: both `encoding` and `model`, an unknown encoding, an
            encoding file not available offline (names ``TIKTOKEN_CACHE_DIR``).

    Example:
        >>> import reactivex
        >>> tokens = reactivex.of(_TextDelta("Hello"), _TextDelta(" world"))
        >>> tokens.pipe(count_tokens("cl100k_base")).to_list().run()[-1]
        Usage(input_tokens=None, output_tokens=2, estimated=True)
    """
    resolved = _resolve_encoding(encoding, model)
    if counter is not None and not isinstance(counter, TokenCounter):
        raise _ConfigError(f"count_tokens: counter must be a TokenCounter, not {counter!r}")
    if counter is not None and counter.encoding is not resolved and (encoding or model):
        raise _ConfigError(
            f"count_tokens: the counter uses {counter.encoding.name!r}, not {resolved.name!r}"
        )
    if on_count is not None and not callable(on_count):
        raise _ConfigError(f"count_tokens: on_count must be callable, not {on_count!r}")
    if counter is not None:
        resolved = counter.encoding
    return _count_tokens_operator(resolved, counter, on_count)


def redact(
    pattern: str | _re.Pattern[str],
    replacement: str = "[REDACTED]",
    *,
    max_match: int | None = None,
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """Replace matches of a regex in the streamed text, across token boundaries.

    Each text stream (`TextDelta`, `ReasoningDelta`, `RefusalDelta`, per
    choice) is matched as one text: a secret split over several deltas is
    still replaced. Only the tail that could still become (part of) a match
    is held back; text is released in the same step as the delta that makes
    it impossible to match, so text far from any candidate passes with no
    delay at all (``benchmarks/operators.py`` measures the average delay).

    The output text equals ``re.sub(pattern, replacement, text)`` on the whole
    text, for any chunking (`replacement` is a template as in `re.sub`:
    ``\\1``, ``\\g<name>``). Matching uses the ``regex`` module (tiktoken's own
    dependency) in its `re`-compatible mode; see ``_pattern.py`` for how
    "could still match" is decided.

    A pattern that can match unboundedly long text (``\\d+``, ``.*``) needs
    `max_match`: the most characters a match may span. A candidate still
    undecided after that many characters is decided as if the text ended
    there, so a longer run is replaced in pieces (never leaked).

    Other tokens: a tool call or `Finish` of a choice ends that choice's
    text: its held text is decided (as at the end of a text) and emitted
    first; `Usage` and unknown kinds pass at once (they may overtake held
    text); completion flushes everything.

    Marble diagram (pattern ``sk-[a-z]{4}``)::

        source:    -T("key: s")-T("k-ab")-T("cd ok")-|
        redact():  -T("key: ")------------T("[REDACTED] ok")-|

    Args:
        pattern: a regex (str or compiled, str-typed; flags are kept).
        replacement: what each match becomes.
        max_match: the longest match, in characters (required for unbounded patterns).

    Returns:
        An operator ``Observable[StreamToken] -> Observable[StreamToken]``.

    Raises:
        ConfigError: invalid pattern or replacement, a pattern that matches
            the empty string, or an unbounded one without `max_match`.

    Example:
        >>> import reactivex
        >>> tokens = reactivex.of(_TextDelta("my key is sk-ab"), _TextDelta("cd, bye"))
        >>> out = tokens.pipe(redact(r"sk-[a-z]{4}")).to_list().run()
        >>> [t.text for t in out]
        ['my key is ', '[REDACTED], bye']
    """
    spec = _compile_pattern(pattern, max_match=max_match, replacement=replacement)
    return _processor_operator(lambda: _RedactProcessor(spec))


def filter_tokens(
    predicate: Callable[[StreamToken], bool],
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """Keep only the tokens for which `predicate(token)` is true.

    An exception raised by `predicate` fails the stream (``on_error``).

    Marble diagram (keep text)::

        source:           -T-R-T-F-|
        filter_tokens():  -T---T---|

    Args:
        predicate: called with each token.

    Returns:
        An operator ``Observable[StreamToken] -> Observable[StreamToken]``.

    Raises:
        ConfigError: `predicate` is not callable.

    Example:
        >>> import reactivex
        >>> from rxtokens import ReasoningDelta
        >>> tokens = reactivex.of(ReasoningDelta("hmm"), _TextDelta("Hi"))
        >>> tokens.pipe(filter_tokens(lambda t: t.type == "text")).to_list().run()
        [TextDelta(text='Hi', index=0)]
    """
    if not callable(predicate):
        raise _ConfigError(f"filter_tokens: predicate must be callable, not {predicate!r}")
    return _ops.filter(predicate)


def stop_when(
    condition: str | _re.Pattern[str] | Callable[[StreamToken], bool],
    *,
    inclusive: bool = True,
    max_match: int | None = None,
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """End the stream cleanly when the text matches a regex or a token satisfies a predicate.

    With a regex, each text stream (as in `redact`: text kind and choice) is
    matched across token boundaries; when the first match is certain, the
    text up to its end (`inclusive`, the default) or up to its start is
    emitted, then ``Finish(reason="content_filter", index=choice)``, and the
    output completes. The upstream subscription is disposed at that moment,
    which cancels the HTTP request. The emitted text is exactly
    ``text[:m.end()]`` for ``m = re.search(pattern, text)``. Text is held
    back only while it could still be part of a match; a tool call or
    `Finish` of that choice decides it (as the end of the text would).

    With a callable, `predicate(token)` is called for each token; when it
    returns true, that token is emitted (`inclusive`) or not, then the same
    `Finish` (the token's choice) and completion. Its exceptions fail the stream.

    `max_match` is as in `redact` (required for unbounded patterns).

    Marble diagram (pattern ``STOP``)::

        source:       -T("go ST")-T("OP now")-T("more")-|
        stop_when():  -T("go ")---(T("STOP")F|)          F = Finish("content_filter")
        upstream:     ^-----------!                      disposed at the match

    Args:
        condition: a regex (str or compiled) or a predicate on tokens.
        inclusive: emit the matching text or token (True) or stop right before it.
        max_match: the longest match, in characters (regex only).

    Returns:
        An operator ``Observable[StreamToken] -> Observable[StreamToken]``.

    Raises:
        ConfigError: invalid pattern (see `redact`), or `max_match` with a predicate.

    Example:
        >>> import reactivex
        >>> tokens = reactivex.of(_TextDelta("Hello. ST"), _TextDelta("OP. More"))
        >>> tokens.pipe(stop_when("STOP")).to_list().run()  # doctest: +NORMALIZE_WHITESPACE
        [TextDelta(text='Hello. ', index=0), TextDelta(text='STOP', index=0),
         Finish(reason='content_filter', index=0)]
    """
    if not isinstance(inclusive, bool):
        raise _ConfigError(f"stop_when: inclusive must be a bool, not {inclusive!r}")
    if isinstance(condition, str | _re.Pattern):
        spec = _compile_pattern(condition, max_match=max_match, what="stop_when")
        return _processor_operator(lambda: _StopWhenProcessor(spec, None, inclusive))
    if not callable(condition):
        raise _ConfigError(
            f"stop_when: condition must be a regex or a predicate on tokens, not {condition!r}"
        )
    if max_match is not None:
        raise _ConfigError("stop_when: max_match applies to a regex, not to a predicate")
    return _processor_operator(lambda: _StopWhenProcessor(None, condition, inclusive))


def chunk_by(
    boundary: Boundary = "word",
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """Re-cut streamed text into chunks that end at boundaries (words, sentences, lines ...).

    Text deltas are buffered (per text kind and choice) and each complete
    chunk is emitted as its own token as soon as its boundary arrives:

    - ``"word"``: a chunk ends after a run of whitespace;
    - ``"sentence"``: after ``.``, ``!`` or ``?`` (and closing quotes or
      brackets) followed by whitespace;
    - ``"line"``: after ``"\\n"``;
    - a regex (str or compiled): after each match (a str that is not one of
      the names above is a regex; it must not match the empty string);
    - an int ``n``: every ``n`` characters.

    A boundary is taken as soon as its match ends in the buffered text (a
    whitespace run that continues in the next delta starts the next chunk).
    The rest is flushed at completion and before any other token (a
    `Finish`, a tool call, another choice's text), so tokens keep their order
    and the concatenated text is exactly the input's.

    Marble diagram (``"word"``)::

        source:       -T("Hel")-T("lo wo")-T("rld")-|
        chunk_by():   ----------T("Hello ")---------(T("world")|)

    Args:
        boundary: where chunks end.

    Returns:
        An operator ``Observable[StreamToken] -> Observable[StreamToken]``.

    Raises:
        ConfigError: an unknown boundary, a size below 1, an invalid regex or
            one that can match the empty string.

    Example:
        >>> import reactivex
        >>> tokens = reactivex.of(_TextDelta("One. Tw"), _TextDelta("o! Thr"), _TextDelta("ee"))
        >>> [t.text for t in tokens.pipe(chunk_by("sentence")).to_list().run()]
        ['One. ', 'Two! ', 'Three']
    """
    splitter = _compile_boundary(boundary)
    return _processor_operator(lambda: _ChunkProcessor(splitter))


# --- pacing, backpressure, metrics ---


_TokenOperator = Callable[[Observable[_Any]], Observable[_Any]]


def smooth(
    delay: float = 0.01,
    chunking: _Literal["word", "line", "char"] | _re.Pattern[str] = "word",
    *,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Re-time a bursty stream into an even flow of words (Vercel AI SDK's ``smoothStream``).

    `TextDelta` text is buffered and cut into chunks with `chunking`
    (``"word"``: a word and the whitespace after it, ``r"\\S+\\s+"``;
    ``"line"``: up to and including a newline; ``"char"``: one character; or
    a compiled regex: everything up to the end of its first match, which must
    not be empty). Each chunk is followed by `delay` seconds of silence, so a
    burst of text comes out one chunk per `delay`; text that arrives more
    slowly than that is not delayed at all.

    Like smoothStream: any other token (and a `TextDelta` of another choice
    index) first flushes the incomplete chunk as it is, then passes through,
    both without added delay but in order, after the chunks queued before
    them. Completion and errors also queue behind the pending chunks: the
    remaining chunks keep their pace, the incomplete rest is flushed, then the
    stream ends (nothing is dropped, so an error's ``.partial`` downstream
    still has all the text). The source subscription itself ends when the
    source ends. Text is never altered: the concatenation of the output
    equals that of the input. ``delay=0`` only re-cuts the text.

    Marble diagram (one character = one tick; delay = 3 ticks, chunking="word")::

        source:    -X-F|            X = TextDelta("Hi you all"), F = Finish("stop")
        smooth(3): -a--b--(cF|)     a = "Hi ", b = "you ", c = "all" (flushed by F)
        source subscription: ^--!   (ends when the source completes)

    Args:
        delay: seconds of silence after each chunk (>= 0).
        chunking: ``"word"``, ``"line"``, ``"char"`` or a compiled regex.
        scheduler: timers and clock (default: the subscription's scheduler,
            else the running asyncio loop, else ``TimeoutScheduler``).

    Raises:
        ConfigError: negative `delay`, unknown `chunking`, or a regex that matches "".

    Example:
        >>> tokens.pipe(smooth(0.02), observe_on(AsyncIOScheduler(loop)))  # doctest: +SKIP
    """
    return _smooth_operator(delay, chunking, scheduler)


def cache(
    store: _Any,
    key: str,
    *,
    pace: _Literal["instant", "recorded"] = "instant",
    ttl: float | None = None,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Answer from a response cache: a hit replays the recorded tokens, a miss streams
    live and records.

    At subscription the operator looks `key` up in `store`. A miss subscribes the
    source, passes every token through and records it with its time offset; only an
    answer that completes is stored (an error, a truncated stream, a subscription
    disposed early, an empty stream or ``Finish("error")`` store nothing). A hit never
    subscribes the source: it replays the recorded tokens, each `Usage` marked
    ``cached=True`` (a ``Usage(cached=True)`` is added at the end when the answer had
    none), at once (``pace="instant"``) or at the offsets they were recorded at
    (``pace="recorded"``, timed on the scheduler). A store that fails counts as a miss.

    This operator needs the key from you; `rxtokens.providers.CachedProvider` wraps
    a provider and derives it from the request itself (`rxtokens.providers.cache_key`),
    which is the safer way to cache provider calls.

    Marble diagram (pace="recorded"; a, b recorded 1 and 3 ticks after the request)::

        first subscription (miss):  -a-b|   source subscribed, recorded
        second subscription (hit):  -a-b(u|)  u = Usage(cached=True); source not subscribed

    Args:
        store: a `rxtokens.cache.CacheStore` (`MemoryCache`, `SqliteCache`, `RedisCache`).
        key: the cache key (any non-empty string; `cache_key` makes a stable one).
        pace: ``"instant"`` or ``"recorded"``.
        ttl: seconds this answer lives (None: the store's default).
        scheduler: the replay's timers and the recording's clock (default: the
            subscription's scheduler, else the running asyncio loop for
            ``"recorded"``, else the current thread).

    Raises:
        ConfigError: an empty key, an unknown pace, a store without get/put, a bad ttl.

    Example:
        >>> import reactivex
        >>> from rxtokens.cache import MemoryCache
        >>> from rxtokens.tokens import Finish, TextDelta
        >>> store, calls = MemoryCache(), []
        >>> def source():
        ...     calls.append(1)
        ...     return reactivex.of(TextDelta("Hi"), Finish("stop"))
        >>> answer = reactivex.defer(lambda _: source()).pipe(cache(store, "greeting"))
        >>> answer.pipe(aggregate()).run().text, answer.pipe(aggregate()).run().usage
        ('Hi', Usage(input_tokens=None, output_tokens=None, estimated=False, cached=True))
        >>> len(calls)
        1
    """
    return _cache_operator(store, key, pace, ttl, scheduler)


def rate_limit(
    tokens_per_second: float,
    burst: int = 1,
    *,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Deliver at most `tokens_per_second` tokens per second (a token bucket), dropping nothing.

    Every stream token (any kind) costs one. Tokens beyond the rate queue in
    order and leave as soon as the bucket allows: the GCRA form of a token
    bucket of capacity `burst` refilled at `tokens_per_second`. Guarantee:
    in any closed time window of length ``w``, at most
    ``burst + w * tokens_per_second`` tokens are delivered. Completion and
    errors queue behind the pending tokens (the rate holds until the end;
    the source subscription ends when the source ends). The queue is unbounded:
    put `on_backpressure_buffer` in front if the producer can outrun the rate for long.

    Marble diagram (one character = one tick; 1 token per 2 ticks, burst=1)::

        source:          -abc-|
        rate_limit(0.5): -a-b-(c|)

    Args:
        tokens_per_second: the rate (> 0).
        burst: tokens that may leave back to back after a quiet period (>= 1).
        scheduler: timers and clock (default: the subscription's scheduler,
            else the running asyncio loop, else ``TimeoutScheduler``).

    Raises:
        ConfigError: a rate <= 0 or a burst < 1.

    Example:
        >>> tokens.pipe(rate_limit(50, burst=10))  # doctest: +SKIP
    """
    return _rate_limit_operator(tokens_per_second, burst, scheduler)


def frames(fps: float = 30, *, scheduler: _abc.SchedulerBase | None = None) -> _TokenOperator:
    """Batch tokens into UI frames: at most `fps` deliveries per second, deltas merged.

    A frame is delivered at most once per ``1/fps`` seconds. The first token
    after a quiet frame is delivered at once (no added latency); tokens
    arriving within the next ``1/fps`` are collected and delivered together
    at the frame boundary. In a frame, adjacent `TextDelta` (and
    `ReasoningDelta`, `RefusalDelta`) of the same index are merged into one,
    and `ToolCallDelta` continuation fragments into the fragment before them
    (see `TokenMerger`); other tokens are kept, in order. Nothing is emitted
    for an empty frame (no timer runs while idle). Completion and errors flush
    the pending frame at once, then end the stream. Text is never altered.

    Marble diagram (one character = one tick; fps=0.25, i.e. a frame every 4 ticks)::

        source:       -a-b-c------d-|
        frames(0.25): -a---X------d-|      X = TextDelta("bc"), b and c merged

    Args:
        fps: frames per second (> 0).
        scheduler: timers and clock (default: the subscription's scheduler,
            else the running asyncio loop, else ``TimeoutScheduler``).

    Raises:
        ConfigError: `fps` <= 0.

    Example:
        >>> tokens.pipe(frames(60)).subscribe(render)  # doctest: +SKIP
    """
    return _frames_operator(fps, scheduler)


def on_backpressure_buffer(
    capacity: int,
    overflow: _Literal["error", "drop_oldest", "drop_newest", "drop_latest"] = "error",
    *,
    on_drop: Callable[[_Any], None] | None = None,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Decouple a slow consumer from the producer through a queue of at most `capacity` tokens.

    Like ``observe_on(scheduler)``: the producer's ``on_next`` only queues the
    token; a drain on `scheduler` delivers the queued tokens in order, one per
    scheduled action (on an event loop the producer gets a turn between two
    deliveries; on a thread pool the consumer runs on its own thread). When a
    token arrives while `capacity` tokens are still pending, `overflow` decides:

    * ``"error"``: the upstream subscription is disposed, the pending tokens
      are delivered, then `BackpressureOverflowError` (``.capacity``);
    * ``"drop_oldest"``: the oldest pending token is dropped (a live view);
    * ``"drop_newest"`` (also accepted as ``"drop_latest"``, the name
      `Broadcast` used): the arriving token is dropped (the queue is kept).

    Dropped tokens go to `on_drop` (to log or count them). Completion and
    errors are delivered after the pending tokens. The scheduler is
    `scheduler`, else the subscription's, else the running asyncio loop (the
    consumer then runs in its own loop callbacks, so a provider's reader gets
    turns in between); with none of these there is nothing to decouple with
    and tokens pass straight through. Dropping text deltas loses text: prefer
    `on_backpressure_coalesce` for token streams.

    Marble diagram (capacity=2, "drop_oldest"; the consumer's scheduler runs
    each delivery 6 ticks after it is scheduled)::

        source:                         -abcd-|
        buffer(2, "drop_oldest"):       -------c-----d-----|    a, b dropped (to on_drop)
        buffer(2, "drop_newest"):       -------a-----b-----|    c, d dropped
        buffer(2) ("error"):            -------a-----b-----#    source unsubscribed at c

    Args:
        capacity: pending tokens allowed (>= 1): the ``max_pending`` of the
            other operators and of `Broadcast`.
        overflow: the policy above.
        on_drop: called with each dropped token; an exception fails the stream.
        scheduler: where the consumer runs (default: see above).

    Raises:
        ConfigError: invalid capacity, policy or callback.

    Example:
        >>> op = on_backpressure_buffer(100, "drop_oldest", scheduler=pool)  # doctest: +SKIP
        >>> live = tokens.pipe(op)  # doctest: +SKIP
    """
    return _buffer_operator(capacity, overflow, on_drop, scheduler)


def on_backpressure_latest(
    *,
    on_drop: Callable[[_Any], None] | None = None,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Keep only the newest pending token for a slow consumer.

    The same as ``on_backpressure_buffer(1, "drop_oldest")``.

    For streams of states (snapshots, "the text so far"), not of deltas:
    every token the consumer had no time for is dropped (to `on_drop`).

    Marble diagram (the consumer's scheduler runs each delivery 6 ticks later)::

        source:   -abcd-|
        latest(): -------d-----|

    Args:
        on_drop: called with each dropped token; an exception fails the stream.
        scheduler: where the consumer runs (default: as for `on_backpressure_buffer`).

    Example:
        >>> snapshots.pipe(on_backpressure_latest(scheduler=loop_scheduler))  # doctest: +SKIP
    """
    return _buffer_operator(1, "drop_oldest", on_drop, scheduler)


def on_backpressure_coalesce(
    max_pending: int = 1024,
    *,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Decouple a slow consumer by merging the deltas it has not taken yet: nothing is lost.

    Like `on_backpressure_buffer`, but a token that arrives while others are
    pending is merged into the last pending one when it can (adjacent text,
    reasoning or refusal deltas of the same index; tool-call argument
    fragments of the same call: see `TokenMerger`), so a slow consumer
    receives fewer, larger deltas and the text is exactly preserved. Other
    tokens (`Finish`, `Usage`, `ToolCall` ...) are barriers kept in order.
    If `max_pending` unmergeable items pile up anyway, the stream fails with
    `BackpressureOverflowError` after delivering them.

    Marble diagram (the consumer's scheduler runs each delivery 6 ticks later)::

        source:     -abcdF|
        coalesce(): -------X-----F-----|    X = TextDelta("abcd")

    Args:
        max_pending: pending items allowed after merging (>= 1).
        scheduler: where the consumer runs (default: as for `on_backpressure_buffer`).

    Example:
        >>> tokens.pipe(on_backpressure_coalesce(scheduler=loop_scheduler))  # doctest: +SKIP
    """
    return _coalesce_operator(max_pending, scheduler)


def adaptive_backpressure(controller: AdaptiveFlowController) -> _TokenOperator:
    """Put an `AdaptiveFlowController` between pull-based sources and a slow consumer.

    Upstream is subscribed with the controller's `FlowControl` as
    `rxtokens.aio.current_flow_control`, so `from_async_iterable` sources (and
    the HTTP providers built on them) pause reading when the tokens in flight
    reach the controller's window. Each token passing through counts as
    delivered; the consumer must call ``controller.ack()`` when it has
    processed one (``controller.iterate(observable)`` does that for ``async
    for``). Tokens are not altered, delayed or dropped.

    Marble diagram (window = 2: pause at 2 in flight, resume at 1; ``^`` = ack)::

        pulled from the source: -a-b-----c-----d-|    nothing pulled while paused
        acks by the consumer:   -----^---^-----^-^

    Example:
        >>> controller = AdaptiveFlowController(min_window=4, max_window=64)
        >>> async with controller.iterate(provider_stream) as tokens:  # doctest: +SKIP
        ...     async for token in tokens:
        ...         await websocket.send(token)
    """
    return _adaptive_operator(controller)


def metrics(
    stats: StreamMetrics | None = None,
    *,
    interval: float | None = None,
    on_snapshot: Callable[[MetricsSnapshot], None] | None = None,
    on_start: Callable[[StreamMetrics], None] | None = None,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """Measure a token stream as it passes: latency, throughput, sizes, errors.

    Tokens pass through untouched. Measured (see `MetricsSnapshot`): time to
    first token (first text / reasoning / refusal / tool-call token after
    subscription), inter-token latency percentiles (p50 / p95 / p99, between
    consecutive content tokens), tokens per second, chunks (`TextDelta`
    count), characters and UTF-8 bytes of text, provider-reported
    (`Usage`) output and input tokens, errors, the last finish reason.

    Results: pass a `StreamMetrics` as `stats` (read ``stats.snapshot()`` any
    time, or subscribe to ``stats.snapshots``), or receive the per-subscription
    one in `on_start`; `on_snapshot` gets a snapshot every `interval` seconds
    during the stream and the final summary (``done=True``) when it ends
    (completed, failed or disposed). Callback errors fail the stream.

    Off means zero cost: ``metrics()`` is an ordinary operator, so leaving it
    out of the chain removes all its work; nothing is measured globally.
    Memory is bounded (latency percentiles come from a reservoir of at most
    ``RESERVOIR_SIZE`` = 10,000 samples: exact up to that, a uniform sample beyond).

    Time comes from the scheduler: virtual time under a ``TestScheduler``,
    ``time.monotonic`` otherwise.

    Marble diagram (interval = 4 ticks; s = snapshot via on_snapshot)::

        source:     -a--b---c-|
        metrics():  -a--b---c-|        tokens untouched
        snapshots:  ----s---s-S        S = final summary (done=True)

    Example:
        >>> stats = StreamMetrics()
        >>> completion = run(tokens.pipe(metrics(stats)))  # doctest: +SKIP
        >>> stats.snapshot().time_to_first_token  # doctest: +SKIP
        0.412
    """
    return _metrics_operator(stats, interval, on_snapshot, on_start, scheduler)


def take_budget(
    max_output_tokens: int | None = None,
    max_seconds: float | None = None,
    *,
    count: Callable[[_Any], int] | None = None,
    scheduler: _abc.SchedulerBase | None = None,
) -> _TokenOperator:
    """End the stream cleanly when an output-token or time budget is used up; cancel upstream.

    Output tokens are counted per token with `count` (default: 1 per content
    token, i.e. text / reasoning / refusal / tool-call delta, which is what
    providers stream per model token; after re-chunking operators such as
    `smooth` pass a real counter, e.g. ``lambda t: len(enc.encode(t.text))``).
    A provider `Usage` (not estimated) raises the count to its
    ``output_tokens`` if that is higher. A token that would exceed the budget
    is not delivered; the one that reaches it is, and the stream stops at
    once. ``max_seconds`` runs from subscription.

    Stopping emits ``Finish("length", index)`` for every choice that has not
    finished (choice 0 if none was seen), completes, and disposes the upstream
    subscription (the HTTP request is cancelled). The reason is ``"length"``
    (what every provider's reply cut at its ``max_tokens`` is normalised to, so
    code that treats ``"length"`` as "truncated" works unchanged); for the time
    budget its ``raw`` is ``"timeout"``.

    Marble diagram (max_output_tokens=2)::

        source:              -a-b-c-|
        take_budget(2):      -a-(bF|)      F = Finish("length")
        source subscription: ^--!          disposed as soon as b used up the budget

    Args:
        max_output_tokens: the output-token budget (>= 1), or None.
        max_seconds: the time budget in seconds (> 0), or None.
        count: tokens a stream token costs (an exception fails the stream).
        scheduler: for the time budget (default: the subscription's scheduler,
            else the running asyncio loop, else ``TimeoutScheduler``).

    Raises:
        ConfigError: no budget, or an invalid one.

    Example:
        >>> tokens.pipe(take_budget(max_output_tokens=500, max_seconds=30))  # doctest: +SKIP
    """
    return _take_budget_operator(max_output_tokens, max_seconds, count, scheduler)


def first_of(*sources: Observable[_Any]) -> Observable[_Any]:
    """Race several streams (providers): the first to produce content wins; cancel the others.

    All sources are subscribed (in order). The first one to emit a *content*
    token (text, reasoning, refusal or tool call) wins: its earlier non-content
    tokens (e.g. an initial `Usage`) are replayed, it is mirrored to the end,
    and every other subscription is disposed at that moment. A source that
    fails or completes before producing content drops out of the race; if all
    of them do, the first that completed wins (an empty stream) or, if all
    failed, the last error is raised.

    Marble diagram::

        a:               ---x-y-|
        b:               -u-------p-q-|     u = Usage (not content: does not win)
        first_of(a, b):  ---x-y-|
        b subscription:  ^--!               disposed at a's first content token

    Raises:
        ConfigError: no sources, or something that is not an Observable.

    Example:
        >>> fastest = first_of(openai_stream, anthropic_stream)  # doctest: +SKIP
    """
    return _first_of_observable(sources)


# --- retry ---


def retry_with_backoff(
    max_attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    *,
    jitter: float = 0.0,
    retry_if: Callable[[BaseException], bool] = is_retryable,
    scheduler: _abc.SchedulerBase | None = None,
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """Re-send a request that failed before its first token, with exponential backoff.

    Put it right after the provider (before `aggregate()` / `Broadcast`): on a
    retryable error (`is_retryable`: `RateLimitError`, a 5xx `ProviderHTTPError`,
    `ConnectionLostError`, a connect-phase `StreamTimeoutError`) the source is
    subscribed again (a cold provider sends a new request) after
    ``base_delay * 2 ** (attempt - 1)`` seconds, capped at `max_delay`, or the
    error's ``retry_after`` when that is longer (a ``retry_after`` above
    `max_delay` is not waited for: the error passes through). At most
    `max_attempts` requests in all. Once any token was delivered, errors pass
    through unchanged: a request is never re-sent after tokens went out.

    Marble diagram (base_delay 2 ticks; # = RateLimitError)::

        source, 1st subscription:  --#
        source, 2nd subscription:      --a-b-|
        retry_with_backoff():      --------a-b-|

        source:                    --a--#         (a token went out: no retry)
        retry_with_backoff():      --a--#

    Args:
        max_attempts: total requests, including the first (>= 1).
        base_delay: seconds before the first retry (>= 0).
        max_delay: the longest wait between attempts (>= base_delay).
        jitter: fraction (0..1) of each delay removed at random (0: deterministic).
        retry_if: which errors to retry (default `is_retryable`); a raising
            predicate fails the stream with its exception.
        scheduler: for the waits (default: the subscription's, else the running asyncio
            loop (so cold asyncio sources are re-subscribed on it), else a timer thread).

    Raises:
        ConfigError: invalid arguments.

    Example:
        >>> from rxtokens.providers import openai_chat
        >>> tokens = openai_chat("gpt-4o-mini", "Hi", api_key="sk-test").pipe(
        ...     retry_with_backoff(max_attempts=4, base_delay=1.0))
    """
    return _retry_with_backoff_operator(
        max_attempts, base_delay, max_delay, jitter=jitter, retry_if=retry_if, scheduler=scheduler
    )


# --- inflight ---


def on_match(
    pattern_or_predicate: _Any,
    action: Callable[[TextMatch], _Any],
    *,
    max_match: int | None = None,
    name: str | None = None,
) -> Callable[[Observable[_Any]], Observable[_Any]]:
    """Run `action` once per match in the streamed text, as soon as the match is complete.

    Each choice's `TextDelta` text is watched as one text, across token
    boundaries; tokens pass through at once and unchanged (nothing is held
    back). A regex match is reported once it is *final*: no text that may
    still arrive could extend or change it (leftmost, non-overlapping, like
    ``re.finditer``; the same analysis as `redact`, so patterns of unbounded
    length need `max_match`). `action` receives a `TextMatch` (``text``,
    ``start``/``end`` in the choice's text, ``groups``, ``named``, ``index``).

    Its outcome enters the stream as an `ActionResult` (``action`` name,
    ``match`` text, JSON-ready ``value``, ``error`` message, choice ``index``):

    * a sync action runs inline; its result follows right after the token
      that completed the match (a match decided only by the end of the text
      comes before that choice's `Finish`, or at the end of the stream);
    * an action returning an awaitable (``async def``) runs as a task on the
      running event loop while tokens keep flowing; its result enters when it
      resolves. The stream's completion waits for pending actions (disposing
      cancels them). Without a running loop it runs on a worker thread.
    * an exception in the action is isolated: an `ActionResult` with
      ``error`` (``"TypeName: message"``), and the stream goes on.

    With a predicate instead of a pattern, ``predicate(text_so_far)`` is
    called after each text token of a choice, and `action` fires once per
    choice, the first time it is true (the `TextMatch` holds the text so far);
    a raising predicate fails the stream.

    Marble diagram (pattern ``\\d{3}-\\d{4}``)::

        source:     -T("call 555-")-T("12")-T("34 now")-F-|
        on_match(): -T("call 555-")-T("12")-T("34 now"),A-F-|    A = ActionResult(match="555-1234")

        with an async action that takes 3 ticks:
        on_match(): -T(...)-T(...)-T("34 now")-F--A|           completion waits for A

    Args:
        pattern_or_predicate: a regex (str or compiled ``re`` / ``regex``
            pattern) or a callable ``(text_so_far) -> bool``.
        action: called with each `TextMatch`; sync or async.
        max_match: for patterns of unbounded length (``+``, ``*``): a match
            is decided within this many characters of its start.
        name: the ``action`` name in results (default: the function's name).

    Raises:
        ConfigError: an invalid pattern, a pattern matching the empty string,
            an unbounded pattern without `max_match`, or a non-callable action.

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from rxtokens import TextDelta
        >>> tokens = reactivex.of(TextDelta("Call 555-"), TextDelta("0199 today"))
        >>> out = tokens.pipe(on_match(r"\\d{3}-\\d{4}", lambda m: m.text[:3]), ops.to_list())
        >>> out.run()[-1]
        ActionResult(action='<lambda>', match='555-0199', value='555', error=None, index=0)
    """
    return _on_match_operator(pattern_or_predicate, action, max_match=max_match, name=name)


def detect_intents(
    classifier: Callable[[str], _Any] | dict[str, _Any],
    *,
    throttle: _Throttle = "word",
    min_confidence: float = 0.0,
    errors: _Literal["raise", "ignore"] = "raise",
) -> Callable[[Observable[_Any]], Observable[_Any]]:
    """Classify each choice's running text mid-stream; emit each detected `Intent` once.

    `classifier` receives the text so far and returns the intents in it:
    ``(name, confidence)`` or ``(name, confidence, evidence)`` items, `Intent`
    s, names, or a ``{name: confidence}`` mapping (None: nothing). It may be
    async (e.g. a call to another model): it then runs on the event loop,
    at most one call per choice at a time (text arriving meanwhile is
    classified when the call returns). A dict is a shortcut for
    ``KeywordClassifier(dict)``. Each intent name is emitted once per choice,
    the first time its confidence reaches `min_confidence`, right after the
    token that revealed it (or when the async call resolves); tokens pass through unchanged.

    Throttling (so that a model-backed classifier is not called per token):

    * ``"word"`` (default): when a delta contains a non-word character; the
      classifier sees the text up to that character (complete words only);
    * ``"sentence"``: the same at ``. ! ? ; :`` and newlines;
    * ``"token"``: on every text token;
    * an int N: when N more characters arrived (the whole text so far).

    A classifier with a ``session()`` method (like `KeywordClassifier`) gets
    one session per choice and is fed only the new text
    (``session.feed(new_text)`` -> the intents it revealed), so a long stream
    costs O(length) in all rather than a search of the whole text per call.

    Text not classified yet (after the last word or sentence end) is classified
    at the choice's `Finish` (before it is emitted) or at the end of the
    stream, so the classifier always sees the whole text; the completion waits
    for pending calls. Classifier errors fail the stream (``errors="raise"``)
    or are ignored (``errors="ignore"``, e.g. for a flaky remote classifier).

    Marble diagram (KeywordClassifier({"book": r"\\bschedule\\b"}))::

        source:           -T("please sched")-T("ule it")-F-|
        detect_intents(): -T("please sched")-T("ule it"),I-F-|
                          I = Intent("book", 1.0, "schedule")

    Args:
        classifier: a callable (sync or async) or a ``{name: patterns}`` dict.
        throttle: when to call it (above).
        min_confidence: intents below it are not emitted (yet).
        errors: ``"raise"`` or ``"ignore"``.

    Raises:
        ConfigError: a non-callable classifier or an invalid option.

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from rxtokens import TextDelta
        >>> tokens = reactivex.of(TextDelta("Will it rain in Par"), TextDelta("is tomorrow?"))
        >>> classify = KeywordClassifier({"weather": [r"\\brain\\b", r"\\bsunny\\b"]})
        >>> [t for t in tokens.pipe(detect_intents(classify), ops.to_list()).run()
        ...  if t.type == "intent"]
        [Intent(name='weather', confidence=0.5, evidence='rain', index=0)]
    """
    return _detect_intents_operator(
        classifier, throttle=throttle, min_confidence=min_confidence, errors=errors
    )


def dispatch_tools(
    tools: ToolRegistry | _Any,
    *,
    timeout: float | None = 30.0,
    max_concurrency: int | None = 4,
) -> Callable[[Observable[_Any]], Observable[_Any]]:
    """Run each tool call the moment its arguments are complete; emit its `ToolResult`.

    Decoders emit a `ToolCall` as soon as a call's arguments are complete
    (the next call starts, the content block stops ...), usually well before
    the response ends. For each one (once per ``(choice, index)``), the
    arguments are validated against the tool's signature (pydantic) and the
    tool starts at once, concurrently with the rest of the stream: async tools
    as tasks on the running event loop, sync tools in the loop's thread
    executor (without a running loop: on a per-subscription thread pool).
    At most `max_concurrency` tools run at a time per stream (the others wait
    for a slot); each may run `timeout` seconds (from its start; a tool's own
    ``timeout`` wins). Tokens pass through unchanged; each call's
    `ToolResult` (``call_id``, ``name``, JSON-ready ``result`` or ``error``,
    ``index``, ``elapsed``, ``choice``) enters the stream when it is done. The
    stream completes only when every started tool is done.

    Nothing about a tool call ever fails the stream: an unknown tool, invalid
    arguments (missing, unknown, wrong type), a timeout or an exception gives
    a `ToolResult` whose ``error`` says what happened, for the model to read.
    An upstream error is forwarded at once and cancels the running async
    tools (a sync tool's thread cannot be interrupted: its result is dropped).

    Marble diagram (the tool takes 4 ticks)::

        source:           -T-C------F-|              C = ToolCall
        dispatch_tools(): -T-C------F----R|          R = ToolResult (the tool ran from C on)

    Args:
        tools: a `ToolRegistry`, a list of callables or a ``{name: callable}`` dict.
        timeout: seconds per tool call (None: no limit).
        max_concurrency: tools running at once per stream (None: no limit).

    Raises:
        ConfigError: a tool that cannot be described, or an invalid option.

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from rxtokens import ToolCall, Finish
        >>> def add(a: int, b: int) -> int:
        ...     return a + b
        >>> calls = reactivex.of(ToolCall(0, "call_1", "add", {"a": 2, "b": "3"}), Finish("stop"))
        >>> out = calls.pipe(dispatch_tools([add]), ops.to_list()).run()
        >>> [(t.name, t.result, t.error) for t in out if t.type == "tool_result"]
        [('add', 5, None)]
    """
    return _dispatch_tools_operator(tools, timeout=timeout, max_concurrency=max_concurrency)


# --- wire formats ---


def to_ui_message_stream(
    message_id: str | None = None, *, on_error: Callable[[BaseException], str] | None = None
) -> Callable[[Observable[_Any]], Observable[dict[str, _Any]]]:
    """Write a token stream as the AI SDK's UI message stream (``useChat``'s protocol).

    Each token becomes zero or more UI message chunks (dicts): ``start``,
    ``start-step``, ``text-start`` / ``text-delta`` / ``text-end``,
    ``reasoning-*``, ``tool-input-start`` / ``-delta`` / ``-available`` (from
    `ToolCallDelta` / `ToolCall`), ``tool-output-available`` or
    ``tool-output-error`` (from the `ToolResult` s of `dispatch_tools`),
    ``finish-step`` (a `StepBoundary` of `run_agent`, and the end), and
    ``finish`` with the finish reason and ``messageMetadata.usage``. Part ids
    are stable (``text-0``, ``reasoning-1`` ...), so a replayed stream writes
    the same chunks. Only choice 0 is written. An upstream error becomes an
    ``error`` chunk (``errorText``: the error's message, or ``on_error(error)``)
    and the output completes. Frame the chunks for HTTP with
    `rxtokens.formats.ui_message_stream.sse_event` and end with ``DONE_EVENT``;
    the full table is in that module.

    Marble diagram::

        source:                 -R------T-------T-F-|
        to_ui_message_stream(): -(abcd)-(efg)---g---(hik|)
            a = start, b = start-step, c = reasoning-start, d = reasoning-delta,
            e = reasoning-end, f = text-start, g = text-delta, h = text-end,
            i = finish-step, k = finish (finishReason "stop")

        source:                 -T-#
        to_ui_message_stream(): -(abcd)-(e|)       e = {"type": "error", "errorText": ...}

    Args:
        message_id: the assistant message's id in the ``start`` chunk (None:
            the client picks one).
        on_error: the ``errorText`` for an upstream error (default: its message).

    Returns:
        An operator ``Observable[StreamToken] -> Observable[dict]``.

    Example:
        >>> import reactivex
        >>> from rxtokens import Finish, TextDelta
        >>> tokens = reactivex.of(TextDelta("Hi"), Finish("stop"))
        >>> chunks = tokens.pipe(to_ui_message_stream("m1"), _ops.to_list()).run()
        >>> [c["type"] for c in chunks]
        ['start', 'start-step', 'text-start', 'text-delta', 'text-end', 'finish-step', 'finish']
    """
    if message_id is not None and not isinstance(message_id, str):
        raise _ConfigError(f"message_id must be a str or None, got {message_id!r}")
    if on_error is not None and not callable(on_error):
        raise _ConfigError(f"on_error must be callable, got {on_error!r}")
    return _to_ui_message_stream_operator(message_id, on_error)


def from_ui_message_stream() -> Callable[[Observable[_Any]], Observable[StreamToken]]:
    """Read an AI SDK UI message stream back into tokens (any AI SDK backend as a source).

    Takes chunks as dicts, JSON texts or `SseEvent` s (``sse(url,
    decode="raw")`` or ``parse_sse()`` upstream). Text / reasoning deltas,
    tool input (`ToolCallDelta`, `ToolCall`), tool outputs (`ToolResult`),
    steps (`StepBoundary`), ``messageMetadata.usage`` (`Usage`) and ``finish``
    (`Finish`; ``tool-calls`` -> ``tool_calls``) come back; sources, files and
    other data parts are skipped. ``[DONE]`` completes the output and
    disposes the source. An ``error`` chunk fails it with `ProviderError`; an
    end before ``finish`` with `TruncatedStreamError`; data that is not a
    chunk with `StreamDecodeError`.

    Marble diagram::

        source:                   -a-b-c-d-e-f-(g)-D-     D = "[DONE]"
        from_ui_message_stream(): -----T-----(UF)--|      T = TextDelta, U = Usage, F = Finish

    Returns:
        An operator ``Observable[dict | str | SseEvent] -> Observable[StreamToken]``.

    Example:
        >>> import reactivex
        >>> chunks = reactivex.of(
        ...     {"type": "start"}, {"type": "text-start", "id": "t"},
        ...     {"type": "text-delta", "id": "t", "delta": "Hi"},
        ...     '{"type":"finish","finishReason":"stop"}', "[DONE]")
        >>> chunks.pipe(from_ui_message_stream(), _ops.to_list()).run()
        [TextDelta(text='Hi', index=0), Finish(reason='stop', index=0, raw='stop')]
    """
    return _from_ui_message_stream_operator()
