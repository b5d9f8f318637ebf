"""Money on the wire: ISO 4217 currency exponents and exact conversion to integer minor units."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

#: minor-unit exponents that are not 2 (ISO 4217); every other valid code uses 2
_EXPONENTS: Final[dict[str, int]] = {
    # no minor unit
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals
    "CLF": 4, "UYW": 4,
}


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly in minor units."""


def exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (JPY 0, EUR 2, KWD 3)."""
    code = normalize_currency(currency)
    return _EXPONENTS.get(code, 2)


def normalize_currency(currency: str) -> str:
    """Upper-case ISO 4217 code; refuses anything that is not three ASCII letters."""
    code = currency.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    return code


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """A major-unit amount (``"12.34"`` EUR) as integer minor units (1234), exactly.

    Strings are parsed as decimals, never floats; an amount with more digits than the currency has
    (``"1.234"`` EUR) is refused rather than rounded. Floats are refused outright.
    """
    if isinstance(amount, float | bool):
        raise MoneyError("amounts must not be floats")
    try:
        value = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite amount")
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise MoneyError(f"{amount} has more decimals than {normalize_currency(currency)} allows")
    return int(minor)
