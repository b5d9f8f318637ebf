"""The metric selectors a PromQL expression reads (alert rules, recording rules, dashboards).

Not a PromQL parser: a tokenizer that knows enough of the grammar to tell a metric name from a
function, an aggregation, a keyword, a label name in ``by (...)``/``on (...)`` or a Grafana
variable. String literals, comments, ``[range]`` brackets and durations are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

# words followed by a parenthesised list of label names, not of expressions
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# words that are never metric names, wherever they stand (aggregations may be followed by
# `by (...)` before their parenthesis)
_KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
})
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:")
_IDENT_PART = _IDENT_START | frozenset("0123456789")
_QUOTES = frozenset("\"'`")


@dataclass(frozen=True, slots=True)
class Selector:
    """A metric name as written in an expression, with the label names its matchers use."""

    name: str
    labels: frozenset[str]

    @property
    def is_recorded(self) -> bool:
        """Recording-rule outputs are named ``level:metric:operations`` (with colons)."""
        return ":" in self.name


def selectors(expr: str) -> list[Selector]:
    """Every metric selector in ``expr``, in order of appearance (repeats included)."""
    found: list[Selector] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in _QUOTES:
            i = _skip_string(expr, i)
        elif c == "#":
            i = _skip_to(expr, i, "\n")
        elif c == "[":
            i = _skip_to(expr, i, "]")
        elif c == "$":  # Grafana variable: $name, ${name}, ${name:format}
            i = _skip_to(expr, i, "}") if expr.startswith("${", i) else _skip_ident(expr, i + 1)
        elif c == "{":  # a selector without a metric name: {__name__="..."} is not used here
            i = _matchers(expr, i)[1]
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            i = _skip_number(expr, i)
        elif c in _IDENT_START:
            i = _word(expr, i, found)
        else:
            i += 1
    return found


def metric_names(expr: str) -> set[str]:
    """The names of the metrics (and recorded series) that ``expr`` reads."""
    return {s.name for s in selectors(expr)}


def _word(expr: str, i: int, found: list[Selector]) -> int:
    """Reads the word at ``i`` (adding it to ``found`` when it names a metric); returns its end."""
    end = _skip_ident(expr, i)
    word = expr[i:end]
    after = _skip_space(expr, end)
    following = expr[after] if after < len(expr) else ""
    if word.lower() in _LABEL_LIST_KEYWORDS:
        return _skip_to(expr, after, ")") if following == "(" else end
    if word.lower() in _KEYWORDS or following == "(":
        return end  # a keyword, or a function / aggregation name
    if following == "{":
        labels, end = _matchers(expr, after)
        found.append(Selector(word, labels))
        return end
    found.append(Selector(word, frozenset()))
    return end


def _skip_ident(expr: str, i: int) -> int:
    while i < len(expr) and expr[i] in _IDENT_PART:
        i += 1
    return i


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _skip_to(expr: str, i: int, closing: str) -> int:
    """Past the next ``closing`` character at or after ``i`` (the end when there is none)."""
    end = expr.find(closing, i)
    return len(expr) if end < 0 else end + 1


def _skip_string(expr: str, i: int) -> int:
    quote, i = expr[i], i + 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def _skip_number(expr: str, i: int) -> int:
    """Numbers and durations (``0.5``, ``1e3``, ``0x1f``, ``5m``, ``1h30m``)."""
    while i < len(expr) and (expr[i].isalnum() or expr[i] == "."):
        i += 1
    return i


def _matchers(expr: str, i: int) -> tuple[frozenset[str], int]:
    """The label names of the ``{...}`` block opening at ``i``, and the position after it."""
    labels: set[str] = set()
    i += 1
    while i < len(expr) and expr[i] != "}":
        c = expr[i]
        if c in _QUOTES:
            i = _skip_string(expr, i)
        elif c in _IDENT_START:
            end = _skip_ident(expr, i)
            labels.add(expr[i:end])
            i = end
        else:
            i += 1
    return frozenset(labels), i + 1
