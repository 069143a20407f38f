"""Unit conversion with pint's unit registry (temperatures and other offset units included)."""
from __future__ import annotations

import math
import re
import threading

_registry = None
_registry_lock = threading.Lock()

# pint reads "C" as coulomb and "F" as farad; in a conversion request they mean degrees.
_ALIASES = {"c": "degC", "f": "degF", "°c": "degC", "°f": "degF", "kmh": "km/h",
            "kmph": "km/h", "degrees celsius": "degC", "degrees fahrenheit": "degF"}
MAX_UNIT_CHARS = 60
# pint evaluates the powers in a unit string: "m**9**9**8" would compute 9**9**8 and burn CPU
# until the worker is killed. Real units need small powers (m**3, s**-2, Hz**0.5), so powers
# are checked before pint sees the text.
MAX_EXPONENT = 6
MAX_POWERS = 3      # per unit; with nesting, "((m**6)**6)**6" is the largest: m**216
MAX_DIGITS = 3      # in a row; a unit has no big numbers in it (the number goes in `value`)
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_POWER = re.compile(r"(\*\*|\^)\s*([-+]?)\s*(\d+(?:\.\d+)?)?")


def _units():
    """The shared UnitRegistry, built on first use (it takes a fraction of a second)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            import pint   # imported here too: keeps `import studio.tools` fast
            _registry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
        return _registry


def _check_powers(text: str, name: str) -> None:
    """Refuse a unit string whose powers or numbers would be costly for pint to evaluate."""
    # pint reads "m²" as "m**2": check superscripts the same way.
    plain = re.sub("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+", lambda m: "**" + m.group().translate(_SUPERSCRIPTS), name)
    if re.search(rf"\d{{{MAX_DIGITS + 1},}}", plain):
        raise ValueError(f"unit {text!r} has a long number in it; a unit is a name such as km, mi/h "
                         "or m**2 (the number to convert goes in value)")
    powers = list(_POWER.finditer(plain))
    if len(powers) > MAX_POWERS:
        raise ValueError(f"unit {text!r} has {len(powers)} powers; at most {MAX_POWERS}")
    for power in powers:
        sign, number = power.group(2), power.group(3)
        after = plain[power.end():]
        spaced = after.lstrip()   # "m**2 s" is m²·s; "m**1e9", "m**2**9" and "m**2(" are refused
        if (number is None or after[:1].isalnum() or after[:1] == "."
                or spaced[:1] in ("(", "^") or spaced.startswith("**")):
            raise ValueError(f"unit {text!r}: write a power as one plain number, such as m**2 or s^-1")
        if abs(float(sign + number)) > MAX_EXPONENT:
            raise ValueError(f"unit {text!r}: the power {sign}{number} is too large; at most {MAX_EXPONENT}")


def _unit_name(text: str) -> str:
    """The unit text checked (length, powers) and with its alias resolved; pint has not seen it yet."""
    name = text.strip()
    if not name:
        raise ValueError("the unit is empty")
    if len(name) > MAX_UNIT_CHARS:
        raise ValueError(f"unit {name[:20]!r}... is too long ({len(name)} characters; at most {MAX_UNIT_CHARS})")
    _check_powers(text, name)
    return _ALIASES.get(name.lower(), name)


def _unit(text: str, name: str):
    import pint
    try:
        return _units().Unit(name)
    except pint.errors.UndefinedUnitError:
        raise ValueError(f"unknown unit {text!r}") from None
    except Exception:   # pint's parser raises assorted errors on malformed input
        raise ValueError(f"cannot read unit {text!r}") from None


def convert_units(value: float, from_unit: str, to_unit: str) -> dict:
    """Convert a quantity between units, e.g. 10 km to mi, 100 degC to degF, 3 cup to ml.

    Knows SI and imperial/US units and their prefixes: length, mass, volume,
    area, time, speed (km/h, mph, knot), temperature (degC, degF, K), energy,
    pressure, data (byte, MB, GiB) and more.

    Args:
        value: The number to convert.
        from_unit: The unit of the value, e.g. "km", "lb", "degC", "km/h", "GiB".
        to_unit: The unit to convert to, e.g. "mi", "kg", "degF", "mph", "MB".
    """
    import pint
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    names = _unit_name(from_unit), _unit_name(to_unit)   # both checked before pint reads either
    source, target = _unit(from_unit, names[0]), _unit(to_unit, names[1])
    try:
        result = _units().Quantity(value, source).to(target).magnitude
    except pint.errors.DimensionalityError:
        raise ValueError(f"cannot convert {from_unit!r} ({_dimension(source)}) "
                         f"to {to_unit!r} ({_dimension(target)})") from None
    except pint.errors.PintError as exc:
        raise ValueError(f"cannot convert {from_unit!r} to {to_unit!r}: {exc}") from None
    result = float(f"{float(result):.12g}")   # drop floating-point noise: 0.62137119223733
    if target.dimensionality == {"[temperature]": 1}:
        result = round(result, 9)   # offsets leave noise near zero: 32 degF -> 5.7e-14 degC
    if result.is_integer() and abs(result) < 1e15:
        result = int(result)
    return {"value": result, "unit": to_unit,
            "text": f"{value:g} {from_unit} = {result:g} {to_unit}"}


def _dimension(unit) -> str:
    dims = str(unit.dimensionality)
    return "dimensionless" if dims == "dimensionless" else dims.replace("[", "").replace("]", "")
