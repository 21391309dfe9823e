"""Grade ZeroEval outputs (GSM8K, MATH level 5, CRUXEval) against the gold answer.

ZeroEval asks every model to reply with a JSON block holding ``reasoning`` and
``answer``. The answer is read from the first complete JSON object of the
output, then from an ``"answer": ...`` pattern, then from the last
``\\boxed{...}``. GSM8K and MATH answers are compared by their first number,
after removing ``$`` and ``,`` and evaluating plain fractions. CRUXEval answers
are compared as strings after stripping one pair of surrounding quotes. An
empty or missing answer is always wrong.

These rules reproduce the accuracies that ZeroEval publishes in its
``*.summary.json`` files to within 1.5 points for every file in the routing
matrix, and the build checks this for each build.

NOTE: two ZeroEval files outside the matrix differ by more. MATH level 5 of
Phi-3-mini-4k-instruct scores 1.9 points lower here, and the partial
Meta-Llama-3.1-70B-Instruct@hyperbolic file 5 points higher.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "MATH_TASKS",
    "STRING_TASKS",
    "extract_answer",
    "grade",
    "is_correct_crux",
    "is_correct_number",
    "normalise_number_text",
]

MATH_TASKS = frozenset({"gsm8k", "math-l5"})
STRING_TASKS = frozenset({"crux"})

# Decoding is attempted from at most this many "{" positions, because LaTeX in
# a long reasoning field can contain hundreds of braces.
MAX_JSON_STARTS = 32

_DECODER = json.JSONDecoder(strict=False)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PLAIN_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}")
_QUOTED_ANSWER = re.compile(r'"answer"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_BARE_ANSWER = re.compile(r'"answer"\s*:\s*([^,\s}][^,\n}]*)')
_BOXED = "\\boxed{"


def extract_answer(output: str | None) -> str | None:
    """Extract the answer a model gave, or None when no non-empty answer is found."""
    if not output:
        return None

    answer = _answer_from_json(output)
    if answer is None:
        answer = _answer_from_pattern(output)
    if answer is None:
        answer = _answer_from_boxed(output)

    # Whitespace is kept because it is part of a CRUXEval string literal.
    if not answer:
        return None
    return answer


def grade(task: str, output: str | None, gold: str) -> bool:
    """Grade one recorded output of a ZeroEval task against its gold answer."""
    answer = extract_answer(output)
    if answer is None:
        return False
    if task in MATH_TASKS:
        return is_correct_number(answer, gold)
    if task in STRING_TASKS:
        return is_correct_crux(answer, gold)
    raise ValueError(
        f"task {task!r} has no grader; expected one of "
        f"{sorted(MATH_TASKS | STRING_TASKS)}"
    )


def normalise_number_text(text: str) -> str:
    """Remove ``$``, ``,`` and a GSM8K ``#`` marker, and evaluate a plain fraction.

    ``"3/4"`` and ``"\\frac{3}{4}"`` become ``"0.75"``. Any other text is
    returned stripped but otherwise unchanged.
    """
    text = text.replace("$", "").replace(",", "").replace("#", "").strip()
    text = _LATEX_FRACTION.sub(_evaluate_latex_fraction, text)

    match = _PLAIN_FRACTION.match(text)
    if match:
        numerator, denominator = float(match.group(1)), float(match.group(2))
        if denominator != 0:
            return repr(numerator / denominator)
    return text


def is_correct_number(answer: str, gold: str) -> bool:
    """Compare the first number of the answer with the first number of the gold.

    When either side contains no number, the normalised strings must be equal.
    """
    answer_text = normalise_number_text(answer)
    gold_text = normalise_number_text(gold)
    if not answer_text:
        return False

    answer_number = _NUMBER.search(answer_text)
    gold_number = _NUMBER.search(gold_text)
    if answer_number is None or gold_number is None:
        return answer_text == gold_text
    return float(answer_number.group()) == float(gold_number.group())


def is_correct_crux(answer: str, gold: str) -> bool:
    """Compare a CRUXEval answer with the gold Python literal as strings.

    One pair of matching surrounding quotes is removed from each side first,
    so the JSON string ``abc`` matches the gold literal ``'abc'``.
    """
    answer_text = _strip_quotes(answer)
    if not answer_text:
        return False
    return answer_text == _strip_quotes(gold)


def _answer_from_json(output: str) -> str | None:
    start = output.find("{")
    attempts = 0
    while start != -1 and attempts < MAX_JSON_STARTS:
        attempts += 1
        try:
            value, _ = _DECODER.raw_decode(output, start)
        except json.JSONDecodeError:
            start = output.find("{", start + 1)
            continue
        # Only the first object that decodes is used. A later object can still
        # match the pattern fallback.
        if isinstance(value, dict) and "answer" in value:
            return _answer_to_text(value["answer"])
        return None
    return None


def _answer_from_pattern(output: str) -> str | None:
    match = _QUOTED_ANSWER.search(output)
    if match:
        return match.group(1)
    match = _BARE_ANSWER.search(output)
    if match:
        return match.group(1)
    return None


def _answer_from_boxed(output: str) -> str | None:
    start = output.rfind(_BOXED)
    if start == -1:
        return None

    depth = 1
    position = start + len(_BOXED)
    for index in range(position, len(output)):
        char = output[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return output[position:index]
    return None


def _answer_to_text(value: Any) -> str | None:
    if value is None:
        return None
    # str() of a decoded list or bool matches CRUXEval's Python-literal gold,
    # for example [1, 2] and True.
    return str(value)


def _evaluate_latex_fraction(match: re.Match[str]) -> str:
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if denominator == 0:
        return match.group(0)
    return repr(numerator / denominator)


def _strip_quotes(text: str) -> str:
    core = text.strip()
    if len(core) >= 2 and core[0] == core[-1] and core[0] in "'\"":
        return core[1:-1]
    return text
