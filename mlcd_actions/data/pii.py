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

Every value shown to a person goes through :func:`mask` first: reports, annotations and
logs quote ``j***@e***.com`` or ``****-****-****-1234``, never the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

KINDS = ("email", "phone", "ssn", "credit_card", "iban", "ip_address", "date_of_birth")
KIND_TITLES = {
    "email": "e-mail address", "phone": "phone number", "ssn": "social security number",
    "credit_card": "credit card number", "iban": "IBAN", "ip_address": "IP address",
    "date_of_birth": "date of birth",
}
MAX_ROWS = 5       # sample rows kept per finding
MAX_EXAMPLES = 3   # masked examples kept per finding
CHUNK_ROWS = 1 << 18

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


# --------------------------------------------------------------------------- scanning

@dataclass
class Hit:
    """PII of one kind in one column."""

    column: str
    kind: str
    count: int                      # values holding at least one match
    non_null: int                   # values scanned in the column
    rows: list[int] = field(default_factory=list)       # 0-based positions, first few
    examples: list[str] = field(default_factory=list)   # masked
    by_name: bool = False           # found through the column-name hint

    @property
    def share(self) -> float:
        return self.count / self.non_null if self.non_null else 0.0


@dataclass
class ScanResult:
    hits: list[Hit]
    bytes_scanned: int
    rows: int
    columns: list[str]
    seconds: float = 0.0


def name_hints(column: str) -> list[str]:
    return [kind for kind, rx in NAME_HINTS.items() if rx.search(str(column))]


def to_strings(series: pd.Series) -> pa.Array | None:
    """The column as an Arrow string array (None when it holds no text worth scanning)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = to_strings(pd.Series(series.cat.categories))
        if cats is None:
            return None
        codes = pa.array(series.cat.codes.to_numpy(), type=pa.int32())
        codes = pc.if_else(pc.equal(codes, -1), None, codes)
        return pc.take(cats, codes)
    if pd.api.types.is_string_dtype(dtype) or dtype == "object":
        try:
            arr = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None
        if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            mask_ = series.isna().to_numpy()
            arr = pa.array(series.astype(str).to_numpy(dtype=object), type=pa.large_string(),
                           mask=mask_)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        return arr
    if pd.api.types.is_integer_dtype(dtype):
        return pc.cast(pa.array(series, from_pandas=True), pa.string())
    return None


def _positions(mask_arr) -> Any:
    import numpy as np
    import pyarrow.compute as pc

    return np.flatnonzero(pc.fill_null(mask_arr, False).to_numpy(zero_copy_only=False))


def _fixed_matrix(arr, width: int):
    """Values of one length as an (n, width) uint8 matrix, without a Python loop."""
    import numpy as np
    import pyarrow as pa

    arr = pa.concat_arrays([arr.cast(pa.large_string())]) if len(arr) else arr
    n = len(arr)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    return data[start:start + n * width].reshape(n, width)


def _luhn_ok(digits) -> Any:
    """Vectorised Luhn + card prefix over an Arrow array of digit strings."""
    import numpy as np
    import pyarrow.compute as pc

    ok = np.zeros(len(digits), dtype=bool)
    lengths = pc.utf8_length(digits).to_numpy(zero_copy_only=False)
    for width in range(13, 20):
        idx = np.flatnonzero(lengths == width)
        if not len(idx):
            continue
        mat = _fixed_matrix(digits.take(idx), width).astype(np.int16) - 48
        if ((mat < 0) | (mat > 9)).any():  # not pure digits: leave to the scalar check
            ok[idx] = [credit_card_valid(s) for s in digits.take(idx).to_pylist()]
            continue
        double = (np.arange(width)[::-1] % 2) == 1
        vals = mat.copy()
        vals[:, double] *= 2
        vals[vals > 9] -= 9
        luhn = vals.sum(axis=1) % 10 == 0
        first = mat[:, 0]
        four = mat[:, 0] * 1000 + mat[:, 1] * 100 + mat[:, 2] * 10 + mat[:, 3]
        prefix = ((first >= 3) & (first <= 6)) | ((four >= 2221) & (four <= 2720))
        ok[idx] = luhn & prefix
    return ok


def _iban_ok(compact) -> Any:
    """Vectorised registered-length + mod-97 check over an Arrow array of IBANs."""
    import numpy as np
    import pyarrow.compute as pc

    ok = np.zeros(len(compact), dtype=bool)
    lengths = pc.utf8_length(compact).to_numpy(zero_copy_only=False)
    countries = pc.utf8_slice_codeunits(compact, 0, 2).to_numpy(zero_copy_only=False)
    expected = np.array([IBAN_LENGTHS.get(c, -1) for c in countries], dtype=np.int64) \
        if len(countries) else np.zeros(0, dtype=np.int64)
    for width in np.unique(lengths):
        idx = np.flatnonzero((lengths == width) & (expected == width))
        if not len(idx):
            continue
        mat = _fixed_matrix(compact.take(idx), int(width)).astype(np.int64)
        mat = np.concatenate([mat[:, 4:], mat[:, :4]], axis=1)
        is_digit = (mat >= 48) & (mat <= 57)
        is_upper = (mat >= 65) & (mat <= 90)
        if not (is_digit | is_upper).all():
            ok[idx] = [iban_valid(s) for s in compact.take(idx).to_pylist()]
            continue
        value = np.where(is_digit, mat - 48, mat - 55)
        r = np.zeros(len(idx), dtype=np.int64)
        for j in range(int(width)):
            r = np.where(is_digit[:, j], (r * 10 + value[:, j]) % 97,
                         (r * 100 + value[:, j]) % 97)
        ok[idx] = r == 1
    return ok


def _validate_first(name: str, first):
    """Vectorised validation of the first match of pattern ``name`` in each value."""
    import pyarrow.compute as pc

    if name == "credit_card":
        return _luhn_ok(pc.replace_substring_regex(first, r"[ \-]", ""))
    if name == "iban":
        return _iban_ok(pc.replace_substring(first, " ", ""))
    if name == "phone":
        return pc.fill_null(pc.match_substring_regex(first, PHONE_DIGITS), False).to_numpy(
            zero_copy_only=False)
    if name == "ipv6":
        return pc.fill_null(pc.match_substring_regex(first, IPV6_STRICT), False).to_numpy(
            zero_copy_only=False)
    raise KeyError(name)


class _Acc:
    """Accumulates one (column, kind) over chunks."""

    def __init__(self) -> None:
        self.count = 0
        self.rows: list[int] = []
        self.examples: list[str] = []

    def add(self, positions, base: int, arr, kind: str) -> None:
        self.count += len(positions)
        for p in positions[: max(0, MAX_ROWS - len(self.rows))]:
            self.rows.append(int(base + p))
            if len(self.examples) < MAX_EXAMPLES:
                example = _example(arr[int(p)].as_py(), kind)
                if example:
                    self.examples.append(example)


def _example(value: str | None, kind: str) -> str | None:
    """The first validated match of ``kind`` in ``value``, masked."""
    if value is None:
        return None
    for name, rx in _PY.items():
        if _KIND_OF_PATTERN.get(name, name) != kind:
            continue
        check = _SCALAR_CHECK.get(name)
        for m in rx.finditer(value):
            if check is None or check(m.group(0)):
                text = m.group(0)
                if kind == "date_of_birth":
                    date = re.search(DATE, text, re.ASCII)
                    text = date.group(0) if date else text
                return mask(kind, text)
    return mask(kind, value)


def _sorted_union(parts: list) -> Any:
    import numpy as np

    if not parts:
        return np.zeros(0, dtype=np.int64)
    a = np.sort(np.concatenate(parts)) if len(parts) > 1 else np.asarray(parts[0])
    if len(a) > 1:
        a = a[np.concatenate([[True], a[1:] != a[:-1]])]
    return a


def _valid_rows(sub, name: str) -> Any:
    """Positions in ``sub`` holding at least one valid match of pattern ``name``."""
    import numpy as np
    import pyarrow.compute as pc

    pattern = PATTERNS[name]
    local = _positions(pc.match_substring_regex(sub, pattern))
    if not len(local) or name in _REGEX_ONLY:
        return local
    vals = sub.take(local)
    # values that are one match as a whole (a PII column) are validated as they are;
    # only values with text around the match need the (slower) submatch extraction
    full = _positions(pc.match_substring_regex(vals, ANCHORED[name]))
    ok = np.zeros(len(vals), dtype=bool)
    if len(full):
        ok[full] = _validate_first(name, pc.utf8_trim_whitespace(vals.take(full)))
    part = np.setdiff1d(np.arange(len(vals)), full, assume_unique=True)
    if len(part):
        first = pc.struct_field(pc.extract_regex(vals.take(part), f"(?P<m>{pattern})"), [0])
        ok[part] = _validate_first(name, first)
    retry = np.flatnonzero(~ok)
    if len(retry):
        # a later match may be valid where the first was a look-alike
        many = pc.count_substring_regex(vals.take(retry), pattern).to_numpy(
            zero_copy_only=False) > 1
        check = _SCALAR_CHECK[name]
        for j in retry[many]:
            text = vals[int(j)].as_py()
            if any(check(x.group(0)) for x in _PY[name].finditer(text)):
                ok[j] = True
    return local[ok]


def dominant_patterns(arr, sample: int = 1000) -> list[str]:
    """Patterns that whole values of this column match (a PII column), from its first
    non-null values. Only a speed hint: every row is still checked for every kind."""
    values = [v for v in arr.slice(0, sample * 2).to_pylist() if v][:sample]
    if not values:
        return []
    out = []
    for name in PATTERNS:
        rx = _PY_ANCHORED[name]
        if sum(1 for v in values if rx.match(v)) >= 0.2 * len(values):
            out.append(name)
    return out


def _scan_chunk(arr, hints: list[str], is_int: bool,
                dominant: list[str] = ()) -> dict[str, Any]:
    """Positions (within ``arr``) of the values holding each kind."""
    import numpy as np
    import pyarrow.compute as pc

    found: dict[str, list] = {}
    for kind in hints:   # value-level checks in columns named like the kind
        pos = _positions(pc.match_substring_regex(arr, _HINT_VALUE[kind]))
        if len(pos):
            found.setdefault(kind, []).append(pos)
    if is_int:   # integers: beyond the name hints, only bare card numbers hide there
        pos = _positions(pc.match_substring_regex(arr, r"^[0-9]{13,19}$"))
        if len(pos):
            pos = pos[_luhn_ok(arr.take(pos))]
            if len(pos):
                found.setdefault("credit_card", []).append(pos)
        return {k: _sorted_union(v) for k, v in found.items()}
    rest = np.arange(len(arr))
    for name in dominant:
        # PII column fast path: values that are wholly one match are validated directly;
        # one more pass with the other patterns finds anything else inside them
        sub = arr.take(rest) if len(rest) != len(arr) else arr
        full = _positions(pc.match_substring_regex(sub, ANCHORED[name]))
        if not len(full):
            continue
        vals = sub.take(full)
        if name in _REGEX_ONLY:
            ok = np.ones(len(full), dtype=bool)
        else:
            ok = _validate_first(name, pc.utf8_trim_whitespace(vals))
        if ok.any():
            found.setdefault(_KIND_OF_PATTERN.get(name, name), []).append(rest[full[ok]])
        others = _positions(pc.match_substring_regex(vals, UNION_EXCEPT[name]))
        failed = np.flatnonzero(~ok)
        if len(failed):   # a look-alike value: only one holding a second match is rechecked
            many = pc.count_substring_regex(vals.take(failed), PATTERNS[name]).to_numpy(
                zero_copy_only=False) > 1
            failed = failed[many]
        again = _sorted_union([full[failed], full[others]])
        keep = np.ones(len(rest), dtype=bool)
        keep[full] = False
        keep[again] = True
        rest = rest[keep]
    if len(rest):
        sub = arr.take(rest) if len(rest) != len(arr) else arr
        cand = _positions(pc.match_substring_regex(sub, UNION))
        if len(cand):
            csub = sub.take(cand)
            for name in PATTERNS:
                local = _valid_rows(csub, name)
                if len(local):
                    found.setdefault(_KIND_OF_PATTERN.get(name, name), []).append(
                        rest[cand[local]])
    return {k: _sorted_union(v) for k, v in found.items()}


def scan_frame(df: pd.DataFrame, columns: Iterable[str] | None = None,
               on_progress: Callable[[int], None] | None = None) -> ScanResult:
    """Scan every text (and integer) column of ``df`` for PII; full data, no sampling."""
    import time

    import pandas as pd
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    hits: list[Hit] = []
    total_bytes = 0
    scanned: list[str] = []
    for col in (list(columns) if columns is not None else list(df.columns)):
        series = df[col]
        hints = name_hints(str(col))
        is_dt = pd.api.types.is_datetime64_any_dtype(series.dtype)
        if is_dt or (series.dtype == "object" and len(series)
                     and _looks_like_dates(series)):
            non_null = int(series.notna().sum())
            if "date_of_birth" in hints and non_null:
                pos = [int(i) for i in (series.notna().to_numpy().nonzero()[0][:MAX_ROWS])]
                examples = [mask("date_of_birth", str(series.iloc[p])[:10])
                            for p in pos[:MAX_EXAMPLES]]
                hits.append(Hit(str(col), "date_of_birth", non_null, non_null, pos, examples,
                                by_name=True))
                scanned.append(str(col))
            continue
        arr = to_strings(series)
        if arr is None:
            continue
        is_int = pd.api.types.is_integer_dtype(series.dtype)
        scanned.append(str(col))
        non_null = len(arr) - arr.null_count
        accs = {k: _Acc() for k in KINDS}
        dominant: list[str] = []
        if not is_int and non_null:
            mean_len = int(pc.sum(pc.binary_length(arr)).as_py() or 0) / non_null
            dominant = dominant_patterns(arr) if mean_len <= SHORT_VALUES else []
        for start in range(0, len(arr), CHUNK_ROWS):
            chunk = arr.slice(start, CHUNK_ROWS)
            nbytes = int(pc.sum(pc.binary_length(chunk)).as_py() or 0)
            total_bytes += nbytes
            for kind, positions in _scan_chunk(chunk, hints, is_int, dominant).items():
                accs[kind].add(positions, start, chunk, kind)
            if on_progress:
                on_progress(nbytes)
        for kind in KINDS:
            acc = accs[kind]
            if acc.count:
                hits.append(Hit(str(col), kind, acc.count, non_null, acc.rows, acc.examples,
                                by_name=kind in hints))
    return ScanResult(hits, total_bytes, len(df), scanned, time.perf_counter() - t0)


def _looks_like_dates(series: pd.Series) -> bool:
    import datetime as dt

    first = series.dropna()
    return bool(len(first)) and isinstance(first.iloc[0], (dt.date, dt.datetime))


def unhashed(series: pd.Series) -> tuple[int, list[int], list[str]]:
    """Values of a must-be-hashed column that do not look like a hash:
    (count, first rows, masked examples)."""
    import numpy as np
    import pyarrow.compute as pc

    arr = to_strings(series)
    if arr is None:  # numbers, dates, booleans: never a hash
        pos = np.flatnonzero(series.notna().to_numpy())
    else:
        stripped = pc.utf8_trim_whitespace(arr)
        ok = pc.match_substring_regex(stripped, HASHED)
        pos = np.flatnonzero(pc.and_(pc.invert(ok), pc.is_valid(arr)).to_numpy(
            zero_copy_only=False))
    rows = [int(p) for p in pos[:MAX_ROWS]]
    examples = [mask_value(series.iloc[p]) for p in rows[:MAX_EXAMPLES]]
    return len(pos), rows, examples


# --------------------------------------------------------------------------- policies

FORBID = "forbid"
ALLOW = "allow"
HASHED_ACTION = "must-be-hashed"
ACTIONS = (FORBID, ALLOW, HASHED_ACTION)
_POLICY_KEYS = {"version", "name", "title", "rules", "forbid", "columns"}


@dataclass
class ColumnRule:
    pattern: str                 # a column name, or a glob (``*_email``)
    action: str                  # forbid | allow | must-be-hashed
    kinds: tuple[str, ...] | None = None   # None: every kind
    where: str = ""              # "policy.yaml:7", for messages

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")

    def covers(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


@dataclass
class Policy:
    """What PII may be where: per-column rules plus kinds forbidden everywhere else."""

    columns: list[ColumnRule] = field(default_factory=list)
    forbid: dict[str, list[str]] = field(default_factory=dict)   # kind -> sources
    sources: list[str] = field(default_factory=list)             # files / rule sets read

    @property
    def empty(self) -> bool:
        return not self.columns and not self.forbid

    def rule_for(self, column: str) -> ColumnRule | None:
        import fnmatch

        exact = [r for r in self.columns if not r.is_glob and r.pattern == column]
        if exact:
            return exact[-1]
        globbed = [r for r in self.columns if r.is_glob and fnmatch.fnmatchcase(column, r.pattern)]
        return globbed[-1] if globbed else None


def builtin_rule_sets() -> list[str]:
    from importlib import resources

    files = resources.files("mlcd_actions").joinpath("policies")
    return sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".yaml"))


def _kinds(value: Any, where: str, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(k, str) for k in items):
        from mlcd_actions.core.errors import ConfigError

        raise ConfigError(f"{where}: {what} must be a list of PII kinds ({', '.join(KINDS)})")
    out = []
    for k in items:
        kind = k.strip().lower().replace("-", "_")
        kind = {"ip": "ip_address", "dob": "date_of_birth", "card": "credit_card",
                "credit_card_number": "credit_card", "e_mail": "email"}.get(kind, kind)
        if kind not in KINDS:
            import difflib

            from mlcd_actions.core.errors import ConfigError

            close = difflib.get_close_matches(kind, KINDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown PII kind {k!r}{hint}; known: {', '.join(KINDS)}")
        out.append(kind)
    return out


def load_rule_set(name_or_path: str, policy: Policy) -> None:
    """Add a built-in rule set (``hipaa``, ``pci``, ``gdpr``) or a rule-set file."""
    import os
    from importlib import resources

    from mlcd_actions.core.errors import ConfigError

    name = str(name_or_path).strip()
    if name.lower() in builtin_rule_sets():
        path = resources.files("mlcd_actions").joinpath("policies", f"{name.lower()}.yaml")
        with resources.as_file(path) as real:
            _merge_file(real, policy, label=name.lower())
        return
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        _merge_file(name, policy, label=os.path.basename(name))
        return
    raise ConfigError(f"--rules {name!r}: unknown rule set; built-in: "
                      f"{', '.join(builtin_rule_sets())} (or a path to a .yaml rule set)")


def load_policy(path: str | None = None, rules: Iterable[str] = ()) -> Policy:
    """Read ``--pii-policy`` and the ``--rules`` sets into one :class:`Policy`."""
    policy = Policy()
    for name in rules:
        load_rule_set(name, policy)
    if path:
        _merge_file(path, policy, label=None)
    return policy


def _merge_file(path, policy: Policy, label: str | None) -> None:
    import os

    from mlcd_actions.core import config
    from mlcd_actions.core.errors import ConfigError

    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such policy file")
    cfg = config.load(path)
    data = cfg.data
    name = os.path.basename(str(path))
    source = label or str(data.get("name") or name)
    policy.sources.append(source)
    for key in data:
        if key not in _POLICY_KEYS:
            raise ConfigError(f"{cfg.where(key)}: unknown key {key!r} in policy "
                              f"(keys: {', '.join(sorted(_POLICY_KEYS))})",
                              file=str(path), line=cfg.line_of(key))
    for rule in data.get("rules") or []:
        load_rule_set(str(rule), policy)
    for kind in _kinds(data.get("forbid") or [], cfg.where("forbid"), "forbid"):
        policy.forbid.setdefault(kind, [])
        if source not in policy.forbid[kind]:
            policy.forbid[kind].append(source)
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError(f"{cfg.where('columns')}: columns must map a column name to "
                          f"{' | '.join(ACTIONS)}", file=str(path), line=cfg.line_of("columns"))
    for col, spec in columns.items():
        where = cfg.where("columns", col)
        kinds = None
        if isinstance(spec, dict):
            unknown = set(spec) - {"action", "kinds"}
            if unknown or "action" not in spec:
                raise ConfigError(f"{where}: column {col!r}: expected 'action' and optional "
                                  f"'kinds', got {', '.join(map(str, spec))}",
                                  file=str(path), line=cfg.line_of("columns", col))
            action = spec["action"]
            if spec.get("kinds") is not None:
                kinds = tuple(_kinds(spec["kinds"], where, "kinds"))
        else:
            action = spec
        action = str(action).strip().lower().replace("_", "-")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: column {col!r}: unknown action {spec!r}; "
                              f"use {', '.join(ACTIONS)}",
                              file=str(path), line=cfg.line_of("columns", col))
        policy.columns.append(ColumnRule(str(col), action, kinds, where))
