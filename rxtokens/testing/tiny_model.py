"""A tiny llama GGUF model for tests: real llama.cpp, no downloaded weights.

`write_tiny_llama_gguf` writes a complete llama-architecture GGUF file of a few
hundred KB with the `gguf` package: a SentencePiece-style (``"llama"``)
vocabulary with byte-fallback tokens ``<0x00>`` .. ``<0xFF>``, the special
tokens ``<unk>``, ``<s>``, ``</s>``, ASCII pieces and some multi-byte pieces
(``"é"``, ``"日本"``, ``"▁the"`` ...), f32 weights drawn from a seeded numpy
generator, and a small Jinja chat template in ``tokenizer.chat_template``.
llama.cpp (through llama-cpp-python) loads it and generates real tokens.

Two kinds of weights:

* random (the default): the output is gibberish, including byte tokens that
  split UTF-8 characters or form invalid sequences; good for asserting that a
  streaming path agrees with llama-cpp-python itself.
* scripted (``script=[...]``): the network is wired as a bigram chain, so
  greedy (and, in practice, any) sampling emits exactly the given pieces in
  order: the first piece after any token outside the script, each piece
  followed by the next, and after the last one either the end-of-sequence
  token (when the script ends with ``"</s>"``) or the first piece again.
  Attention and feed-forward blocks still run (random Q/K/V, gate and up
  weights) but their output projections are zero, so the residual stream is
  the current token's embedding. Use it to force split multi-byte characters,
  stop sequences or an end-of-sequence token.

The file layout follows llama.cpp's llama architecture: ``token_embd``,
``output_norm``, ``output`` and per block ``attn_norm``, ``attn_q/k/v``,
``attn_output``, ``ffn_norm``, ``ffn_gate/up/down`` (numpy shapes are the
reverse of ggml's ``ne``), plus the ``llama.*`` hyper-parameters and the
``tokenizer.ggml.*`` vocabulary keys.

Example:
    >>> path = write_tiny_llama_gguf(tmp_path / "tiny.gguf")  # doctest: +SKIP
    >>> llm = llama_cpp.Llama(model_path=str(path), verbose=False)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

__all__ = ["CHAT_TEMPLATE", "tiny_llama_vocab", "write_tiny_llama_gguf"]

#: The chat template stored in the model (``<|role|>`` headers, one message per block).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_SPECIALS = (("<unk>", TokenType.UNKNOWN), ("<s>", TokenType.CONTROL), ("</s>", TokenType.CONTROL))

# Multi-character pieces. SentencePiece merges pairs of existing pieces, so every
# piece here can be built from two shorter ones ("▁the" = "▁" + "the", "the" = "t" + "he").
_EXTRA_PIECES = (
    "he", "the", "▁the", "▁a", "in", "▁in", "er", "▁is", "is", "an", "▁an", "on",
    "é", "▁é", "è", "à", "ü", "ö", "ß", "ñ", "ç", "€", "£", "°",
    "日", "本", "日本", "▁日本", "語", "中", "文", "中文", "한", "국", "😀", "🚀",
)  # fmt: skip


def tiny_llama_vocab() -> list[tuple[str, TokenType]]:
    """The vocabulary of the tiny model: ``(piece, token type)`` in token-id order.

    Ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``; ids 3 .. 258 are the byte
    tokens ``<0x00>`` .. ``<0xFF>``; then ``"▁"`` (the SentencePiece space), the
    printable ASCII characters and the multi-character pieces.

    Example:
        >>> vocab = tiny_llama_vocab()
        >>> vocab[1][0], vocab[3 + 0xE6][0]
        ('<s>', '<0xE6>')
    """
    vocab: list[tuple[str, TokenType]] = list(_SPECIALS)
    vocab += [(f"<0x{b:02X}>", TokenType.BYTE) for b in range(256)]
    vocab.append(("▁", TokenType.NORMAL))
    vocab += [(chr(c), TokenType.NORMAL) for c in range(0x21, 0x7F)]
    vocab += [(piece, TokenType.NORMAL) for piece in _EXTRA_PIECES]
    return vocab


def write_tiny_llama_gguf(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int | None = None,
    n_ff: int = 128,
    n_ctx: int = 256,
    script: Sequence[str] | None = None,
    chat_template: str | None = CHAT_TEMPLATE,
) -> Path:
    """Write a tiny random-weight llama GGUF model to `path` and return the path.

    Args:
        path: Where to write the ``.gguf`` file (parent directories must exist).
        seed: Seed of the numpy generator for the weights (same seed, same file).
        n_embd: Embedding width (a multiple of `n_head`; ``n_embd // n_head`` even).
        n_layer: Number of transformer blocks.
        n_head: Number of attention heads.
        n_head_kv: Number of key/value heads (grouped-query attention); defaults to `n_head`.
        n_ff: Feed-forward width.
        n_ctx: Training context length stored in the metadata.
        script: Optional sequence of vocabulary pieces (see `tiny_llama_vocab`, e.g.
            ``["▁the", "<0xE6>", "<0x97>", "<0xA5>", "</s>"]``) to wire the model as a
            bigram chain that emits them in order (module docstring). Each piece may
            appear once; ``"</s>"`` may only be last; at most ``n_embd - 1`` pieces.
        chat_template: Jinja chat template stored as ``tokenizer.chat_template``
            (None: no template).

    Returns:
        The path written, as a `Path`.

    Raises:
        ValueError: Inconsistent dimensions or an invalid `script`.

    Example:
        >>> path = write_tiny_llama_gguf(
        ...     tmp_path / "m.gguf", script=["▁the", "é", "</s>"]
        ... )  # doctest: +SKIP
    """
    n_head_kv = n_head if n_head_kv is None else n_head_kv
    if n_embd % n_head or (n_embd // n_head) % 2 or n_head % n_head_kv:
        raise ValueError(
            f"n_embd={n_embd} must split into n_head={n_head} heads of even size, "
            f"and n_head into n_head_kv={n_head_kv} groups"
        )
    vocab = tiny_llama_vocab()
    n_vocab = len(vocab)
    head_dim = n_embd // n_head
    rng = np.random.default_rng(seed)

    def weights(*shape: int, scale: float = 0.5) -> np.ndarray:
        # numpy shape (rows, cols) is ggml ne {cols, rows}: llama.cpp's {n_in, n_out}.
        values: np.ndarray = rng.standard_normal(shape) * (scale / float(np.sqrt(shape[-1])))
        return values.astype(np.float32)

    token_embd = weights(n_vocab, n_embd, scale=float(np.sqrt(n_embd)))
    output = weights(n_vocab, n_embd, scale=4.0)
    zero_residual = False
    if script is not None:
        token_embd, output = _bigram_chain(vocab, list(script), n_embd)
        zero_residual = True

    writer = GGUFWriter(os.fspath(path), "llama")
    writer.add_name("rxtokens tiny llama")
    writer.add_file_type(LlamaFileType.ALL_F32)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)

    writer.add_tokenizer_model("llama")
    writer.add_token_list([piece for piece, _ in vocab])
    writer.add_token_scores([_score(piece, kind) for piece, kind in vocab])
    writer.add_token_types([int(kind) for _, kind in vocab])
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    writer.add_tensor("token_embd.weight", token_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    for i in range(n_layer):
        blk = f"blk.{i}"
        attn_out = weights(n_embd, n_head * head_dim)
        ffn_down = weights(n_embd, n_ff)
        if zero_residual:
            attn_out[:] = 0.0
            ffn_down[:] = 0.0
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{blk}.attn_q.weight", weights(n_head * head_dim, n_embd))
        writer.add_tensor(f"{blk}.attn_k.weight", weights(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"{blk}.attn_v.weight", weights(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"{blk}.attn_output.weight", attn_out)
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", weights(n_ff, n_embd))
        writer.add_tensor(f"{blk}.ffn_up.weight", weights(n_ff, n_embd))
        writer.add_tensor(f"{blk}.ffn_down.weight", ffn_down)

    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return Path(path)


def _score(piece: str, kind: TokenType) -> float:
    """SentencePiece merge priority: longer pieces win, byte and special tokens never merge."""
    if kind is not TokenType.NORMAL:
        return 0.0
    return float(len(piece.encode("utf-8")))


def _bigram_chain(
    vocab: list[tuple[str, TokenType]], script: list[str], n_embd: int
) -> tuple[np.ndarray, np.ndarray]:
    """Embedding and output matrices that make the model emit `script` in order.

    Script token k gets the one-hot embedding e_{k+1}; every other token gets e_0.
    The output row of the token that follows script token k is e_{k+1} (and the
    row of the first script token also gets e_0), so after the final RMS norm the
    logit of the intended successor is large and every other logit is zero.
    """
    ids = {piece: i for i, (piece, _) in enumerate(vocab)}
    unknown = [piece for piece in script if piece not in ids]
    if unknown:
        raise ValueError(f"script pieces not in the vocabulary: {unknown!r}")
    if not script or len(set(script)) != len(script):
        raise ValueError("script must be non-empty and use each piece once")
    if "</s>" in script[:-1]:
        raise ValueError("'</s>' may only end the script")
    if len(script) > n_embd - 1:
        raise ValueError(f"a script of {len(script)} pieces needs n_embd > {len(script)}")
    chain = [ids[piece] for piece in script]
    n_vocab = len(vocab)
    strength = 40.0 / np.sqrt(n_embd)  # final logit ~ 40: sampling at any temperature follows it

    token_embd = np.zeros((n_vocab, n_embd), dtype=np.float32)
    token_embd[:, 0] = 1.0
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    output[chain[0], 0] = strength
    for k, token in enumerate(chain):
        token_embd[token, 0] = 0.0
        token_embd[token, k + 1] = 1.0
        if token == ids["</s>"]:
            continue
        successor = chain[k + 1] if k + 1 < len(chain) else chain[0]
        output[successor, k + 1] = strength
    return token_embd, output
