"""Ready-made streams without an API key: the demo, the ``testing`` provider and replay.

- `demo_stream` runs the loopback `ProviderServer` in a thread and gives a real
  provider Observable over real HTTP against it (what ``python -m rxtokens demo`` shows).
- `loopback_provider` is the factory of the ``"testing"`` provider (its `RECORD`, found
  through the entry point group ``rxtokens.providers``): OpenAI Chat Completions against a
  shared loopback server started on first use.
- `replay` decodes a recorded transcript (a bundled name, a file or bytes) synchronously.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import reactivex
from reactivex import Observable

from ..errors import ConfigError
from ..operators import decode_openai_chat, parse_sse
from ..operators._decode_sse import sse_decoder
from ..providers import (
    OPENAI_MESSAGES,
    Capabilities,
    OpenAIChat,
    ProviderRecord,
    Timeouts,
    provider_records,
)
from ..tokens import StreamToken
from .server import ProviderServer, Reply
from .transcripts import TRANSCRIPTS, load_expected, load_transcript
from .wire import FORMATS

__all__ = [
    "RECORD",
    "LoopbackProvider",
    "demo_providers",
    "demo_stream",
    "loopback_provider",
    "loopback_stream",
    "replay",
    "shared_server",
]


def demo_providers() -> dict[str, ProviderRecord]:
    """The providers the loopback server can stand in for: a wire format it speaks and a
    default model (name and alias -> record).

    Example:
        >>> demo_providers()["openai_chat"].wire_format
        'openai_chat'
    """
    return {
        name: record
        for name, record in provider_records().items()
        if record.wire_format in FORMATS and record.default_model
    }


@contextlib.contextmanager
def demo_stream(
    prompt: str, provider: str = "openai", *, delay: float = 0.015
) -> Iterator[Observable[StreamToken]]:
    """A live-looking token stream over real HTTP, no API key needed.

    Starts the loopback server in a background thread (stopped when the ``with``
    block ends) and yields the real provider Observable (`openai_chat`,
    `anthropic` ...) pointed at it. The server answers with a short echo of
    `prompt` and a built-in multi-sentence answer, one word every `delay` seconds.
    Subscribe inside async code (``await rxtokens.aio.collect(obs)``) or with
    ``rxtokens.aio.run(obs)``.

    Args:
        prompt: the user's prompt.
        provider: ``openai`` (chat), ``openai_responses``, ``anthropic``, ``gemini`` ...
            (see `demo_providers`).
        delay: seconds between events.

    Raises:
        ConfigError: unknown `provider`.

    Example:
        >>> from rxtokens.aio import run
        >>> with demo_stream("What is rxtokens?", delay=0) as tokens:
        ...     run(tokens).text.startswith('You asked: "What is rxtokens?"')
        True
    """
    record = demo_providers().get(provider)
    if record is None or record.wire_format is None or record.default_model is None:
        raise ConfigError(
            f"unknown demo provider {provider!r}; known: {', '.join(demo_providers())}"
        )
    with ProviderServer.running_in_thread(default=Reply(delay=delay)) as server:
        yield record.stream(
            record.default_model,
            prompt,
            base_url=server.base_url_for(provider),
            api_key="demo-key",
        )


class LoopbackProvider(OpenAIChat):
    """OpenAI Chat Completions against the loopback server (the ``"testing"`` provider)."""

    name = "testing"
    env_vars = ("RXTOKENS_TESTING_API_KEY",)
    default_base_url = "http://127.0.0.1"
    capabilities_ = Capabilities(
        tools=True, reasoning=True, usage_in_stream=True, multiple_choices=True, local=True
    )


_shared_lock = threading.Lock()
_shared: list[ProviderServer] = []


def shared_server() -> ProviderServer:
    """The process-wide loopback server of the ``testing`` provider (started once, in a thread).

    It is stopped at interpreter exit. Queue replies on it to script the ``testing``
    provider: ``shared_server().queue(Script(text="Hi"))``.
    """
    with _shared_lock:
        if not _shared:
            stack = contextlib.ExitStack()
            _shared.append(stack.enter_context(ProviderServer.running_in_thread()))
            atexit.register(stack.close)
        return _shared[0]


def loopback_provider(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: Timeouts | float | None = None,
    headers: Mapping[str, str] | None = None,
    include_usage: bool = True,
) -> LoopbackProvider:
    """The ``testing`` provider: against `base_url`, or else the `shared_server`.

    Example:
        >>> provider = loopback_provider()
        >>> provider.capabilities.local
        True
    """
    url = base_url or shared_server().base_url_for("openai")
    return LoopbackProvider(
        api_key=api_key, base_url=url, timeout=timeout, headers=headers, include_usage=include_usage
    )


def replay(
    source: str | os.PathLike[str] | bytes,
    decoder: str | None = None,
    *,
    chunk_size: int | None = None,
) -> Observable[StreamToken]:
    """Tokens decoded from a recorded body, synchronously (no network, no event loop).

    Args:
        source: a bundled transcript name (``"openai_chat_tools"``, see
            `rxtokens.testing.transcripts.TRANSCRIPTS`), a file path, or the body bytes.
        decoder: the wire format (``openai_chat``, ``openai_responses``, ``anthropic``,
            ``gemini``, ``bedrock``); default: the bundled transcript's own, else
            ``openai_chat``.
        chunk_size: feed the bytes in pieces of this size (default: all at once).

    Raises:
        ConfigError: unknown decoder, bad chunk size, or a missing file.

    Example:
        >>> from rxtokens.operators import aggregate
        >>> replay("openai_chat_text").pipe(aggregate()).run().finish_reason
        'stop'
    """
    records = {r.wire_format: r for r in provider_records().values() if r.decoder and r.wire_format}
    if isinstance(source, bytes | bytearray):
        body = bytes(source)
    elif isinstance(source, str) and source in TRANSCRIPTS:
        body = load_transcript(source)
        decoder = decoder or load_expected(source).format
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"replay source {str(source)!r} is neither a bundled transcript "
                f"({', '.join(TRANSCRIPTS)}) nor a file"
            )
        body = path.read_bytes()
    fmt = decoder or "openai_chat"
    record = records.get(fmt)
    if record is None or record.decoder is None:
        raise ConfigError(f"unknown decoder {fmt!r}; known: {', '.join(sorted(records))}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ConfigError(f"chunk_size must be an int >= 1 or None, got {chunk_size!r}")
    size = chunk_size or max(1, len(body))
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    parse = record.parser() if record.parser is not None else parse_sse()
    return reactivex.from_iterable(chunks).pipe(sse_decoder(parse, record.decoder()))


def loopback_stream(
    model: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    include_usage: bool = True,
    **params: Any,
) -> Observable[StreamToken]:
    """The bundled loopback server over real HTTP (OpenAI Chat wire format), no API key.

    Args:
        model: any name (the server reports it back).
        messages: a prompt or messages.
        tools: neutral tool dicts.
        api_key: sent as a bearer token (the shared server needs none).
        base_url: a `rxtokens.testing.ProviderServer` URL (default: one shared server
            started in this process on first use).
        timeout: seconds for each phase (connect, first byte, between chunks).
        headers: extra HTTP headers.
        include_usage: ask for the trailing usage chunk.
        **params: more request fields (``n``, ``temperature`` ...).
    """
    provider = loopback_provider(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        headers=headers,
        include_usage=include_usage,
    )
    return provider.stream(model, messages, tools=tools, **params)


RECORD = ProviderRecord(
    "testing",
    loopback_provider,
    loopback_stream,
    default_model="rxtokens-test",
    env_vars=LoopbackProvider.env_vars,
    decoder=decode_openai_chat,
    messages=OPENAI_MESSAGES,
    wire_format="openai_chat",
    capabilities=LoopbackProvider.capabilities_,
)
"""The ``testing`` provider (entry point ``testing`` of the group ``rxtokens.providers``)."""
