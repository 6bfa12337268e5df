"""Amazon Bedrock ``ConverseStream`` (``POST {endpoint}/model/{modelId}/converse-stream``).

The answer is an AWS event stream (``application/vnd.amazon.eventstream``), parsed by
`rxtokens.operators.parse_aws_eventstream` and decoded by `rxtokens.operators.decode_bedrock`.
Requests are authenticated in one of two ways:

- a Bedrock API key (``api_key=`` or ``AWS_BEARER_TOKEN_BEDROCK``), sent as a bearer
  token; botocore is not needed then;
- otherwise AWS Signature Version 4, made by botocore's own signer
  (``botocore.auth.SigV4Auth``, service ``bedrock``) with credentials from the standard
  AWS chain (``botocore.session.Session().get_credentials()``: environment, shared
  config and credentials files / ``AWS_PROFILE``, SSO, container and instance roles).
  Every send is signed anew (each subscription, each retry), since signatures expire.

API reference: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from reactivex import Observable
from yarl import URL

from ..errors import ConfigError, ProviderNotInstalledError
from ..operators import decode_bedrock, parse_aws_eventstream
from ..tokens import Completion, StreamToken
from ._base import (
    Capabilities,
    HttpProvider,
    Messages,
    is_local_url,
    normalize_messages,
)
from ._http import HttpRequest, Timeouts
from ._record import MessageFormat, ProviderRecord, ToolOutcome, tool_call_id, tool_result_text
from ._tools import tools_for

__all__ = [
    "BEDROCK_MESSAGES",
    "DEFAULT_REGION",
    "EVENTSTREAM_CONTENT_TYPE",
    "RECORD",
    "Bedrock",
    "bedrock",
    "converse_body",
]

DEFAULT_REGION = "us-east-1"
"""The region used when neither ``region=``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` nor the
AWS config file names one."""
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
_SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d+")
_INFERENCE = {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP"}


def _botocore() -> Any:
    """The botocore package (an optional dependency: the ``bedrock`` extra)."""
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.session
    except ImportError:
        raise ProviderNotInstalledError("botocore", "bedrock") from None
    return botocore


class Bedrock(HttpProvider):
    """Amazon Bedrock ``ConverseStream`` over aiohttp, SigV4-signed or with an API key.

    Args:
        region: the AWS region (default: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
            profile's region, else ``us-east-1``).
        api_key: a Bedrock API key (default: ``AWS_BEARER_TOKEN_BEDROCK``); when set,
            requests carry it as a bearer token and are not signed.
        base_url: the runtime endpoint (default: ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, else
            ``https://bedrock-runtime.{region}.amazonaws.com``).
        credentials: botocore credentials to sign with (default: the standard AWS chain;
            for a local `base_url` without them, requests go unsigned).
        profile: the shared-config profile the chain reads (default: ``AWS_PROFILE``).
        timeout: a `Timeouts` or one number of seconds.
        headers: extra HTTP headers (signed with the request).

    Raises:
        ConfigError: an invalid region, or no credentials at all for a remote endpoint.
        ProviderNotInstalledError: signing is needed and botocore is missing.

    Example:
        >>> provider = Bedrock(region="eu-west-1", api_key="bedrock-api-key-test")
        >>> provider.base_url
        'https://bedrock-runtime.eu-west-1.amazonaws.com'
    """

    name = "bedrock"
    env_vars = ("AWS_BEARER_TOKEN_BEDROCK",)
    default_base_url = f"https://bedrock-runtime.{DEFAULT_REGION}.amazonaws.com"
    capabilities_ = Capabilities(
        tools=True, reasoning=True, usage_in_stream=True, multiple_choices=False
    )
    requires_key = False

    def __init__(
        self,
        *,
        region: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        credentials: Any = None,
        profile: str | None = None,
        timeout: Timeouts | float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
            raise ConfigError(f"region must be an AWS region such as 'us-east-1', got {region!r}")
        self._explicit_base_url = base_url is not None
        self.region = region or _default_region(profile)
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, headers=headers)
        self._credentials: Any = None
        if self._api_key is None:
            if credentials is not None:
                self._credentials = credentials
            elif not is_local_url(self.base_url):
                self._credentials = _chain_credentials(profile)

    def _env_base_url(self) -> str | None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
        return endpoint or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    def __repr__(self) -> str:
        auth = "api key" if self._api_key else "sigv4" if self._credentials else "none"
        return f"Bedrock(region={self.region!r}, base_url={self.base_url!r}, auth={auth})"

    @property
    def key_hint(self) -> str:
        return (
            "set AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "or a role) with bedrock:InvokeModelWithResponseStream, or a Bedrock API key in "
            "AWS_BEARER_TOKEN_BEDROCK"
        )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def build_request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        params: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        # The URL exactly as aiohttp (yarl) will send it: that is what gets signed.
        url = str(URL(f"{self.base_url}/model/{quote(model, safe='')}/converse-stream"))
        return url, converse_body(messages, tools=tools, **params)

    def request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> HttpRequest:
        """The request `stream` sends: exact JSON bytes, signed at each send."""
        request = super().request(model, messages, tools=tools, **params)
        body = json.dumps(request.json, ensure_ascii=False, separators=(",", ":")).encode()
        return replace(
            request,
            headers={**request.headers, "Accept": EVENTSTREAM_CONTENT_TYPE},
            json=None,
            data=body,
            signer=self._sign if self._credentials is not None else None,
            stream_content_type=EVENTSTREAM_CONTENT_TYPE,
        )

    def parser(self) -> Callable[[Observable[bytes]], Observable[Any]]:
        return parse_aws_eventstream()

    def decoder(self) -> Callable[[Observable[Any]], Observable[StreamToken]]:
        return decode_bedrock()

    def health_url(self) -> str:
        if self._explicit_base_url or os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
            return f"{self.base_url}/foundation-models"
        return f"https://bedrock.{self.region}.amazonaws.com/foundation-models"

    def health_request(self) -> HttpRequest:
        """The model list (control plane ``ListFoundationModels``), signed like a stream."""
        request = super().health_request()
        return replace(request, signer=self._sign if self._credentials is not None else None)

    def _sign(self, request: HttpRequest) -> dict[str, str]:
        """SigV4 headers for `request`, made now by botocore's signer."""
        botocore = _botocore()
        credentials = self._credentials
        if hasattr(credentials, "get_frozen_credentials"):
            credentials = credentials.get_frozen_credentials()  # refreshes expiring ones
        aws = botocore.awsrequest.AWSRequest(
            method=request.method,
            url=request.url,
            data=request.data or b"",
            headers=dict(request.headers),
        )
        botocore.auth.SigV4Auth(credentials, _SERVICE, self.region).add_auth(aws)
        wanted = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
        return {name: aws.headers[name] for name in wanted if name in aws.headers}


def _default_region(profile: str | None) -> str:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    try:
        import botocore.session
    except ImportError:  # optional: without botocore, only the environment names a region
        return DEFAULT_REGION
    configured = botocore.session.Session(profile=profile).get_config_variable("region")
    return configured or DEFAULT_REGION


def _chain_credentials(profile: str | None) -> Any:
    botocore = _botocore()
    credentials = botocore.session.Session(profile=profile).get_credentials()
    if credentials is None:
        raise ConfigError(
            "no AWS credentials for bedrock: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run where a role is available; or pass a Bedrock API key "
            "(api_key=... or AWS_BEARER_TOKEN_BEDROCK). A local base_url needs none."
        )
    return credentials


def converse_body(
    messages: Messages, *, tools: Sequence[Mapping[str, Any]] | None = None, **params: Any
) -> dict[str, Any]:
    """The ``ConverseStream`` JSON body of OpenAI-style `messages`, `tools` and parameters.

    ``system`` / ``developer`` messages become ``system`` blocks; string contents become
    ``[{"text": ...}]``; OpenAI ``{"type": "text"}`` parts become text blocks and other
    blocks (``toolUse``, ``toolResult``, ``image`` ...) pass unchanged; an assistant's
    OpenAI ``tool_calls`` become ``toolUse`` blocks and ``tool`` messages become
    ``toolResult`` blocks of a user turn; consecutive turns of one role are merged (the
    API wants user and assistant to alternate). Tools become ``toolConfig.tools[].toolSpec``;
    ``max_tokens`` / ``temperature`` / ``top_p`` / ``stop`` go to ``inferenceConfig``; other
    parameters (``additionalModelRequestFields``, ``guardrailConfig`` ...) are body fields.

    Example:
        >>> body = converse_body(
        ...     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        ...     max_tokens=50,
        ... )
        >>> body["system"], body["inferenceConfig"]
        ([{'text': 'Be brief.'}], {'maxTokens': 50})
        >>> body["messages"]
        [{'role': 'user', 'content': [{'text': 'Hi'}]}]
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in normalize_messages(messages):
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content")))
            continue
        if role == "tool":
            result = {
                "toolUseId": message.get("tool_call_id"),
                "content": _blocks(message.get("content")) or [{"text": ""}],
            }
            role, content = "user", [{"toolResult": result}]
        else:
            content = _blocks(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            arguments = function.get("arguments") or "{}"
            content.append(
                {
                    "toolUse": {
                        "toolUseId": call.get("id"),
                        "name": function.get("name"),
                        "input": json.loads(arguments) if isinstance(arguments, str) else arguments,
                    }
                }
            )
        if turns and turns[-1]["role"] == role:  # Converse wants roles to alternate
            turns[-1]["content"].extend(content)
        else:
            turns.append({"role": role, "content": content})
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inference = dict(params.pop("inferenceConfig", None) or {})
    for name, field in _INFERENCE.items():
        if params.get(name) is not None:
            inference[field] = params.pop(name)
        params.pop(name, None)
    stop = params.pop("stop", None)
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        body["inferenceConfig"] = inference
    converted = tools_for("bedrock", tools)
    if converted:
        body["toolConfig"] = {"tools": converted}
    body.update(params)
    return body


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Converse content blocks of a message content (a string or a list of parts)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    blocks = []
    for part in content:
        if isinstance(part, str):
            blocks.append({"text": part})
        elif part.get("type") == "text":
            blocks.append({"text": part.get("text", "")})
        else:
            blocks.append(dict(part))
    return blocks


def bedrock(
    model: str,
    messages: Messages,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    region: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    credentials: Any = None,
    profile: str | None = None,
    timeout: Timeouts | float | None = None,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Observable[StreamToken]:
    """Stream an Amazon Bedrock ``ConverseStream`` answer as a cold ``Observable[StreamToken]``.

    Args:
        model: a model or inference profile id, e.g.
            ``"anthropic.claude-3-5-haiku-20241022-v1:0"`` or ``"us.amazon.nova-lite-v1:0"``.
        messages: a prompt string or messages; ``system`` messages go to ``system``.
        tools: neutral tool dicts ``{"name", "description", "parameters"}``.
        region: the AWS region (default: the environment / profile, else ``us-east-1``).
        api_key: a Bedrock API key (default: ``AWS_BEARER_TOKEN_BEDROCK``); without one,
            requests are SigV4-signed with the standard AWS credential chain.
        base_url: the runtime endpoint (e.g. the loopback test server).
        credentials: botocore credentials to sign with instead of the chain.
        profile: the AWS profile the chain reads.
        timeout: a `Timeouts` or one number of seconds for all three phases.
        headers: extra HTTP headers.
        **params: ``max_tokens``, ``temperature``, ``top_p``, ``stop`` (to
            ``inferenceConfig``) and other body fields (``additionalModelRequestFields`` ...).

    Example:
        >>> tokens = bedrock("us.amazon.nova-lite-v1:0", "Say hi", api_key="test-key")
    """
    provider = Bedrock(
        region=region,
        api_key=api_key,
        base_url=base_url,
        credentials=credentials,
        profile=profile,
        timeout=timeout,
        headers=headers,
    )
    return provider.stream(model, messages, tools=tools, **params)


def _tool_turn(
    completion: Completion, results: Sequence[ToolOutcome]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = []
    if completion.text:
        blocks.append({"text": completion.text})
    blocks.extend(
        {"toolUse": {"toolUseId": tool_call_id(call), "name": call.name, "input": call.arguments}}
        for call in completion.tool_calls
    )
    answers: list[dict[str, Any]] = []
    for call, result in zip(completion.tool_calls, results, strict=True):
        answer: dict[str, Any] = {
            "toolUseId": tool_call_id(call),
            "content": [{"text": tool_result_text(result)}],
        }
        if result.error is not None:
            answer["status"] = "error"
        answers.append({"toolResult": answer})
    return {"role": "assistant", "content": blocks}, [{"role": "user", "content": answers}]


def _final_turn(completion: Completion) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"text": completion.text}]}


BEDROCK_MESSAGES = MessageFormat("bedrock", _tool_turn, _final_turn)
"""Converse blocks: an assistant turn of ``text`` and ``toolUse`` blocks, then one user
turn of ``toolResult`` blocks (``status: error`` on failure)."""

RECORD = ProviderRecord(
    "bedrock",
    Bedrock,
    bedrock,
    default_model="us.amazon.nova-lite-v1:0",
    env_vars=Bedrock.env_vars,
    decoder=decode_bedrock,
    parser=parse_aws_eventstream,
    messages=BEDROCK_MESSAGES,
    wire_format="bedrock",
    capabilities=Bedrock.capabilities_,
    example={"base_url": "http://127.0.0.1:9"},
)
"""Amazon Bedrock ConverseStream (SigV4 or a Bedrock API key)."""
