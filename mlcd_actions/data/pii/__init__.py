"""PII detection, validation and masking for ``mlcd check-data``.

Kinds detected (stable ids, used in findings as ``pii.<kind>`` and in policies):

=================  =====================================================================
``email``          ``local@domain.tld``
``phone``          ``+<country> ...`` (8-15 digits) or North-American ``(555) 123-4567`` /
                   ``555-123-4567``; in a column named like a phone, any 8-15 digit value
``ssn``            US social security number ``123-45-6789`` with valid area/group/serial;
                   in a column named like an SSN, nine bare digits too
``credit_card``    13-19 digits (spaces or dashes allowed), a card-network prefix and a
                   valid Luhn check digit
``iban``           country code, check digits and BBAN, the length registered for the
                   country and a valid ISO 7064 mod-97 check
``ip_address``     IPv4 dotted quad; IPv6 in any textual form (validated by ``ipaddress``)
``date_of_birth``  a date after ``DOB``/``date of birth``/``born (on)`` anywhere; any date
                   in a column whose name suggests a birth date (``dob``, ``birth_date``...)
=================  =====================================================================

How the scan stays fast (≥ 100 MB/s of strings on one core) without sampling: every
string column is scanned *whole* with pyarrow's RE2 kernels. One pass with the union of
all patterns finds the rows that may hold PII (RE2 runs the union as one DFA, so one
pass costs about what one pattern costs); only those rows are matched per kind. Kinds
whose pattern is the whole check (e-mail, SSN, IPv4, date of birth) are counted by the
RE2 match alone; kinds with a checksum (card, IBAN) or a digit-count rule (phone) have
their first match extracted and validated vectorised with numpy (Luhn and mod-97 over
fixed-width digit matrices). Only a row whose first match fails validation *and* that
holds more than one match goes to a per-value Python loop, so a value is never missed
because an earlier look-alike came first. Nothing is sampled.

The parts: :mod:`.patterns` (kinds, patterns, validators, masking), :mod:`.scan`
(scanning), :mod:`.policy` (rule sets and policy files); this package re-exports their
public names. Every value shown to a person goes through :func:`mask` first: reports, annotations and
logs quote ``j***@e***.com`` or ``****-****-****-1234``, never the value.
"""

from __future__ import annotations

from mlcd_actions.data.pii.patterns import (
    ANCHORED,
    CREDIT_CARD,
    DATE,
    DOB,
    EMAIL,
    HASHED,
    IBAN,
    IBAN_LENGTHS,
    IPV4,
    IPV6,
    IPV6_STRICT,
    KIND_TITLES,
    KINDS,
    NAME_HINTS,
    PATTERNS,
    PHONE,
    PHONE_DIGITS,
    SHORT_VALUES,
    SSN,
    UNION,
    UNION_EXCEPT,
    card_prefix_valid,
    credit_card_valid,
    find_all,
    iban_valid,
    ip_valid,
    looks_hashed,
    luhn_valid,
    mask,
    mask_text,
    mask_value,
    phone_valid,
)
from mlcd_actions.data.pii.policy import (
    ACTIONS,
    ALLOW,
    FORBID,
    HASHED_ACTION,
    ColumnRule,
    Policy,
    builtin_rule_sets,
    load_policy,
    load_rule_set,
)
from mlcd_actions.data.pii.scan import (
    CHUNK_ROWS,
    MAX_EXAMPLES,
    MAX_ROWS,
    Hit,
    ScanResult,
    dominant_patterns,
    name_hints,
    scan_frame,
    to_strings,
    unhashed,
)

__all__ = [
    "ACTIONS", "ALLOW", "ANCHORED", "CHUNK_ROWS", "CREDIT_CARD", "ColumnRule", "DATE",
    "DOB", "EMAIL", "FORBID", "HASHED", "HASHED_ACTION", "Hit", "IBAN", "IBAN_LENGTHS",
    "IPV4", "IPV6", "IPV6_STRICT", "KINDS", "KIND_TITLES", "MAX_EXAMPLES", "MAX_ROWS",
    "NAME_HINTS", "PATTERNS", "PHONE", "PHONE_DIGITS", "Policy", "SHORT_VALUES", "SSN",
    "ScanResult", "UNION", "UNION_EXCEPT", "builtin_rule_sets", "card_prefix_valid",
    "credit_card_valid", "dominant_patterns", "find_all", "iban_valid", "ip_valid",
    "load_policy", "load_rule_set", "looks_hashed", "luhn_valid", "mask", "mask_text",
    "mask_value", "name_hints", "phone_valid", "scan_frame", "to_strings", "unhashed",
]
