"""JUEL (Camunda's expression language) in Python terms: ``translate`` rewrites its operators.

Pure text work, shared by the engine (which evaluates expressions) and deployment
validation (which checks them before anything runs).
"""

from __future__ import annotations

import functools
import io
import keyword
import re
import tokenize

from runner.sandbox import expressions

# NOTE: the name JUEL's ``empty`` operator is bound to when an expression runs.
EMPTY_NAME = "juel_empty"
_JUEL_OPERATORS = {"&&": " and ", "||": " or ", "!": " not "}
_JUEL_WORDS = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "div": "/", "mod": "%"}
_HAS_WORD = re.compile(rf"\b(?:{'|'.join(_JUEL_WORDS)}|empty)\b")
_OPERAND_KEYWORDS = frozenset({"True", "False", "None"})


def _ends_operand(token: tokenize.TokenInfo | None) -> bool:
    """Whether a binary operator may follow this token."""
    if token is None:
        return False
    if token.type == tokenize.NAME:
        return not keyword.iskeyword(token.string) or token.string in _OPERAND_KEYWORDS
    return token.type in (tokenize.NUMBER, tokenize.STRING) or token.string in (")", "]", "}")


def _starts_operand(token: tokenize.TokenInfo | None) -> bool:
    """Whether this token may begin an operand."""
    if token is None:
        return False
    if token.type == tokenize.NAME:
        return not keyword.iskeyword(token.string) or token.string in _OPERAND_KEYWORDS | {"not", "lambda"}
    return token.type in (tokenize.NUMBER, tokenize.STRING) or token.string in ("(", "[", "{", "-", "+", "!", "~")


@functools.lru_cache(maxsize=1024)
def translate(text: str) -> str:
    """An expression with JUEL's operators turned into Python, string literals untouched.

    ``&&``, ``||`` and ``!`` everywhere; the word operators only inside ``${...}``, and
    only where they stand as operators, so a plain Python variable may be called ``lt``.
    """
    body = expressions.unwrap(text)
    words = body != text.strip() and _HAS_WORD.search(body) is not None
    if not words and not any(op in body for op in _JUEL_OPERATORS):
        return text
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(body).readline))
    except (tokenize.TokenError, SyntaxError):
        return text  # the compiler reports the real syntax error
    starts = [0]
    for line in body.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    offset = lambda pos: starts[pos[0] - 1] + pos[1]  # noqa: E731
    edits: list[tuple[int, int, str]] = []
    for before, token, after in zip([None, *tokens], tokens, [*tokens[1:], None], strict=False):
        pair = before is not None and before.end == token.start and before.string + token.string
        if before is not None and pair in ("&&", "||") and not (edits and edits[-1][1] == offset(before.end)):
            edits.append((offset(before.start), offset(token.end), _JUEL_OPERATORS[pair]))
        elif token.string == "!":  # "!=" is one token; a lone "!" is JUEL's not
            edits.append((offset(token.start), offset(token.end), _JUEL_OPERATORS["!"]))
        elif words and token.string in _JUEL_WORDS and _ends_operand(before) and _starts_operand(after):
            edits.append((offset(token.start), offset(token.end), f" {_JUEL_WORDS[token.string]} "))
        elif words and token.string == "empty" and not _ends_operand(before) and _starts_operand(after):
            edits.append((offset(token.start), offset(token.end), f"{EMPTY_NAME} % "))
    for start, end, replacement in reversed(edits):
        body = body[:start] + replacement + body[end:]
    return body.strip()
