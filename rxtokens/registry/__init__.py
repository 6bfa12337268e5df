"""The registries behind serialisable pipelines: operators, providers and sinks by name.

Every entry has a pydantic model of its parameters, so that a `rxtokens.spec.PipelineSpec`
can be validated (errors name the entry and the field), exported as JSON Schema and
listed by ``rxtokens ops``. Built-in operators get a model *derived from the factory's
signature* (`params_model_from_signature`): parameters whose type can be written in JSON
(str, int, float, bool, None, Literal, lists and str-keyed dicts of those) become fields,
with the factory's defaults; parameters that cannot (callbacks, schedulers, compiled
patterns, encodings) are left out of the spec and keep the factory's default. Explicit
field checks are added where the type alone is not enough (a ``pattern`` must compile).
After the fields, the factory itself is called once with the validated values, so
everything it checks eagerly (``ConfigError``) is reported at validation time too.

Your own operators:

* the `register_operator` decorator::

      @register_operator("shout")
      def shout(suffix: str = "!") -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
          ...

  (``params_model=`` gives an explicit pydantic model instead of the derived one);
* or, in a package, an entry point in the group ``rxtokens.operators``
  (``shout = "mypkg.ops:shout"``): the named factory is imported on first use of the
  registry and registered under the entry point's name (unless importing it already
  registered it with the decorator).

Providers are the one table of `rxtokens.providers` (records declared by the provider
modules); `register_provider` adds a stream function to it, and the entry point group
``rxtokens.providers`` holds records (or stream functions) of other packages.

Names are unique across operators and sinks (a launch string tells them apart by name).

Where things are: `rxtokens.registry._params` (parameter models from signatures,
validation), `._entries` (the operator and sink tables), `._providers` (the provider
table seen by specs), `._sinks` (the built-in sinks), `._presets` (the preset table) and
`._builtins` (the built-in operator and sink entries).

Example:
    >>> entry = operator_entry("redact")
    >>> sorted(entry.params.model_fields)
    ['max_match', 'pattern', 'replacement']
"""

from __future__ import annotations

from ..providers import PROVIDER_ENTRY_POINTS
from ..providers.llama import llama_stream
from ._builtins import keep_types, preset
from ._entries import (
    OPERATOR_ENTRY_POINTS,
    OperatorEntry,
    SinkEntry,
    is_sink,
    operator_entries,
    operator_entry,
    register_operator,
    register_sink,
    sink_entries,
    sink_entry,
)
from ._params import (
    ParamError,
    kwargs_of,
    params_model_from_signature,
    summary_of,
    validate_params,
)
from ._providers import ProviderEntry, provider_entries, provider_entry, register_provider
from ._sinks import JsonlSink, StdoutSink, TextFileSink, TokenSink

__all__ = [
    "OPERATOR_ENTRY_POINTS",
    "PROVIDER_ENTRY_POINTS",
    "JsonlSink",
    "OperatorEntry",
    "ParamError",
    "ProviderEntry",
    "SinkEntry",
    "StdoutSink",
    "TextFileSink",
    "TokenSink",
    "is_sink",
    "keep_types",
    "kwargs_of",
    "llama_stream",
    "operator_entries",
    "operator_entry",
    "params_model_from_signature",
    "preset",
    "provider_entries",
    "provider_entry",
    "register_operator",
    "register_provider",
    "register_sink",
    "sink_entries",
    "sink_entry",
    "summary_of",
    "validate_params",
]
