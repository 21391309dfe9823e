"""Tests of the ZeroEval answer grader on hand-made outputs."""

import pytest

from trainer.matrix.grading import (
    extract_answer,
    grade,
    is_correct_crux,
    is_correct_number,
    normalise_number_text,
)


def test_extract_json_block():
    """A fenced JSON block with reasoning and answer yields the answer field."""
    output = '```json\n{\n  "reasoning": "16 - 3 - 4 = 9, 9 * 2 = 18",\n  "answer": "18"\n}\n```'
    assert extract_answer(output) == "18"


def test_extract_numeric_json_value():
    """A JSON number answer is returned as its decimal text."""
    assert extract_answer('{"reasoning": "x", "answer": 42}') == "42"


def test_extract_first_object_wins():
    """The first complete JSON object is graded, not a later one."""
    output = '{"reasoning": "a", "answer": "1"} then {"reasoning": "b", "answer": "2"}'
    assert extract_answer(output) == "1"


def test_extract_raw_newline_in_string():
    """A literal newline inside a JSON string does not stop the parse."""
    output = '{"reasoning": "line one\nline two", "answer": "7"}'
    assert extract_answer(output) == "7"


def test_extract_broken_json_falls_back():
    """Invalid JSON (a bad escape) falls back to the quoted answer pattern."""
    output = '{"reasoning": "use \\sqrt here", "answer": "\\frac{1}{2}"'
    assert extract_answer(output) == "\\frac{1}{2}"


def test_extract_unquoted_value_fallback():
    """An unquoted answer value in broken JSON is read up to the next comma or brace."""
    output = '{"reasoning": "it is \\q", "answer": 15}'
    assert extract_answer(output) == "15"


def test_extract_boxed_fallback():
    """Without an answer field the last \\boxed{} is used, nested braces included."""
    output = "So the result is $\\boxed{\\frac{3}{4}}$."
    assert extract_answer(output) == "\\frac{3}{4}"


def test_extract_missing_answer():
    """Output without an answer field or \\boxed{} has no answer."""
    assert extract_answer('{"reasoning": "I am not sure"}') is None
    assert extract_answer("The answer is probably 12.") is None


def test_extract_empty_output():
    """Empty or absent output has no answer."""
    assert extract_answer("") is None
    assert extract_answer(None) is None


def test_extract_empty_answer_field():
    """An empty answer string counts as no answer."""
    assert extract_answer('{"reasoning": "r", "answer": ""}') is None


def test_normalise_dollar_and_comma():
    """Dollar signs, thousands separators and a GSM8K '#' marker are removed."""
    assert normalise_number_text("$1,234") == "1234"
    assert normalise_number_text("# 18") == "18"


def test_normalise_fractions():
    """Plain and LaTeX fractions of integers become decimals."""
    assert normalise_number_text("3/4") == "0.75"
    assert normalise_number_text("-1/2") == "-0.5"
    assert normalise_number_text("\\frac{3}{4}") == "0.75"
    assert normalise_number_text("\\dfrac{1}{8}") == "0.125"


def test_normalise_zero_denominator():
    """A fraction with a zero denominator is left as text."""
    assert normalise_number_text("1/0") == "1/0"


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("18", "# 18"),
        ("$18.00", "# 18"),
        ("1,000", "# 1000"),
        ("18 dollars", "# 18"),
        ("0.75", "\\frac{3}{4}"),
        ("3/4", "\\frac{3}{4}"),
        ("-15", "-15"),
    ],
)
def test_number_matches(answer, gold):
    """Answers equal to the gold's first number are correct."""
    assert is_correct_number(answer, gold)


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("17", "# 18"),
        ("-18", "# 18"),
        ("", "# 18"),
        ("eighteen", "# 18"),
        ("1/3", "\\frac{1}{2}"),
    ],
)
def test_number_mismatches(answer, gold):
    """Answers whose first number differs, or that have none, are wrong."""
    assert not is_correct_number(answer, gold)


def test_number_text_gold():
    """A gold without digits is compared as normalised text."""
    assert is_correct_number("\\text{(C)}", "\\text{(C)}")
    assert not is_correct_number("\\text{(B)}", "\\text{(C)}")


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("abc", "'abc'"),
        ("'abc'", "'abc'"),
        ("yes ", "'yes '"),
        ("[1, 2]", "[1, 2]"),
        ("True", "True"),
        ("-1", "-1"),
    ],
)
def test_crux_matches(answer, gold):
    """CRUXEval answers match the gold literal after one pair of quotes is removed."""
    assert is_correct_crux(answer, gold)


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("abc", "'abd'"),
        ("yes", "'yes '"),
        ("[1,2]", "[1, 2]"),
        ("", "''"),
    ],
)
def test_crux_mismatches(answer, gold):
    """Different strings, lost whitespace and empty answers are wrong."""
    assert not is_correct_crux(answer, gold)


def test_grade_gsm8k_record():
    """A GSM8K record graded end to end against a '# N' gold."""
    output = '```json\n{"reasoning": "...", "answer": "$1,080"}\n```'
    assert grade("gsm8k", output, "# 1080")
    assert not grade("gsm8k", output, "# 1008")


def test_grade_math_boxed_record():
    """A MATH record without JSON is graded from its \\boxed{} answer."""
    assert grade("math-l5", "Thus $\\boxed{-15}$.", "-15")


def test_grade_crux_list_record():
    """A CRUXEval JSON list answer is compared through its Python literal form."""
    output = '{"reasoning": "r", "answer": [[4, 1], [2, 3]]}'
    assert grade("crux", output, "[[4, 1], [2, 3]]")


def test_grade_empty_never_counts():
    """An empty output is wrong even when the gold is an empty string literal."""
    assert not grade("crux", "", "''")
    assert not grade("crux", '{"answer": ""}', "''")
    assert not grade("gsm8k", "", "# 0")


def test_grade_unknown_task():
    """An unknown task name raises ValueError naming the task."""
    with pytest.raises(ValueError, match="mmlu"):
        grade("mmlu", '{"answer": "A"}', "A")
