"""PII validators, masking, the vectorised scanner (checked against the per-value
reference) and policy files."""

import random

import pandas as pd
import pytest

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.data import pii

# --------------------------------------------------------------------------- validators


@pytest.mark.parametrize("number,ok", [
    ("4111111111111111", True), ("4111 1111 1111 1111", True), ("5500-0000-0000-0004", True),
    ("378282246310005", True), ("4111111111111112", False), ("1234567812345670", False),
    ("0000000000000000", False), ("411111111111", False),
])
def test_credit_card_valid_needs_luhn_prefix_and_length(number, ok):
    assert pii.credit_card_valid(number) is ok


@pytest.mark.parametrize("iban,ok", [
    ("DE89 3704 0044 0532 0130 00", True), ("GB82WEST12345698765432", True),
    ("NL91ABNA0417164300", True), ("DE89 3704 0044 0532 0130 01", False),
    ("DE89370400440532013", False), ("XX89370400440532013000", False),
])
def test_iban_valid_checks_country_length_and_mod97(iban, ok):
    assert pii.iban_valid(iban) is ok


@pytest.mark.parametrize("text,ok", [
    ("192.168.1.20", True), ("2001:db8::1", True), ("::ffff:10.0.0.1", True),
    ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", True), ("::", False), ("::1", False),
    ("12:30:45", False), ("256.1.1.1", False),
])
def test_ip_valid(text, ok):
    assert pii.ip_valid(text) is ok


def test_ssn_pattern_rejects_invalid_areas():
    found = pii.find_all("a 123-45-6789 b 000-12-3456 c 666-12-3456 d 900-12-3456 e 123-00-4567")
    assert found == {"ssn": ["123-45-6789"]}


@pytest.mark.parametrize("value,ok", [
    ("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", True),
    ("sha256:5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8", True),
    ("s4lt$5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", True),
    ("$2b$12$abcdefghijklmnopqrstuuOQ9cxDL5cp0HhRsT9M6q1pYlW0jWzKy", True),
    ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", True),
    ("john.doe@example.com", False), ("5e884898da2804715", False), ("", False),
])
def test_looks_hashed(value, ok):
    assert pii.looks_hashed(value) is ok


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("kind,raw,masked", [
    ("email", "john.doe@example.com", "j***@e***.com"),
    ("credit_card", "4111-1111-1111-1234", "****-****-****-1234"),
    ("credit_card", "4111111111111111", "************1111"),
    ("ssn", "123-45-6789", "***-**-****"),
    ("iban", "DE89 3704 0044 0532 0130 00", "DE******************00"),
    ("phone", "+1 555-201-4567", "+* ***-***-**67"),
    ("ip_address", "192.168.1.20", "192.***.*.**"),
    ("date_of_birth", "1990-04-12", "****-**-**"),
])
def test_mask_hides_the_value(kind, raw, masked):
    assert pii.mask(kind, raw) == masked


def test_mask_value_of_unknown_text_shows_only_length():
    assert pii.mask_value("Jane Secret") == "*** (11 chars)"


# --------------------------------------------------------------------------- scanning


def _counts(df):
    return {(h.column, h.kind): h.count for h in pii.scan_frame(df).hits}


def _reference(df):
    out = {}
    for col in df.columns:
        for v in df[col]:
            if isinstance(v, str):
                for kind in pii.find_all(v):
                    out[(col, kind)] = out.get((col, kind), 0) + 1
    return out


def test_scan_finds_every_kind_in_free_text_with_rows_and_masked_examples():
    notes = ["call +1 555-201-4567 or john.doe@example.com", "card 4111 1111 1111 1111 ok",
             "at 12:30:45 nothing", "iban DE89 3704 0044 0532 0130 00", "from 2001:db8::1",
             "DOB: 1990-04-12", "ssn 123-45-6789", "bad card 4111 1111 1111 1112", None,
             "std::vector 1234 5678 9012 3456 then 4111111111111111"]
    res = pii.scan_frame(pd.DataFrame({"notes": notes}))
    hits = {h.kind: h for h in res.hits}
    assert {k: h.count for k, h in hits.items()} == {
        "email": 1, "phone": 1, "credit_card": 2, "iban": 1, "ip_address": 1,
        "date_of_birth": 1, "ssn": 1}
    assert hits["credit_card"].rows == [1, 9]   # the second value: a look-alike came first
    assert hits["email"].examples == ["j***@e***.com"]
    assert hits["date_of_birth"].examples == ["****-**-**"]
    assert res.columns == ["notes"] and res.bytes_scanned > 0


def test_fast_path_agrees_with_per_value_reference_on_mixed_data():
    rng = random.Random(7)
    pieces = ["john{}@example.com", "+44 20 7946 {:04d}", "4111 1111 1111 1111",
              "4111 1111 1111 1112", "123-45-{:04d}", "10.0.{}.1", "2001:db8::{:x}",
              "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "dob 02/03/1985",
              "version 1.2.3", "12:30", "call 555-201-{:04d}", "1234567812345678"]
    def value():
        words = ["lorem", "ipsum", str(rng.randrange(3000)), "ünï", "x" * rng.randrange(5)]
        if rng.random() < 0.6:
            words.insert(rng.randrange(len(words)), rng.choice(pieces).format(rng.randrange(999)))
        return " ".join(words) if rng.random() < 0.5 else rng.choice(pieces).format(
            rng.randrange(999))
    df = pd.DataFrame({
        "text": [value() for _ in range(400)],
        "email": [f"user{i}@example.org" for i in range(400)],            # PII column
        "cards": ["4111111111111111" if i % 3 else "1234567812345678 4111-1111-1111-1111"
                  for i in range(400)],
        "ips": [f"10.1.{i % 250}.7" if i % 2 else f"fe80::{i:x}" for i in range(400)],
    })
    assert _counts(df) == _reference(df)


def test_name_hints_find_bare_values():
    df = pd.DataFrame({"date_of_birth": ["1990-01-02", "02/03/1985", None, "n/a"],
                       "ssn": ["123456789", "000000000", "x", "y"],
                       "mobile_phone": ["5552014567", "12", "", "+44 20 7946 0958"],
                       "birthday": pd.to_datetime(["1990-01-02", None, "1970-12-31", None])})
    counts = _counts(df)
    assert counts[("date_of_birth", "date_of_birth")] == 2
    assert counts[("ssn", "ssn")] == 1
    assert counts[("mobile_phone", "phone")] == 2
    assert counts[("birthday", "date_of_birth")] == 2


def test_integer_card_numbers_are_found_other_numbers_are_not():
    df = pd.DataFrame({"card": [4111111111111111, 5500000000000004, 1, 1234567812345678],
                       "amount": [1.5, 2.0, float("nan"), float("inf")]})
    assert _counts(df) == {("card", "credit_card"): 2}


def test_categorical_and_object_columns_are_scanned():
    df = pd.DataFrame({"cat": pd.Categorical(["a@b.io", "x", "a@b.io", None]),
                       "obj": pd.Series([1, "c@d.io", None, 2.5], dtype=object)})
    assert _counts(df) == {("cat", "email"): 2, ("obj", "email"): 1}


def test_scan_handles_unicode_long_and_empty_strings():
    long = "ü" * 200_000 + " mail me at z@y.org " + "✓" * 1000
    df = pd.DataFrame({"t": [long, "", None, "🙂 4111 1111 1111 1111"]})
    assert _counts(df) == {("t", "email"): 1, ("t", "credit_card"): 1}


def test_scan_spans_chunks(monkeypatch):
    monkeypatch.setattr(pii.scan, "CHUNK_ROWS", 7)
    df = pd.DataFrame({"t": [f"user{i}@example.org" if i % 5 == 0 else "plain" for i in range(50)]})
    hit = pii.scan_frame(df).hits[0]
    assert hit.count == 10 and hit.rows == [0, 5, 10, 15, 20]


def test_unhashed_counts_values_that_are_not_hashes():
    s = pd.Series(["a" * 64, "bob@example.org", None, "b" * 64, "plain"])
    count, rows, examples = pii.unhashed(s)
    assert (count, rows) == (2, [1, 4])
    assert examples == ["b***@e***.org", "*** (5 chars)"]
    assert pii.unhashed(pd.Series([1, 2, None]))[0] == 2


# --------------------------------------------------------------------------- policies


def test_builtin_rule_sets_ship_as_package_data():
    assert pii.builtin_rule_sets() == ["gdpr", "hipaa", "pci"]
    policy = pii.load_policy(None, ["pci", "HIPAA"])
    assert policy.forbid["credit_card"] == ["pci", "hipaa"]
    assert set(policy.forbid) == set(pii.KINDS)


def test_policy_file_columns_and_globs(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("rules: [pci]\nforbid: [email]\ncolumns:\n  '*_sha': must-be-hashed\n"
                    "  notes: {action: allow, kinds: [phone]}\n")
    policy = pii.load_policy(str(path))
    assert policy.rule_for("email_sha").action == "must-be-hashed"
    assert policy.rule_for("notes").covers("phone") and not policy.rule_for("notes").covers("ssn")
    assert policy.rule_for("other") is None
    assert set(policy.forbid) == {"credit_card", "email"}


@pytest.mark.parametrize("text,message", [
    ("columns:\n  notes: redact\n", "p.yaml:2: column 'notes': unknown action 'redact'"),
    ("forbid: [emial]\n", "unknown PII kind 'emial' (did you mean 'email'?)"),
    ("colums: {}\n", "p.yaml:1: unknown key 'colums'"),
    ("rules: [sox]\n", "--rules 'sox': unknown rule set; built-in: gdpr, hipaa, pci"),
    ("columns: [a, b]\n", "columns must map a column name"),
])
def test_policy_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        pii.load_policy(str(path))
    assert message in exc.value.one_line()


def test_missing_policy_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such policy file"):
        pii.load_policy(str(tmp_path / "nope.yaml"))


def test_mask_text_masks_only_valid_matches():
    text = "mail john.doe@example.com card 4111 1111 1111 1111 not 4111 1111 1111 1112"
    assert pii.mask_text(text) == ("mail j***@e***.com card **** **** **** 1111 "
                                   "not 4111 1111 1111 1112")
