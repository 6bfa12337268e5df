"""The server's output formats: one module per wire format, pure (no aiohttp, no I/O).

`formats.ui_message_stream` is the AI SDK UI message stream; `formats.ui_messages`
turns the AI SDK's ``UIMessage`` history into provider messages.
"""
