"""The sun's place in the sky, in true solar time, and the days planning rules are written for.

Positions follow Meeus, *Astronomical Algorithms* (2nd ed., ch. 25, 12 and 13): the sun's
apparent longitude with the main term of nutation and aberration, the obliquity of the ecliptic,
sidereal time, and a topocentric place (parallax, 8.8"); atmospheric refraction as NREL's SPA
applies it (1010 hPa and 10 °C scaled to the pressure and temperature given). Within 0.01° of
SPA from 1950 to 2050 (tests/analysis: 0.05° over a year at Jinan). Vectorised over times.

True solar time (真太阳时) is the sun's hour angle as a time: noon when it crosses the meridian.
Planning windows (大寒日 8:00-16:00) are in it, so `solar_instants` turns a true solar time of a
date at a longitude into the UTC instant it happens.

The solar terms are when the sun's apparent longitude reaches a multiple of 15°: 冬至 (winter
solstice) 270°, 大寒 (Major Cold) 300°; their date is the date in China Standard Time (UTC+8)
of that instant, as the Chinese calendar counts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

J2000 = 2451545.0
UNIX_JD = 2440587.5  # the Julian day of 1970-01-01 00:00 UTC
DELTA_T_S = 69.2  # TT - UT1 in the 2020s, seconds (0.0008° of the sun's motion: kept anyway)
CHINA = timedelta(hours=8)
TERMS = {"冬至": 270.0, "dongzhi": 270.0, "大寒": 300.0, "dahan": 300.0}
TERM_NAMES = {270.0: "冬至", 300.0: "大寒"}


def julian_day(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Julian days of UTC instants given as seconds since 1970-01-01."""
    return UNIX_JD + np.asarray(t, dtype=np.float64) / 86400.0


def _rad(x: NDArray[np.float64] | float) -> NDArray[np.float64]:
    return np.radians(x)


@dataclass(frozen=True)
class Equatorial:
    """The sun's apparent right ascension and declination (degrees), the apparent sidereal time
    at Greenwich (degrees), and its ecliptic longitude (degrees), at each instant."""

    ra: NDArray[np.float64]
    dec: NDArray[np.float64]
    sidereal: NDArray[np.float64]
    longitude: NDArray[np.float64]
    distance_au: NDArray[np.float64]


def equatorial(t: NDArray[np.float64]) -> Equatorial:
    """The sun's apparent equatorial place at UTC instants `t` (seconds since 1970)."""
    jd = julian_day(t)
    T = (jd + DELTA_T_S / 86400.0 - J2000) / 36525.0  # Julian centuries of TT
    L0 = 280.46646 + 36000.76983 * T + 0.0003032 * T**2
    M = 357.52911 + 35999.05029 * T - 0.0001537 * T**2
    e = 0.016708634 - 0.000042037 * T - 0.0000001267 * T**2
    Mr = _rad(M)
    C = (
        (1.914602 - 0.004817 * T - 0.000014 * T**2) * np.sin(Mr)
        + (0.019993 - 0.000101 * T) * np.sin(2 * Mr)
        + 0.000289 * np.sin(3 * Mr)
    )
    true_long = L0 + C
    nu = _rad(M + C)
    R = 1.000001018 * (1 - e**2) / (1 + e * np.cos(nu))
    omega = _rad(125.04452 - 1934.136261 * T)
    Ls, Lm = _rad(2 * 280.4665 + 36000.7698 * T), _rad(2 * 218.3165 + 481267.8813 * T)
    # nutation in longitude and obliquity (the four main terms, 0.5" and 0.1")
    dpsi = (
        -17.20 * np.sin(omega) - 1.32 * np.sin(Ls) - 0.23 * np.sin(Lm) + 0.21 * np.sin(2 * omega)
    ) / 3600
    deps = (
        9.20 * np.cos(omega) + 0.57 * np.cos(Ls) + 0.10 * np.cos(Lm) - 0.09 * np.cos(2 * omega)
    ) / 3600
    aberration = -20.4898 / 3600 / R
    lam = true_long + dpsi + aberration
    eps0 = 23.0 + 26.0 / 60 + (21.448 - 46.8150 * T - 0.00059 * T**2 + 0.001813 * T**3) / 3600
    eps = _rad(eps0 + deps)
    lr = _rad(lam)
    ra = np.degrees(np.arctan2(np.cos(eps) * np.sin(lr), np.cos(lr))) % 360.0
    dec = np.degrees(np.arcsin(np.sin(eps) * np.sin(lr)))
    d = jd - J2000
    Tu = d / 36525.0
    gmst = 280.46061837 + 360.98564736629 * d + 0.000387933 * Tu**2 - Tu**3 / 38710000.0
    gast = (gmst + dpsi * np.cos(eps)) % 360.0
    return Equatorial(ra, dec, gast, lam % 360.0, R)


def hour_angle(t: NDArray[np.float64], lon: float) -> NDArray[np.float64]:
    """The sun's local hour angle (degrees, -180 to 180; 0 at true solar noon)."""
    q = equatorial(t)
    return (q.sidereal + lon - q.ra + 180.0) % 360.0 - 180.0


def refraction(
    elevation: NDArray[np.float64], pressure_hpa: float, temperature_c: float
) -> NDArray[np.float64]:
    """Atmospheric refraction (degrees) at true elevations, as SPA computes it; none for a sun
    below the horizon by more than its own radius and refraction."""
    e = np.asarray(elevation, dtype=np.float64)
    r = (
        (pressure_hpa / 1010.0)
        * (283.0 / (273.0 + temperature_c))
        * 1.02
        / (60.0 * np.tan(_rad(e + 10.3 / (e + 5.11))))
    )
    return np.where(e >= -(0.26667 + 0.5667), r, 0.0)


def position(
    t: NDArray[np.float64],
    lon: float,
    lat: float,
    height_m: float = 0.0,
    pressure_hpa: float = 1013.25,
    temperature_c: float = 12.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Apparent elevation (refraction included) and azimuth (from north, clockwise) of the
    sun's centre, degrees, seen from `lon`, `lat` at UTC instants `t` (seconds since 1970)."""
    q = equatorial(np.atleast_1d(np.asarray(t, dtype=np.float64)))
    H = _rad(q.sidereal + lon - q.ra)
    phi = _rad(lat)
    dec = _rad(q.dec)
    # topocentric parallax (Meeus ch. 40)
    u = np.arctan(0.99664719 * np.tan(phi))
    x = np.cos(u) + height_m / 6378140.0 * np.cos(phi)
    y = 0.99664719 * np.sin(u) + height_m / 6378140.0 * np.sin(phi)
    xi = _rad(8.794 / 3600) / q.distance_au
    d_alpha = np.arctan2(-x * np.sin(xi) * np.sin(H), np.cos(dec) - x * np.sin(xi) * np.cos(H))
    dec_t = np.arctan2(
        (np.sin(dec) - y * np.sin(xi)) * np.cos(d_alpha), np.cos(dec) - x * np.sin(xi) * np.cos(H)
    )
    H_t = H - d_alpha
    sin_e = np.sin(phi) * np.sin(dec_t) + np.cos(phi) * np.cos(dec_t) * np.cos(H_t)
    e0 = np.degrees(np.arcsin(np.clip(sin_e, -1.0, 1.0)))
    az = np.degrees(
        np.arctan2(np.sin(H_t), np.cos(H_t) * np.sin(phi) - np.tan(dec_t) * np.cos(phi))
    )
    return e0 + refraction(e0, pressure_hpa, temperature_c), (az + 180.0) % 360.0


def solar_instants(
    day: date, lon: float, solar_minutes: NDArray[np.float64]
) -> NDArray[np.float64]:
    """UTC instants (seconds since 1970) at which the true solar time at longitude `lon` on
    `day` is `solar_minutes` after midnight: the sun's hour angle is 15° per hour from noon."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    target = (np.asarray(solar_minutes, dtype=np.float64) - 720.0) / 4.0  # hour angle, degrees
    t = midnight + (np.asarray(solar_minutes, dtype=np.float64) - 4.0 * lon) * 60.0  # mean time
    for _ in range(3):  # the equation of time, found by correcting the hour angle
        off = (target - hour_angle(t, lon) + 180.0) % 360.0 - 180.0
        t = t + off * 240.0 / 1.0027379
    return t


def solar_term(year: int, longitude: float) -> date:
    """The date (China Standard Time) on which the sun's apparent longitude reaches
    `longitude` degrees in `year`: 270 for 冬至, 300 for 大寒."""
    # a first guess from the mean motion (longitude 0 at the March equinox, about March 20)
    start = datetime(year, 3, 20, tzinfo=UTC).timestamp()
    t = start + ((longitude % 360.0) / 360.0) * 365.2422 * 86400.0
    if (
        longitude >= 280.0 and longitude < 360.0
    ):  # 大寒 and the terms after it fall early in the year
        t -= 365.2422 * 86400.0
    for _ in range(8):
        lam = float(equatorial(np.array([t])).longitude[0])
        off = (longitude - lam + 180.0) % 360.0 - 180.0
        t += off / 360.0 * 365.2422 * 86400.0
    return (datetime.fromtimestamp(t, UTC) + CHINA).date()


def term_of(name: str, year: int) -> date:
    """The date of a named solar term (大寒 / dahan, 冬至 / dongzhi) in `year`; 冬至 is that of
    December of `year`, 大寒 that of January."""
    return solar_term(year, TERMS[name])


def minutes_text(minutes: float) -> str:
    """Minutes after midnight as HH:MM (rounded to the minute)."""
    m = int(math.floor(minutes + 0.5))
    return f"{m // 60:02d}:{m % 60:02d}"
