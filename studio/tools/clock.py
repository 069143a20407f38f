"""Dates and times across time zones (IANA zones via zoneinfo; tzdata supplies them offline)."""
from __future__ import annotations

import difflib
import functools
import re
from datetime import date as Date
from datetime import datetime, timedelta, tzinfo
from datetime import time as Time
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, available_timezones

from dateutil.relativedelta import relativedelta

# What people (and models) write instead of an IANA name. "EST" in tzdata has no DST,
# which is rarely what is meant, so the US abbreviations map to the cities.
_ALIASES = {
    "utc": "UTC", "gmt": "UTC", "z": "UTC", "zulu": "UTC",
    "est": "America/New_York", "edt": "America/New_York", "eastern": "America/New_York",
    "cst": "America/Chicago", "cdt": "America/Chicago", "central": "America/Chicago",
    "mst": "America/Denver", "mdt": "America/Denver", "mountain": "America/Denver",
    "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "pacific": "America/Los_Angeles",
    "cet": "Europe/Berlin", "cest": "Europe/Berlin", "bst": "Europe/London",
    "ist": "Asia/Kolkata", "jst": "Asia/Tokyo", "aest": "Australia/Sydney",
}
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def _all_zones() -> dict[str, str]:
    """lower-case name (and bare city, "new_york") -> IANA name."""
    zones: dict[str, str] = {}
    for name in sorted(available_timezones()):
        zones.setdefault(name.split("/")[-1].lower(), name)
        zones[name.lower()] = name
    return zones


def _zone(name: str) -> tzinfo:
    """The time zone for an IANA name, a city, an alias such as "PST", or "UTC+2"."""
    key = name.strip().lower().replace(" ", "_")
    if key in _ALIASES:
        return ZoneInfo(_ALIASES[key])
    if match := _OFFSET.match(key.replace("_", "")):
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if offset <= timedelta(hours=14):
            return dt_timezone(-offset if sign == "-" else offset)
    if key in _all_zones():
        return ZoneInfo(_all_zones()[key])
    close = difflib.get_close_matches(key, _all_zones().keys(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(_all_zones()[c] for c in close)}?" if close else ""
    raise ValueError(f"unknown time zone {name!r}: use an IANA name like 'Europe/Berlin'.{hint}")


def _parse(text: str, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 date/datetime, a bare time ("14:30", taken as today), or "now"/"today"."""
    value = text.strip()
    now = datetime.now(zone or dt_timezone.utc)
    if value.lower() == "now":
        return now if zone else now.replace(tzinfo=None)
    if value.lower() == "today":
        return datetime.combine(now.date(), Time())
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    try:
        return datetime.combine(now.date(), Time.fromisoformat(value))
    except ValueError:
        raise ValueError(f"cannot parse {text!r}: use ISO 8601, e.g. '2026-07-01' or "
                         "'2026-07-01T14:30' (or 'now', 'today')") from None


def _is_date_only(text: str) -> bool:
    try:
        Date.fromisoformat(text.strip())
        return True
    except ValueError:
        return text.strip().lower() == "today"


def _describe(moment: datetime) -> dict:
    described = {"datetime": moment.isoformat(timespec="minutes" if not moment.second else "seconds"),
                 "weekday": moment.strftime("%A")}
    if (offset := moment.utcoffset()) is not None:
        sign, offset = ("-", -offset) if offset < timedelta(0) else ("+", offset)
        hours, rest = divmod(int(offset.total_seconds()) // 60, 60)
        described.update(utc_offset=f"{sign}{hours:02d}:{rest:02d}", abbreviation=moment.tzname())
    return described


def current_time(timezone: str = "UTC") -> dict:
    """The current date and time in a time zone.

    Args:
        timezone: IANA time zone name such as "Europe/Berlin" or "America/New_York", or "UTC".
    """
    now = datetime.now(_zone(timezone)).replace(microsecond=0)
    return {"timezone": timezone, **_describe(now), "date": now.date().isoformat(),
            "time": now.strftime("%H:%M:%S")}


def convert_time(time: str, from_timezone: str, to_timezone: str) -> dict:
    """Convert a date and time from one time zone to another (daylight saving time included).

    Args:
        time: ISO 8601 date and time such as "2026-07-01T12:00", a bare time such as "12:00" (today), or "now".
        from_timezone: IANA time zone the time is in, e.g. "America/New_York". Ignored if the time has an offset.
        to_timezone: IANA time zone to convert to, e.g. "Europe/Berlin".
    """
    source, target = _zone(from_timezone), _zone(to_timezone)
    moment = _parse(time, source)
    note = None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=source)
        # Wall times skipped by a DST change do not exist; say so rather than guess silently.
        if moment.astimezone(dt_timezone.utc).astimezone(source).replace(tzinfo=None) != moment.replace(tzinfo=None):
            note = f"{time} does not exist in {from_timezone} (clocks skip it for daylight saving time)"
    converted = moment.astimezone(target)
    result = {"from": _describe(moment), "to": _describe(converted), "to_timezone": to_timezone}
    if note:
        result["note"] = note
    return result


def add_to_date(date: str, days: int = 0, weeks: int = 0, months: int = 0, years: int = 0,
                hours: int = 0, minutes: int = 0) -> dict:
    """Add (or, with negative numbers, subtract) an amount of time to a date; also gives the weekday.

    Use it with no amounts to find which day of the week a date is.

    Args:
        date: ISO 8601 date or date-time, e.g. "2026-07-01" or "2026-07-01T09:30", or "today".
        days: Days to add.
        weeks: Weeks to add.
        months: Calendar months to add (the day is clamped to the month's end).
        years: Calendar years to add.
        hours: Hours to add.
        minutes: Minutes to add.
    """
    start = _parse(date)
    try:
        # relativedelta clamps to the month's end: Jan 31 + 1 month = Feb 28 (or 29).
        result = start + relativedelta(years=years, months=months, weeks=weeks, days=days,
                                       hours=hours, minutes=minutes)
    except (OverflowError, ValueError):   # past year 9999 or before year 1
        raise ValueError("resulting date is out of range") from None
    if _is_date_only(date) and not (hours or minutes):
        return {"date": result.date().isoformat(), "weekday": result.strftime("%A")}
    return _describe(result)


def date_difference(start: str, end: str) -> dict:
    """The time between two dates (or date-times): days, weeks, and years/months/days.

    The result is negative when `end` is before `start`.

    Args:
        start: ISO 8601 date or date-time, e.g. "2026-01-15", or "today".
        end: ISO 8601 date or date-time, e.g. "2026-12-25", or "today".
    """
    a, b = _parse(start), _parse(end)
    if (a.tzinfo is None) != (b.tzinfo is None):
        raise ValueError("give both times with a UTC offset, or neither")
    delta = b - a
    sign, lo, hi = (1, a, b) if delta >= timedelta(0) else (-1, b, a)
    # Counted forward from the earlier date, so both directions give the same numbers.
    span = relativedelta(hi, lo)
    result = {"days": delta.days if sign > 0 else -((-delta).days),
              "weeks": round(delta / timedelta(weeks=1), 2),
              "years_months_days": [sign * span.years, sign * span.months, sign * span.days],
              "start_weekday": a.strftime("%A"), "end_weekday": b.strftime("%A")}
    if delta % timedelta(days=1):
        result["total_hours"] = round(delta / timedelta(hours=1), 2)
    return result
