"""Exact conversion of major-unit decimal amounts to integer minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.errors import NormalizeError
from consumers.normalize import normalize
from schemas.envelope import Envelope
from schemas.money import MoneyError, exponent, normalize_currency, to_minor


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("12.34", "EUR", 1234), ("12.3", "usd", 1230), ("0.01", "GBP", 1), ("1000", "JPY", 1000),
    ("1.234", "KWD", 1234), ("7", "BHD", 7000), ("0", "EUR", 0), (" 5.00 ", "EUR", 500),
    (Decimal("19.99"), "EUR", 1999), (42, "EUR", 4200),
])
def test_amounts_convert_exactly(amount: str, currency: str, minor: int) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(("amount", "currency"), [
    ("1.234", "EUR"), ("10.5", "JPY"), ("abc", "EUR"), ("NaN", "EUR"), ("Infinity", "EUR"),
    ("", "EUR"),
])
def test_inexact_or_invalid_amounts_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(MoneyError):
        to_minor(amount, currency)


def test_floats_are_refused() -> None:
    with pytest.raises(MoneyError):
        to_minor(12.34, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["EU", "EURO", "€UR", "12A", ""])
def test_bad_currency_codes_are_refused(currency: str) -> None:
    with pytest.raises(MoneyError):
        normalize_currency(currency)


def test_exponents_follow_iso_4217() -> None:
    assert [exponent(c) for c in ("JPY", "EUR", "KWD", "CLF", "usd")] == [0, 2, 3, 4, 2]


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(["EUR", "JPY", "KWD"]))
def test_minor_units_round_trip_through_their_decimal_text(minor: int, currency: str) -> None:
    text = str(Decimal(minor).scaleb(-exponent(currency)))
    assert to_minor(text, currency) == minor


def test_canonical_events_refuse_amounts_beyond_64_bits_for_every_provider() -> None:
    # a Square payment whose amount no consumer's 64-bit integer can hold is poison, not a crash
    body = (b'{"event_id":"e1","type":"payment.updated","created_at":"2026-11-24T00:00:00Z",'
            b'"data":{"id":"p1","object":{"payment":{"id":"p1","status":"COMPLETED",'
            b'"total_money":{"amount":9223372036854775808,"currency":"USD"},'
            b'"amount_money":{"amount":9223372036854775808,"currency":"USD"}}}}}')
    envelope = Envelope("d", "square", "square", "e1", "payment.updated", "p1",
                        "2026-11-24T00:00:00.000Z", 0, body)
    with pytest.raises(NormalizeError):
        normalize(envelope)
