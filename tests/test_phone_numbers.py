import pytest

from private_sms.phone_numbers import PhoneNumberError, mask, normalise, redact_numbers


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("07700 900001", "GB", "447700900001"),  # national, read in the default region
        ("+44 7700 900001", "GB", "447700900001"),
        ("0044 7700 900001", "GB", "447700900001"),
        ("447700900001", "GB", "447700900001"),  # Vonage's own form
        ("447700900001", "US", "447700900001"),  # ... whatever the default region
        ("14155550100", "GB", "14155550100"),
        ("(415) 555-0100", "US", "14155550100"),
        ("+1 415 555 0100", None, "14155550100"),
        ("  +49 151 23456789 ", "GB", "4915123456789"),
    ],
)
def test_normalise_reads_numbers_as_people_type_them(raw, region, expected):
    assert normalise(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "GB", "is empty"),
        ("   ", "GB", "is empty"),
        ("hello", "GB", "is not a phone number"),
        ("12", "GB", "is too short"),
        ("12345", "GB", "can only be dialled locally"),
        ("+44 7700 9000011234567", "GB", "is too long"),
        ("07700 900001", None, "unknown country code"),  # national, but no region to read it in
        ("+999 123456", "GB", "unknown country code"),
    ],
)
def test_normalise_refuses_what_is_no_possible_number(raw, region, reason):
    with pytest.raises(PhoneNumberError, match=reason):
        normalise(raw, region)


def test_a_refusal_never_repeats_the_number():
    with pytest.raises(PhoneNumberError) as refused:
        normalise("+44 7700 9000011234567", "GB")
    assert "7700" not in str(refused.value)


@pytest.mark.parametrize(
    ("number", "masked"),
    [("447700900001", "********0001"), ("12345", "*2345"), ("1234", "****"), ("", "")],
)
def test_mask_keeps_only_the_last_four_digits(number, masked):
    assert mask(number) == masked


def test_redact_numbers_masks_every_number_like_run_of_digits():
    line = "GET /x?msisdn=447700900001&to=%2B447700900000 from +14155550100, id 123456, 2026"
    assert redact_numbers(line) == (
        "GET /x?msisdn=********0001&to=********0000 from *******0100, id 123456, 2026"
    )
