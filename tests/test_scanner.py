"""The streaming-regex engine (rxtokens/operators/_pattern.py, _scanner.py) that redact,
stop_when and on_match share: its matches are the whole text's, whatever the chunking."""

from __future__ import annotations

import regex
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.operators._pattern import compile_pattern
from rxtokens.operators._scanner import Decided, Scanner
from tests.test_redact import CUTS, PATTERNS, TEXT, chunks

BOUNDED = [pattern for pattern, max_match in PATTERNS if max_match is None]


def scan(pattern: str, pieces: list[str], limit: int = 0) -> tuple[str, list[tuple[str, int]]]:
    """(the final text in order, the matches with their offsets in the whole text)."""
    scanner = Scanner(compile_pattern(pattern, max_match=None))
    final: list[str] = []
    found: list[tuple[str, int]] = []
    seen = 0

    def take(decided: Decided) -> None:
        buf, start, end, matches = decided
        assert 0 <= start <= end <= len(buf)
        final.append(buf[start:end])
        base = seen - len(buf)  # `buf` ends where the text fed so far ends
        found.extend((m.group(), base + m.start()) for m in matches)

    for piece in pieces:
        seen += len(piece)
        take(scanner.feed(piece, limit))
        if limit and len(found) >= limit:
            return "".join(final), found
    take(scanner.flush(limit))
    return "".join(final), found


@given(st.sampled_from(BOUNDED), TEXT, CUTS)
def test_matches_are_those_of_the_whole_text(pattern: str, text: str, cuts: list[int]) -> None:
    final, found = scan(pattern, chunks(text, cuts))
    assert found == [(m.group(), m.start()) for m in regex.finditer(pattern, text)]
    assert final == text  # every character is decided exactly once, in order


@given(st.sampled_from(BOUNDED), TEXT, CUTS)
def test_limit_stops_at_the_first_match(pattern: str, text: str, cuts: list[int]) -> None:
    final, found = scan(pattern, chunks(text, cuts), limit=1)
    first = regex.search(pattern, text)
    if first is None:
        assert (final, found) == (text, [])
    else:
        assert found == [(first.group(), first.start())]
        assert final == text[: first.end()]


def test_text_that_cannot_start_a_match_is_final_as_it_is() -> None:
    scanner = Scanner(compile_pattern(r"sk-\d{3}", max_match=None))
    text = "plain words, no key"
    buf, start, end, matches = scanner.feed(text)
    assert buf[start:end] is text
    assert not matches
    assert scanner.pending == 0
    # a possible beginning of the prefix at the very end waits; the rest is final
    buf, start, end, matches = scanner.feed("ask")
    assert (buf[start:end], scanner.pending) == ("a", 2)
