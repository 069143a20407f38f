"""studio.tools: schemas from functions, the built-in tools, and running tool calls."""
from __future__ import annotations

import enum
import importlib
import json
import re
import time
from typing import Literal, Optional

import pytest
from jsonschema import Draft202012Validator

from studio.tools import (BUILTIN_TOOLS, Tool, get_tools, run_tool_call, run_tool_calls,
                          tool_from_function)
from studio.tools.calculator import calculator
from studio.tools.clock import add_to_date, convert_time, current_time, date_difference
from studio.tools.text import text_statistics
from studio.tools import units
from studio.tools.units import convert_units
from studio.types import ToolCall


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def search(query: str, limit: int = 5, tags: list[int] | None = None,
           mode: Literal["fast", "exact"] = "fast", color: Color = Color.RED,
           ratio: Optional[float] = None, strict: bool = False, extra: dict = None) -> str:
    """Search the catalogue.

    A second paragraph that is not part of the description.

    Args:
        query: What to look for.
        limit (int): How many results
            to return at most.
        tags: Tag ids to filter on.

    Returns:
        The results.
    """
    return f"{query}|{limit}|{tags}|{mode}|{color.value}|{ratio}|{strict}"


# --- schema derivation --------------------------------------------------------

def test_schema_from_signature_and_docstring():
    tool = tool_from_function(search)
    assert tool.name == "search" and tool.function is search
    assert tool.description == "Search the catalogue."
    params = tool.parameters
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["query"]
    props = params["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"] == {"type": "integer", "description": "How many results to return at most.",
                              "default": 5}
    assert props["tags"] == {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}],
                             "default": None, "description": "Tag ids to filter on."}
    assert props["mode"] == {"type": "string", "enum": ["fast", "exact"], "default": "fast"}
    assert props["color"] == {"type": "string", "enum": ["red", "green"], "default": "red"}
    assert props["ratio"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert props["strict"]["type"] == "boolean"
    assert props["extra"]["type"] == "object"
    text = json.dumps(params)   # must be plain JSON, flat: no $ref or titles a small model would trip on
    assert "$ref" not in text and '"title"' not in text
    Draft202012Validator.check_schema(params)


def test_builtin_schemas_fit_openai_function_tools():
    for tool in BUILTIN_TOOLS.values():
        params = tool.parameters
        Draft202012Validator.check_schema(params)
        assert params["type"] == "object" and params["additionalProperties"] is False
        assert set(params["required"]) <= set(params["properties"])
        assert all(prop.get("description") for prop in params["properties"].values()), tool.name
        assert "$ref" not in json.dumps(params) and '"title"' not in json.dumps(params)
    assert BUILTIN_TOOLS["add_to_date"].parameters["required"] == ["date"]
    assert BUILTIN_TOOLS["add_to_date"].parameters["properties"]["months"]["default"] == 0


def test_schema_and_validation_agree():
    # A value the schema allows passes validation, one it does not is refused: one pydantic model serves both.
    def book(room: Literal["small", "large"], nights: int, guests: list[str],
             note: str | None = None, ids: set[int] = frozenset(), code: int | str = 0) -> str:
        return ""
    tool = tool_from_function(book)
    validator = Draft202012Validator(tool.parameters)
    good = {"room": "small", "nights": 2, "guests": ["Ana"], "note": None, "ids": [1, 2], "code": "A1"}
    assert validator.is_valid(good)
    assert run_tool_call(ToolCall("book", good), [tool]).error is False
    for bad in ({"room": "huge", "nights": 2, "guests": []}, {"room": "small", "guests": []},
                {"room": "small", "nights": 2, "guests": [], "pets": 1}):
        assert not validator.is_valid(bad)
        assert run_tool_call(ToolCall("book", bad), [tool]).error is True


def test_parameter_names_that_pydantic_models_use_themselves():
    def describe(schema: str, copy: int, model_config: bool = False) -> str:
        return f"{schema}|{copy}|{model_config}"
    tool = tool_from_function(describe)
    assert list(tool.parameters["properties"]) == ["schema", "copy", "model_config"]
    call = run_tool_call(ToolCall("describe", {"schema": "s", "copy": "2"}), [tool])
    assert call.result == "s|2|False" and not call.error


def test_wire_formats_and_custom_name():
    tool = tool_from_function(search, name="catalogue_search")
    assert tool.responses_schema() == {"type": "function", "name": "catalogue_search",
                                       "description": tool.description, "parameters": tool.parameters,
                                       "strict": False}
    assert tool.chat_schema() == {"type": "function", "function": {
        "name": "catalogue_search", "description": tool.description, "parameters": tool.parameters}}


def test_no_docstring_and_no_parameters():
    def ping() -> str:
        return "pong"
    tool = tool_from_function(ping)
    assert tool.description == "ping"
    assert tool.parameters["properties"] == {} and tool.parameters["required"] == []


def test_invalid_name_is_rejected():
    with pytest.raises(ValueError, match="invalid tool name"):
        tool_from_function(lambda: 1)            # "<lambda>"
    with pytest.raises(TypeError, match="no type annotation"):
        tool_from_function(lambda x: x, name="identity")


class Widget:
    """A type with no JSON form."""


def test_unannotated_and_unsupported_parameters_are_rejected():
    def unannotated(x, y: int) -> int:
        return y

    def var_args(*numbers: int) -> int:
        return 0

    def positional_only(x: int, /) -> int:
        return x

    def odd_type(x: Widget) -> int:   # no JSON form
        return 0

    for fn in (unannotated, var_args, positional_only, odd_type):
        with pytest.raises(TypeError):
            tool_from_function(fn)
    with pytest.raises(TypeError, match="'x'"):
        tool_from_function(unannotated)
    with pytest.raises(TypeError, match="unsupported parameter type"):
        tool_from_function(odd_type)


# --- calculator -----------------------------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("7 // 2", 3), ("7 % 4", 3),
    ("2 ** 10", 1024), ("2 ^ 10", 1024), ("-3 ** 2", -9), ("+4", 4), ("0.1 + 0.2", 0.3),
    ("sqrt(16)", 4), ("abs(-2.5)", 2.5), ("round(2.567, 2)", 2.57), ("floor(2.7) + ceil(2.1)", 5),
    ("max(1, 5, 3) - min(4, 2)", 3), ("log(e)", 1), ("log10(1000)", 3), ("log(8, 2)", 3),
    ("exp(0)", 1), ("cos(0) + sin(0) + tan(0)", 1), ("2 * pi", 6.283185307179586),
])
def test_calculator(expression, expected):
    assert calculator(expression) == pytest.approx(expected)


@pytest.mark.parametrize("expression, message", [
    ("__import__('os')", "unknown function"),
    ("os.system('ls')", "attribute"),
    ("(1).__class__", "attribute"),
    ("foo + 1", "unknown name"),
    ("open('x')", "unknown function"),
    ("9**9**9", "digits"),
    ("10 ** 100000", "digits"),
    ("2.0 ** 100000", "too large"),
    ("exp(1000)", "too large"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("sqrt(-1)", "undefined"),
    ("'a' * 3", "only numbers"),
    ("[1, 2][0]", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("1 +", "cannot parse"),
    ("1" * 2000, "too long"),
    ("sqrt", "function"),
])
def test_calculator_refuses(expression, message):
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        calculator(expression)
    assert time.monotonic() - started < 2


@pytest.fixture
def computed(monkeypatch):
    """Every operation and function call the calculator actually performs, with its arguments."""
    calc = importlib.import_module("studio.tools.calculator")   # the package's `calculator` is the function
    seen: list[tuple] = []

    def spy(name, fn):
        def wrapper(*args):
            seen.append((name, *args))
            return fn(*args)
        return wrapper
    for op, fn in list(calc._BINARY.items()):
        monkeypatch.setitem(calc._BINARY, op, spy(op.__name__, fn))
    for name, fn in list(calc._FUNCTIONS.items()):
        monkeypatch.setitem(calc._FUNCTIONS, name, spy(name, fn))
    return seen


@pytest.mark.parametrize("expression, message, never_run", [
    # Each of these takes seconds to minutes of CPU with the GIL held if tried.
    ("round(5, -10**7)", "between -1000 and 1000", ("round", 5, -10**7)),
    ("round(2.5, 10**9)", "between -1000 and 1000", ("round", 2.5, 10**9)),
    ("9**9**9", "more than 1000 digits", ("Pow", 9, 9**9)),
    ("(-7) ** 10**7", "more than 1000 digits", ("Pow", -7, 10**7)),
    ("factorial(10**6)", "more than 1000 digits", ("factorial", 10**6)),
    ("factorial(450)", "more than 1000 digits", ("factorial", 450)),
    ("10**999 * 10**999", "more than 1000 digits", ("Mult", 10**999, 10**999)),
])
def test_calculator_refuses_costly_operations_without_running_them(computed, expression, message, never_run):
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        calculator(expression)
    assert never_run not in computed
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("expression, message", [
    ("1 << 10**9", "<< operator is not allowed"),
    ("1 >> 2", ">> operator"),
    ("~5", "~ operator"),
    ("6 & 3", "& operator"),
    ("'ab' * 10**9", "only numbers"),
    ("[0] * 10**9", "not allowed"),
    ("1e999", "too large"),
    ("1e308 * 10", "too large"),
    ("(10**999) ** 0.5", "too large"),
    ("factorial(-1)", "whole number"),
    ("factorial(2.5)", "whole number"),
    ("5!", r"factorial\(n\)"),
    ("-" * 990 + "1", "nested too deeply|cannot parse"),
])
def test_calculator_refuses_other_unbounded_input(expression, message):
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        calculator(expression)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("expression, expected", [
    ("factorial(20)", 2432902008176640000), ("factorial(5.0)", 120), ("round(123456, -3)", 123000),
    ("round(5, -1000)", 0), ("2 ** 3000", 2 ** 3000), ("(-1) ** 10**999", 1), ("10**999 + 1", 10**999 + 1),
])
def test_calculator_large_but_bounded_results_are_exact(expression, expected):
    assert calculator(expression) == expected


# --- dates and times ---------------------------------------------------------------

def test_convert_time_across_dst():
    summer = convert_time("2026-07-01T12:00", "America/New_York", "Europe/Berlin")
    assert summer["to"]["datetime"] == "2026-07-01T18:00+02:00"
    assert summer["to"]["abbreviation"] == "CEST" and summer["from"]["abbreviation"] == "EDT"
    winter = convert_time("2026-01-15 12:00", "America/New_York", "Europe/Berlin")
    assert winter["to"]["datetime"] == "2026-01-15T18:00+01:00"
    # An explicit offset wins over from_timezone; the date rolls over.
    tokyo = convert_time("2026-07-01T20:00Z", "America/New_York", "Asia/Tokyo")
    assert tokyo["to"]["datetime"] == "2026-07-02T05:00+09:00" and tokyo["to"]["weekday"] == "Thursday"


def test_convert_time_flags_nonexistent_wall_time():
    result = convert_time("2026-03-08T02:30", "America/New_York", "UTC")
    assert "does not exist" in result["note"]


def test_time_zone_names_and_errors():
    assert current_time("Europe/Berlin")["utc_offset"] in ("+01:00", "+02:00")
    assert current_time()["utc_offset"] == "+00:00"
    assert current_time("tokyo")["utc_offset"] == "+09:00"
    assert current_time("UTC+5:30")["utc_offset"] == "+05:30"
    with pytest.raises(ValueError, match="Europe/Berlin"):
        current_time("Europe/Berln")
    with pytest.raises(ValueError, match="unknown time zone"):
        convert_time("2026-07-01T12:00", "Mars/Olympus_Mons", "UTC")
    with pytest.raises(ValueError, match="ISO 8601"):
        convert_time("next tuesday", "UTC", "UTC")


def test_add_to_date():
    assert add_to_date("2026-07-01", days=100) == {"date": "2026-10-09", "weekday": "Friday"}
    assert add_to_date("2026-07-01", weeks=-1)["date"] == "2026-06-24"
    assert add_to_date("2026-01-31", months=1)["date"] == "2026-02-28"
    assert add_to_date("2024-02-29", years=1)["date"] == "2025-02-28"
    assert add_to_date("2026-07-01T09:30", hours=20)["datetime"] == "2026-07-02T05:30"
    assert add_to_date("1969-07-20")["weekday"] == "Sunday"
    assert add_to_date("2024-01-31", months=1)["date"] == "2024-02-29"
    assert add_to_date("2026-03-31", months=-1, days=1)["date"] == "2026-03-01"   # months first, then days
    assert add_to_date("2026-01-31T23:30", months=1, minutes=45)["datetime"] == "2026-03-01T00:15"
    for huge in ({"days": 1}, {"months": 10**6}, {"years": -10**4}, {"days": 10**30}, {"hours": 10**20}):
        with pytest.raises(ValueError, match="out of range"):
            add_to_date("9999-12-31", **huge)
    with pytest.raises(ValueError, match="ISO 8601"):
        add_to_date("31/12/2026", days=1)


def test_date_difference():
    result = date_difference("2026-01-15", "2026-12-25")
    assert result["days"] == 344 and result["years_months_days"] == [0, 11, 10]
    assert result["start_weekday"] == "Thursday"
    assert date_difference("2026-12-25", "2026-01-15")["days"] == -344
    assert date_difference("1990-05-20", "2026-03-10")["years_months_days"] == [35, 9, 18]
    assert date_difference("2026-01-01T08:00", "2026-01-02T20:30")["total_hours"] == 36.5
    assert date_difference("2026-01-31", "2026-02-28")["years_months_days"] == [0, 1, 0]   # month end
    assert date_difference("2026-02-28", "2026-01-31")["years_months_days"] == [0, -1, 0]
    assert date_difference("2024-02-29", "2028-02-28")["years_months_days"] == [3, 11, 30]
    with pytest.raises(ValueError, match="offset"):
        date_difference("2026-01-01T00:00Z", "2026-01-02")


# --- units and text ------------------------------------------------------------------

@pytest.mark.parametrize("value, source, target, expected", [
    (10, "km", "mi", 6.21371192237), (100, "degC", "degF", 212), (32, "degF", "degC", 0),
    (0, "K", "degC", -273.15), (100, "C", "F", 212), (-40, "°C", "°F", -40),
    (100, "km/h", "mph", 62.1371192237), (1, "GiB", "MiB", 1024), (1, "lb", "kg", 0.45359237),
])
def test_convert_units(value, source, target, expected):
    result = convert_units(value, source, target)
    assert result["value"] == pytest.approx(expected) and result["unit"] == target


def test_convert_units_errors():
    with pytest.raises(ValueError, match="cannot convert 'km' \\(length\\) to 'kg' \\(mass\\)"):
        convert_units(1, "km", "kg")
    with pytest.raises(ValueError, match="unknown unit 'furlongz'"):
        convert_units(1, "furlongz", "m")
    with pytest.raises(ValueError):
        convert_units(1, "m)(", "m")


@pytest.mark.parametrize("value, source, target, expected", [
    (1, "m**2", "ft**2", 10.7639104167), (1, "m²", "cm²", 10_000), (1, "m^3", "l", 1000),
    (2, "m*s**-2", "ft/s^2", 6.56167979003), (1, "inH2O", "Pa", 249.08891), (4, "Hz**0.5", "Hz**0.5", 4),
    (1, "1/s", "Hz", 1), (1, "m**2 s", "m^2*s", 1),
])
def test_units_with_powers_and_digits_still_convert(value, source, target, expected):
    assert convert_units(value, source, target)["value"] == pytest.approx(expected)


@pytest.mark.parametrize("unit, says", [
    ("m**9**9**8", "write a power as one plain number"),
    ("m^9^9^8", "write a power as one plain number"),
    ("9**9**9*m", "write a power as one plain number"),
    ("m**(9**9)", "write a power as one plain number"),
    ("m**1e9", "write a power as one plain number"),
    ("m**99", "the power 99 is too large; at most 6"),
    ("km**-7", "the power -7 is too large"),
    ("m⁹⁹", "the power 99 is too large"),
    ("m**99999999", "has a long number in it"),
    ("1000000 m", "has a long number in it"),
    ("((((m**2)**2)**2)**2)", "has 4 powers; at most 3"),
    ("m" * 61, "is too long (61 characters; at most 60)"),
    ("   ", "the unit is empty"),
])
def test_a_unit_pint_would_spend_long_on_is_refused_before_pint_reads_it(unit, says, monkeypatch):
    def no_pint():
        raise AssertionError("pint was asked to read the unit")

    monkeypatch.setattr(units, "_units", no_pint)
    for source, target in ((unit, "m"), ("m", unit)):
        with pytest.raises(ValueError, match=re.escape(says)):
            convert_units(1, source, target)


def test_a_costly_unit_in_a_tool_call_is_an_error_the_model_can_read_not_a_timeout():
    tools = [BUILTIN_TOOLS["convert_units"]]
    call = run_tool_call(ToolCall("convert_units", {"value": 1, "from_unit": "m**9**9**8", "to_unit": "m"}),
                         tools)
    assert call.error and call.result.startswith("Error: unit 'm**9**9**8': write a power as one plain number")


def test_text_statistics():
    stats = text_statistics("Hello world. Don't panic! It's well-known.\n\nHello again", word="hello")
    assert stats["words"] == 8 and stats["sentences"] == 3 and stats["paragraphs"] == 2
    assert stats["occurrences"] == {"hello": 2}
    assert text_statistics("")["words"] == 0


# --- registry and running calls ----------------------------------------------------

def test_builtin_tools_and_get_tools():
    assert {"calculator", "current_time", "convert_time", "add_to_date", "date_difference",
            "convert_units"} <= set(BUILTIN_TOOLS)
    for name, tool in BUILTIN_TOOLS.items():
        assert isinstance(tool, Tool) and tool.name == name and tool.description
    tools = get_tools(["convert_units", "code_interpreter", "no_such_tool", "calculator"])
    assert [t.name for t in tools] == ["convert_units", "calculator"]


def test_run_tool_call_results_and_errors():
    tools = list(BUILTIN_TOOLS.values())
    ok = run_tool_call(ToolCall("calculator", {"expression": "6 * 7"}), tools)
    assert (ok.result, ok.error) == ("42", False)
    units = run_tool_call(ToolCall("convert_units", {"value": 100, "from_unit": "degC", "to_unit": "degF"}), tools)
    assert json.loads(units.result)["value"] == 212 and not units.error

    cases = {
        "unknown tool": ToolCall("launch_rockets", {}),
        "missing required argument 'expression'": ToolCall("calculator", {}),
        "unexpected argument 'verbose'": ToolCall("calculator", {"expression": "1", "verbose": True}),
        "argument 'value': Input should be a valid number": ToolCall(
            "convert_units", {"value": "lots", "from_unit": "m", "to_unit": "km"}),
        "division by zero": ToolCall("calculator", {"expression": "1/0"}),
        "not valid JSON": ToolCall("calculator", '{"expression": '),
        "must be a JSON object": ToolCall("calculator", ["1 + 1"]),
    }
    for message, call in cases.items():
        run_tool_call(call, tools)
        assert call.error is True and message in call.result, (message, call.result)


def test_run_tool_call_coerces_and_survives_crashes():
    calls = []

    def pick(mode: Literal["a", "b"], color: Color, count: int, items: list[int]) -> dict:
        calls.append((mode, color, count, items))
        return {"ok": True}

    def crash() -> str:
        raise RuntimeError("kaboom")

    tools = [tool_from_function(pick), tool_from_function(crash)]
    call = run_tool_call(ToolCall("pick", {"mode": "b", "color": "green", "count": "3", "items": [1, 2.0]}), tools)
    assert call.result == '{"ok": true}' and not call.error
    assert calls == [("b", Color.GREEN, 3, [1, 2])]
    bad = run_tool_call(ToolCall("pick", {"mode": "c", "color": "red", "count": 1, "items": []}), tools)
    assert bad.error and "argument 'mode': Input should be 'a' or 'b', got 'c'" in bad.result
    two = run_tool_call(ToolCall("pick", {"mode": "a", "color": "blue", "count": "many", "items": []}), tools)
    assert "argument 'color'" in two.result and "argument 'count'" in two.result   # every wrong field
    crashed = run_tool_call(ToolCall("crash", {}), tools)
    assert crashed.error and "RuntimeError" in crashed.result and "kaboom" in crashed.result
    raw_json = run_tool_call(ToolCall("calculator", '{"expression": "2+2"}'), list(BUILTIN_TOOLS.values()))
    assert raw_json.result == "4"


def test_closures_run_in_threads_in_parallel_and_in_order():
    # A nested function cannot be imported by a worker process: it runs in a thread instead.
    def slow(label: str, seconds: float) -> str:
        time.sleep(seconds)
        return label

    tools = [tool_from_function(slow)]
    calls = [ToolCall("slow", {"label": "first", "seconds": 0.8}),
             ToolCall("slow", {"label": "second", "seconds": 0.8}),
             ToolCall("nope", {})]
    started = time.monotonic()
    done = run_tool_calls(calls, tools)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed           # about 0.8 s, not the sum (1.6 s)
    assert [c.result for c in done[:2]] == ["first", "second"] and done[2].error
    assert done[0] is calls[0]
    assert run_tool_calls([], tools) == []


def test_closures_time_out_in_threads():
    def hang(seconds: float) -> str:
        time.sleep(seconds)
        return "late"

    tools = [tool_from_function(hang)]
    started = time.monotonic()
    done = run_tool_calls([ToolCall("hang", {"seconds": 0.8}), ToolCall("hang", {"seconds": 0})],
                          tools, timeout=0.3)
    assert time.monotonic() - started < 1
    assert done[0].error and "timed out" in done[0].result
    assert done[1].result == "late" and not done[1].error
    time.sleep(0.7)   # the abandoned thread must not write into the call later
    assert "timed out" in done[0].result
