"""PII kinds, their patterns (RE2 and Python), validators (Luhn, mod-97, phone digits,
IP addresses) and masking (:func:`mask`): every value shown to a person goes through it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    pass



KINDS = ("email", "phone", "ssn", "credit_card", "iban", "ip_address", "date_of_birth")
KIND_TITLES = {
    "email": "e-mail address", "phone": "phone number", "ssn": "social security number",
    "credit_card": "credit card number", "iban": "IBAN", "ip_address": "IP address",
    "date_of_birth": "date of birth",
}


# --------------------------------------------------------------------------- patterns
# Written for both RE2 (pyarrow) and Python ``re`` (with re.ASCII): no look-arounds, no
# back-references, ASCII classes spelled out.

_D = "[0-9]"
EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
_SSN_AREA = r"(?:00[1-9]|0[1-9][0-9]|[1-5][0-9]{2}|6[0-5][0-9]|66[0-57-9]|6[7-9][0-9]|[78][0-9]{2})"
_SSN_GROUP = r"(?:0[1-9]|[1-9][0-9])"
_SSN_SERIAL = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
SSN = rf"\b{_SSN_AREA}-{_SSN_GROUP}-{_SSN_SERIAL}\b"
CREDIT_CARD = r"\b(?:[0-9][ \-]?){12,18}[0-9]\b"
PHONE = (r"(?:\+[1-9][0-9]{0,2}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){1,4}"
         r"|(?:\([0-9]{3}\) ?|\b[0-9]{3}[\-.])[0-9]{3}[\-.][0-9]{4})\b")
IBAN = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"\b(?:{_OCTET}\.){{3}}{_OCTET}\b"
IPV6 = r"(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)[0-9]{2}"
DATE = (rf"(?:{_YEAR}[\-/.]{_MONTH}[\-/.]{_DAY}"
        rf"|{_DAY}[\-/.]{_MONTH}[\-/.](?:{_YEAR}|[0-9]{{2}})"
        rf"|{_MONTH}[\-/.]{_DAY}[\-/.](?:{_YEAR}|[0-9]{{2}})"
        rf"|{_DAY}\.? (?i:{_MONTHS}),? {_YEAR}"
        rf"|(?i:{_MONTHS}) {_DAY},? {_YEAR})\b")
DOB = (r"(?:(?i:\b(?:dob|date of birth|birth ?date|born(?: on)?)\b)|(?i:\bd\.o\.b\.?))"
       rf"\s*[:#\-]?\s*{DATE}")

_H = "[0-9A-Fa-f]{1,4}"
# full-string IPv6 check (RFC 4291 text forms, at least two hex groups: "::" and "::1" are
# not personal data)
IPV6_STRICT = ("^(?:"
               rf"(?:{_H}:){{7}}{_H}|(?:{_H}:){{2,7}}:|(?:{_H}:){{1,6}}:{_H}"
               rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
               rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
               rf"|{_H}:(?::{_H}){{1,6}}|:(?::{_H}){{2,7}}"
               rf"|::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{_OCTET}(?:\.{_OCTET}){{3}}"
               rf"|(?:{_H}:){{1,4}}:{_OCTET}(?:\.{_OCTET}){{3}}"
               ")$")
PHONE_DIGITS = r"^[^0-9]*(?:[0-9][^0-9]*){8,15}$"   # 8 to 15 digits in the match

PATTERNS: dict[str, str] = {
    "email": EMAIL, "ssn": SSN, "credit_card": CREDIT_CARD, "phone": PHONE, "iban": IBAN,
    "ipv4": IPV4, "ipv6": IPV6, "date_of_birth": DOB,
}
_KIND_OF_PATTERN = {"ipv4": "ip_address", "ipv6": "ip_address"}
UNION = "|".join(f"(?:{p})" for p in PATTERNS.values())
# patterns whose match is the whole check; others are validated after extraction
_REGEX_ONLY = {"email", "ssn", "ipv4", "date_of_birth"}
ANCHORED = {k: rf"^\s*(?:{p})\s*$" for k, p in PATTERNS.items()}
UNION_EXCEPT = {k: "|".join(f"(?:{q})" for n, q in PATTERNS.items() if n != k) for k in PATTERNS}
SHORT_VALUES = 64   # mean bytes per value under which the PII-column fast path is tried

# column-name hints: a value-level pattern that applies only in a column named like this
NAME_HINTS = {
    "date_of_birth": re.compile(r"(?:^|[^a-z])(?:dob|d_o_b|birth|born|bday|geburt|naissance|"
                                r"nacimiento)|birth|dateofbirth", re.I),
    "ssn": re.compile(r"(?:^|[^a-z])(?:ssn|social_?security|socsec)(?:$|[^a-z])|"
                      r"social.?security", re.I),
    "phone": re.compile(r"(?:^|[^a-z])(?:phone|mobile|cell|tel|telephone|fax|msisdn)"
                        r"(?:$|[^a-z])|phone", re.I),
}
_HINT_VALUE = {
    "date_of_birth": rf"^\s*{DATE}(?:[ T][0-9]{{1,2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\.[0-9]+)?)?)?\s*$",
    "ssn": rf"^\s*{_SSN_AREA}[ \-]?{_SSN_GROUP}[ \-]?{_SSN_SERIAL}\s*$",
    "phone": r"^\s*\+?[ ().\-]*(?:[0-9][ ().\-]*){8,15}\s*$",
}
HASHED = (r"^(?:(?:sha-?256|sha-?512)[:$])?(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$"
          r"|^[A-Za-z0-9+/=._\-]{1,128}[:$](?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$"
          r"|^\$(?:2[abxy]?|argon2(?:id|i|d)|5|6|7|scrypt|pbkdf2[A-Za-z0-9_\-]*)\$[^\s]+$"
          r"|^pbkdf2_sha(?:1|256|512)\$[0-9]+\$[^\s$]+\$[^\s$]+$"
          r"|^[A-Za-z0-9+/]{43}=$|^[A-Za-z0-9_\-]{43}$")

_PY = {k: re.compile(p, re.ASCII) for k, p in PATTERNS.items()}
_PY_ANCHORED = {k: re.compile(p, re.ASCII) for k, p in ANCHORED.items()}
_PY_HASHED = re.compile(HASHED, re.ASCII)
_PY_IPV6 = re.compile(IPV6_STRICT, re.ASCII)

# IBAN lengths by country (ISO 13616 registry)
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


# --------------------------------------------------------------------------- validators

def luhn_valid(number: str) -> bool:
    """Luhn (mod 10) check of a digit string; separators are ignored."""
    digits = [int(c) for c in number if c.isdigit()]
    if not digits:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_prefix_valid(digits: str) -> bool:
    """A known card-network prefix (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay,
    Maestro)."""
    if not digits:
        return False
    first = digits[0]
    if first in "3456":
        return True
    return first == "2" and 2221 <= int(digits[:4] or 0) <= 2720


def credit_card_valid(text: str) -> bool:
    digits = re.sub(r"[ \-]", "", text)
    return (digits.isascii() and digits.isdigit() and 13 <= len(digits) <= 19
            and card_prefix_valid(digits) and luhn_valid(digits))


def iban_valid(text: str) -> bool:
    """Registered length for the country and the ISO 7064 mod-97 check."""
    s = text.replace(" ", "").upper()
    if len(s) < 5 or not s.isascii() or not s.isalnum():
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def phone_valid(text: str) -> bool:
    return 8 <= sum(c.isdigit() for c in text) <= 15


def ip_valid(text: str) -> bool:
    """An IPv4 or IPv6 address (IPv6: at least two hex groups)."""
    if ":" in text:
        return bool(_PY_IPV6.match(text))
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


_SCALAR_CHECK: dict[str, Callable[[str], bool]] = {
    "credit_card": credit_card_valid, "iban": iban_valid, "phone": phone_valid,
    "ipv6": ip_valid,
}


def looks_hashed(value: str) -> bool:
    """True for a hex SHA-256/512 digest, a salted ``salt$digest`` or a modular-crypt hash
    (bcrypt, argon2, scrypt, pbkdf2) — what ``must-be-hashed`` accepts."""
    return bool(_PY_HASHED.match(value.strip()))


def find_all(text: str) -> dict[str, list[str]]:
    """Every validated PII match in one string, by kind (per-value reference path)."""
    out: dict[str, list[str]] = {}
    for name, rx in _PY.items():
        check = _SCALAR_CHECK.get(name)
        for m in rx.finditer(text):
            if check is None or check(m.group(0)):
                out.setdefault(_KIND_OF_PATTERN.get(name, name), []).append(m.group(0))
    return out


# --------------------------------------------------------------------------- masking

def _star(text: str, keep_last: int = 0) -> str:
    """Replace letters and digits by ``*`` (separators stay), keeping the last N digits."""
    chars = list(text)
    kept = 0
    for i in range(len(chars) - 1, -1, -1):
        c = chars[i]
        if c.isalnum():
            if c.isdigit() and kept < keep_last:
                kept += 1
                continue
            chars[i] = "*"
    return "".join(chars)


def mask(kind: str, text: str) -> str:
    """A masked rendering of a PII match that is safe to print."""
    text = str(text).strip()
    if kind == "email" and "@" in text:
        local, _, domain = text.rpartition("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***.{tld}" if host else f"{local[:1]}***@***"
    if kind == "credit_card":
        return _star(text, keep_last=4)
    if kind == "phone":
        return _star(text, keep_last=2)
    if kind == "iban":
        compact = text.replace(" ", "")
        return compact[:2] + "*" * max(0, len(compact) - 4) + compact[-2:]
    if kind == "ip_address":
        if ":" in text:
            head, _, rest = text.partition(":")
            return head + ":" + _star(rest)
        head, _, rest = text.partition(".")
        return head + "." + _star(rest)
    if kind in ("ssn", "date_of_birth"):
        return _star(text)
    return mask_value(text)


def mask_text(text: str) -> str:
    """``text`` with every validated PII match replaced by its masked form (for messages
    that quote user data, e.g. a traceback)."""
    for name, rx in _PY.items():
        kind = _KIND_OF_PATTERN.get(name, name)
        check = _SCALAR_CHECK.get(name)

        def repl(m: re.Match, kind=kind, check=check) -> str:
            hit = m.group(0)
            return mask(kind, hit) if check is None or check(hit) else hit

        text = rx.sub(repl, text)
    return text


def mask_value(value: Any) -> str:
    """Mask any value that may hold PII: shows only its kind (when detected) and length."""
    text = str(value)
    found = find_all(text)
    if found:
        kind, matches = next(iter(found.items()))
        return mask(kind, matches[0])
    return f"*** ({len(text)} chars)"
