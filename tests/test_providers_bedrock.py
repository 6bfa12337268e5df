"""Amazon Bedrock end to end: our provider vs the loopback server, boto3 as the judge of its bytes,
and SigV4 signatures checked against botocore's signer."""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

import rxtokens
from rxtokens import (
    AuthenticationError,
    ConfigError,
    ProviderError,
    ProviderHTTPError,
    ProviderNotInstalledError,
    RateLimitError,
    StreamTimeoutError,
    TruncatedStreamError,
)
from rxtokens.aio import collect
from rxtokens.eventstream import EventStreamParser
from rxtokens.operators import retry_with_backoff
from rxtokens.providers import Timeouts, close_sessions
from rxtokens.providers.bedrock import Bedrock, bedrock, converse_body
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script, ScriptedToolCall, encode, expected_completion
from rxtokens.testing.wire_bedrock import EXCEPTION_TYPES

boto3 = pytest.importorskip("boto3")
botocore = pytest.importorskip("botocore")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

KEY = "bedrock-api-key-SECRET-0123456789"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
WEATHER = ScriptedToolCall("get_weather", {"city": "Zürich", "unit": "C"}, fragments=4)
TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
SCRIPTS = [
    Script(text="Hello, wörld! ✨ streaming works.", usage=(7, 9)),
    Script(text="Let me check.", reasoning="The user wants weather.", tool_calls=[WEATHER]),
    Script(text=[], tool_calls=[WEATHER, ScriptedToolCall("get_time", {"tz": "UTC"})]),
    Script(text="no usage", usage=None, finish_reason="max_tokens"),
]
IDS = ["text", "reasoning+tool", "two-tools", "no-usage"]


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(api_key=KEY) as server:
        yield server
        await close_sessions()


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No AWS credentials anywhere (and no instance metadata lookups)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# --------------------------------------------------------------------------- our provider


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
async def test_end_to_end_exact_completion(srv: ProviderServer, script: Script) -> None:
    srv.queue(script)
    tokens = bedrock(MODEL, "Hello?", tools=[TOOL], api_key=KEY, base_url=srv.base_url)
    assert await collect(tokens) == expected_completion(script, "bedrock")
    record = srv.requests[-1]
    assert record.path == f"/model/{MODEL}/converse-stream"
    assert record.authorized
    assert record.completed
    assert record.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert (
        record.json["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]
        == (TOOL["parameters"])
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
async def test_any_chunking_of_the_body(srv: ProviderServer, chunk_size: int) -> None:
    script = SCRIPTS[1]
    srv.queue(Reply(script=script, chunk_size=chunk_size))
    tokens = bedrock(MODEL, "Hi", api_key=KEY, base_url=srv.base_url)
    assert await collect(tokens) == expected_completion(script, "bedrock")


async def test_the_default_reply_and_health(srv: ProviderServer) -> None:
    completion = await collect(
        bedrock(MODEL, "What is rxtokens?", api_key=KEY, base_url=srv.base_url)
    )
    assert completion.text.startswith('You asked: "What is rxtokens?". rxtokens turns')
    assert completion.finish_reason == "stop"
    assert (await Bedrock(api_key=KEY, base_url=srv.base_url).health()).ok
    bad = await Bedrock(api_key="wrong", base_url=srv.base_url).health()
    assert not bad.ok
    assert bad.status == 403


@pytest.mark.parametrize("kind", EXCEPTION_TYPES)
async def test_exception_events_become_typed_errors(srv: ProviderServer, kind: str) -> None:
    srv.queue(Script(text="partial ", error={"type": kind, "message": "it broke"}))
    transient = kind not in ("validationException", "modelStreamErrorException")
    with pytest.raises(ProviderHTTPError if transient else ProviderError) as caught:
        await collect(bedrock(MODEL, "Hi", api_key=KEY, base_url=srv.base_url))
    assert "it broke" in str(caught.value)
    assert caught.value.partial is not None
    assert caught.value.partial.text == "partial "
    if kind == "throttlingException":
        assert isinstance(caught.value, RateLimitError)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimitError),
        (400, ProviderHTTPError),
        (503, ProviderHTTPError),
        (401, AuthenticationError),
    ],
)
async def test_http_errors(srv: ProviderServer, status: int, error: type) -> None:
    srv.queue(Reply(status=status, error_message="nope"))
    with pytest.raises(error) as caught:
        await collect(bedrock(MODEL, "Hi", api_key=KEY, base_url=srv.base_url))
    assert "nope" in str(caught.value) or status == 401
    assert KEY not in str(caught.value)
    assert "x-amzn-ErrorType" in caught.value.headers or "X-Amzn-Errortype" in caught.value.headers


async def test_wrong_key_is_403_and_names_the_fix(srv: ProviderServer) -> None:
    with pytest.raises(AuthenticationError, match="AWS_BEARER_TOKEN_BEDROCK") as caught:
        await collect(bedrock(MODEL, "Hi", api_key="wrong-key", base_url=srv.base_url))
    assert caught.value.status == 403
    assert "wrong-key" not in str(caught.value)


async def test_a_dropped_connection_is_truncation_and_retried_before_the_first_token(
    srv: ProviderServer,
) -> None:
    script = Script(text="Hello there, world")
    body_size = len(b"".join(encode("bedrock", script)))
    srv.queue(Reply(script=script, drop_after=body_size // 2))
    with pytest.raises(TruncatedStreamError):
        await collect(bedrock(MODEL, "Hi", api_key=KEY, base_url=srv.base_url))
    srv.queue(Reply(script=script, drop_after=60), script)  # cut inside the first message
    tokens = bedrock(MODEL, "Hi", api_key=KEY, base_url=srv.base_url).pipe(
        retry_with_backoff(3, base_delay=0.01)
    )
    assert (await collect(tokens)).text == "Hello there, world"


async def test_first_token_timeout_on_a_silent_server(srv: ProviderServer) -> None:
    srv.queue(Reply(script=Script(text="x"), pause_after=0, pause=None))
    with pytest.raises(StreamTimeoutError) as caught:
        await collect(
            bedrock(MODEL, "Hi", api_key=KEY, base_url=srv.base_url, timeout=Timeouts(5, 0.2, 5))
        )
    assert caught.value.phase == "first_token"


# --------------------------------------------------------------------------- boto3 as judge


@pytest.fixture(scope="module")
def threaded() -> Iterator[ProviderServer]:
    with ProviderServer.running_in_thread() as server:
        yield server


@contextlib.contextmanager
def _boto_client(server: ProviderServer, **config: Any) -> Iterator[Any]:
    """boto3's bedrock-runtime client at the test server (its connections closed after)."""
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=server.base_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=botocore.config.Config(**config),
    )
    try:
        yield client
    finally:
        client.close()


def _converse_stream(server: ProviderServer) -> list[Any]:
    """Every event boto3 reads from one converse_stream call, then its error (or None)."""
    seen: list[Any] = []
    with _boto_client(server) as client:
        response = client.converse_stream(
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}]
        )
        stream = response["stream"]
        try:
            seen.extend(stream)
        except botocore.exceptions.EventStreamError as exc:
            seen.append(exc)
        finally:
            stream.close()
    return seen


def _ours(body: bytes) -> list[dict[str, Any]]:
    """Our parse of a body as boto3 presents events: {event type: payload without "p"}."""
    parser = EventStreamParser()
    events = []
    for message in parser.feed(body) + parser.close():
        payload = json.loads(message.payload)
        payload.pop("p", None)
        events.append({message.event_type: payload})
    return events


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_boto3_reads_every_event_the_server_sends(threaded: ProviderServer, script: Script) -> None:
    threaded.queue(script)
    seen = _converse_stream(threaded)
    assert seen == _ours(b"".join(encode("bedrock", script)))
    assert {"messageStop", "metadata"} <= {next(iter(e)) for e in seen}


@pytest.mark.parametrize("kind", EXCEPTION_TYPES)
def test_boto3_reads_each_exception(threaded: ProviderServer, kind: str) -> None:
    threaded.queue(Script(text="partial", error={"type": kind, "message": "it broke"}))
    *seen, error = _converse_stream(threaded)
    assert isinstance(error, botocore.exceptions.EventStreamError)
    assert error.response["Error"] == {"Code": kind, "Message": "it broke"}
    assert seen[-1] == {"contentBlockDelta": {"delta": {"text": "partial"}, "contentBlockIndex": 0}}


def test_boto3_reads_http_errors_in_bedrocks_shape(threaded: ProviderServer) -> None:
    threaded.queue(Reply(status=429, error_message="Too many requests"))
    messages = [{"role": "user", "content": [{"text": "Hi"}]}]
    with (
        _boto_client(threaded, retries={"total_max_attempts": 1}) as client,
        pytest.raises(botocore.exceptions.ClientError) as caught,
    ):
        client.converse_stream(modelId=MODEL, messages=messages)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["Error"]["Message"] == "Too many requests"


# --------------------------------------------------------------------------- SigV4


FIXED = datetime.datetime(2026, 12, 3, 10, 0, 0)
CREDENTIALS = Credentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"
)


def _verify(received: dict[str, Any], region: str = "us-west-2") -> str:
    """Recompute the request's signature from what arrived on the wire (as AWS does)."""
    authorization = received["headers"]["Authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in received["headers"].items() if k.lower() in signed}
    request = AWSRequest(method="POST", url=received["url"], data=received["body"], headers=headers)
    request.context["timestamp"] = received["headers"]["X-Amz-Date"]
    auth = SigV4Auth(CREDENTIALS, "bedrock", region)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return f"Signature={signature}"


async def test_sigv4_signature_verifies_against_botocores_signer(
    monkeypatch: pytest.MonkeyPatch, no_aws: None
) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FIXED)
    received: list[dict[str, Any]] = []
    wire = b"".join(encode("bedrock", Script(text="signed")))

    async def handle(request: web.Request) -> web.StreamResponse:
        received.append(
            {
                "url": f"http://{request.host}{request.raw_path}",
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        await response.write(wire)
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        for model in (MODEL, "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.x"):
            tokens = bedrock(
                model,
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ü"}],
                region="us-west-2",
                base_url=base,
                credentials=CREDENTIALS,
                max_tokens=64,
            )
            assert (await collect(tokens)).text == "signed"
            got = received[-1]
            assert got["headers"]["X-Amz-Date"] == "20261203T100000Z"
            assert got["headers"]["X-Amz-Security-Token"] == "session-token"
            authorization = got["headers"]["Authorization"]
            assert authorization.startswith(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261203/us-west-2/bedrock/aws4_request, "
            )
            assert authorization.endswith(_verify(got))
            assert CREDENTIALS.secret_key not in json.dumps(
                {k: v for k, v in got["headers"].items()}
            )
        # tampering with the body or the path breaks the signature
        tampered = dict(received[-1], body=received[-1]["body"] + b" ")
        assert not received[-1]["headers"]["Authorization"].endswith(_verify(tampered))
        assert "%2F" in received[-1]["url"]  # the ARN's slash stays encoded, as signed
    finally:
        await runner.cleanup()
        await close_sessions()


def test_every_send_is_signed_anew(monkeypatch: pytest.MonkeyPatch, no_aws: None) -> None:
    provider = Bedrock(region="eu-west-1", credentials=CREDENTIALS)
    request = provider.request(MODEL, "Hi")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FIXED)
    first = request.send_headers()
    later = FIXED + datetime.timedelta(minutes=7)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: later)
    second = request.send_headers()
    assert first["X-Amz-Date"] == "20261203T100000Z"
    assert second["X-Amz-Date"] == "20261203T100700Z"
    assert first["Authorization"] != second["Authorization"]
    assert request.url == (
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
        "anthropic.claude-3-5-haiku-20241022-v1:0/converse-stream"
    )
    assert "Authorization" not in request.headers
    assert "wJalr" not in repr(request)
    assert "wJalr" not in repr(provider)


# --------------------------------------------------------------------------- configuration


def test_credentials_come_from_the_standard_chain(
    monkeypatch: pytest.MonkeyPatch, no_aws: None
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    provider = Bedrock()
    assert provider.region == "ap-southeast-2"
    assert provider.base_url == "https://bedrock-runtime.ap-southeast-2.amazonaws.com"
    headers = provider.request(MODEL, "Hi").send_headers()
    assert "Credential=AKIDFROMENV/" in headers["Authorization"]
    assert "secret-from-env" not in repr(provider)


def test_no_credentials_for_a_remote_endpoint_is_a_config_error(no_aws: None) -> None:
    with pytest.raises(ConfigError, match="AWS_BEARER_TOKEN_BEDROCK"):
        Bedrock(region="us-east-1")
    assert Bedrock(base_url="http://127.0.0.1:9").request(MODEL, "Hi").signer is None


def test_api_key_from_the_environment_is_a_bearer_token(
    monkeypatch: pytest.MonkeyPatch, no_aws: None
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", KEY)
    request = Bedrock(region="us-east-1").request(MODEL, "Hi")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.signer is None
    assert KEY not in repr(request)


def test_missing_botocore_names_the_extra(monkeypatch: pytest.MonkeyPatch, no_aws: None) -> None:
    for name in [m for m in sys.modules if m == "botocore" or m.startswith("botocore.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ProviderNotInstalledError, match=r"rxtokens\[bedrock\]"):
        Bedrock(region="us-east-1")
    # an API key or a local endpoint needs no botocore
    assert Bedrock(region="us-east-1", api_key=KEY).request(MODEL, "Hi").signer is None
    assert Bedrock(base_url="http://127.0.0.1:9").region == "us-east-1"


@pytest.mark.parametrize("region", ["", "US-EAST-1", "moon", 3])
def test_invalid_region(region: Any) -> None:
    with pytest.raises(ConfigError, match="region"):
        Bedrock(region=region, api_key=KEY)


def test_converse_body_from_openai_style_messages() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c":"Z"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "21 C"},
        {"role": "user", "content": "Thanks"},
    ]
    body = converse_body(messages, tools=[TOOL], temperature=0.2, top_p=None, stop="END", x=1)
    assert body == {
        "messages": [
            {"role": "user", "content": [{"text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "t1", "name": "w", "input": {"c": "Z"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "21 C"}]}},
                    {"text": "Thanks"},
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"temperature": 0.2, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "inputSchema": {"json": TOOL["parameters"]},
                    }
                }
            ]
        },
        "x": 1,
    }


async def test_through_rxtokens_stream_with_bedrock_configuration(srv: ProviderServer) -> None:
    tokens = rxtokens.stream(
        f"bedrock:{MODEL}", "Hi", region="eu-central-1", api_key=KEY, base_url=srv.base_url
    )
    assert (await collect(tokens)).text.startswith('You asked: "Hi".')
    assert "region" not in srv.requests[-1].json  # configuration, not a body field
