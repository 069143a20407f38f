"""Unit conversion with pint's unit registry (temperatures and other offset units included)."""
from __future__ import annotations

import math
import threading

_registry = None
_registry_lock = threading.Lock()

# pint reads "C" as coulomb and "F" as farad; in a conversion request they mean degrees.
_ALIASES = {"c": "degC", "f": "degF", "°c": "degC", "°f": "degF", "kmh": "km/h",
            "kmph": "km/h", "degrees celsius": "degC", "degrees fahrenheit": "degF"}
MAX_UNIT_CHARS = 100


def _units():
    """The shared UnitRegistry, built on first use (it takes a fraction of a second)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            import pint   # imported here too: keeps `import studio.tools` fast
            _registry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
        return _registry


def _unit(text: str):
    import pint
    name = text.strip()
    if not name or len(name) > MAX_UNIT_CHARS:
        raise ValueError(f"invalid unit {text!r}")
    name = _ALIASES.get(name.lower(), name)
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
    source, target = _unit(from_unit), _unit(to_unit)
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
