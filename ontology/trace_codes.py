"""Traceability identifiers for lookback and recall investigations: ISBT 128 donation
identification numbers (blood, tissue) and 药品追溯码 (China drug traceability codes, in the
NMPA 20-digit form and the GS1 form).

Pure functions. Every rejection is a coded error (:class:`~ontology.errors.InvalidDin`,
:class:`~ontology.errors.InvalidDrugTraceCode`) whose ``details["field"]`` names the part that
is wrong and, for check characters, ``details["expected"]`` gives the right one.

What is and is not checked:

* ISBT 128 DIN: structure and the ISO/IEC 7064 MOD 37-2 check character, fully — but the
  facility identification number only for its format, not whether ICCBBA assigned it (the
  synthetic generator's Z33nn facilities are not real ones).
* GS1 element strings: the Application Identifiers read here, the GTIN mod-10 check digit and
  the dates, fully.
* NMPA 20-digit codes: only the structure NMPAB/T 1002-2019 sets out (20 characters, the first 7
  the 药品标识码). The standard requires a check portion but does not publish where it sits or
  how it is computed; the codes in circulation descend from the 中国药品电子监管码, whose check
  digits are described as produced by a non-public ("特殊加密") algorithm. No check is
  attempted: a 20-digit code that is well formed here may still be forged or mistyped, and
  only the national traceability platform can say whether it was issued.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from ontology.errors import InvalidDin, InvalidDrugTraceCode

__all__ = [
    "Din",
    "DrugTraceCode",
    "din_check_character",
    "gs1_check_digit",
    "gs1_date",
    "parse_din",
    "parse_drug_trace_code",
    "validate_din",
    "validate_drug_trace_code",
]

# ---------------------------------------------------------------------------------------------
# ISBT 128 Donation Identification Number (ICCBBA ST-001 ISBT 128 Standard Technical
# Specification, Data Structure 001 "Donation Identification Number", =αppppyynnnnnnff):
#   α pppp  facility identification number (FIN): 1 character A–N, P–Z or 1–9, then 4 digits
#   yy      2-digit year code
#   nnnnnn  6-digit sequence number assigned by the facility
#   ff      2 flag digits (not part of the DIN; printed rotated 90°, or left out)
# followed on the label by the keyboard-entry check character, printed in a box.
# The character classes are those listed for Data Structure 001 in Cerus INTERCEPT Blood System
# operator's manual §7.4 "Barcode compatibility" (a vendor restatement of ST-001; the ST-001
# text itself was not reachable while writing this).
_FIN_FIRST = frozenset("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789")

# ISO/IEC 7064 MOD 37-2 character values: 0–9 → 0–9, A–Z → 10–35, '*' → 36 (JPAC "Red Book",
# Guidelines for the Blood Transfusion Services in the UK, Annex 2 "ISBT 128 check character
# calculation", Table A2.1). '*' only ever appears as a check character.
_MOD37 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"

# Red Book Annex 2: the barcode carries the check value + 60 in the flag positions, so flags
# 60–96 are a transmission check that must agree with the DIN. Other values are process flags
# (00 = no flag) and are kept as given.
_CHECKSUM_FLAG_OFFSET = 60

# Printed and scanned decorations around a DIN: spaces between the groups, the box around the
# check character, the '=' data identifier of the barcode.
_DIN_DECORATION = str.maketrans("", "", " \t\r\n-[]()|□")


def _mod37_2(data: str) -> str:
    """ISO/IEC 7064 MOD 37-2 over ``data`` (0–9, A–Z), pure system, radix 2.

    Red Book Annex 2 steps 1–6: Σ value·2ⁿ with n = 1 for the right-most character, then
    (38 − Σ mod 37) mod 37. Written here in Horner form, which gives the same sum mod 37.
    """
    total = 0
    for ch in data:
        total = (total + _MOD37.index(ch)) * 2 % 37
    return _MOD37[(38 - total) % 37]


@dataclass(frozen=True)
class Din:
    """An ISBT 128 donation identification number split into its parts.

    ``check`` is always the computed MOD 37-2 character; when the input carried one, it matched.
    """

    facility: str  # FIN, 5 characters, assigned by ICCBBA
    year: str  # 2-digit year code
    sequence: str  # 6 digits, assigned by the facility
    flags: str | None  # the 2 flag digits when the input carried them
    check: str  # keyboard-entry check character, 0–9, A–Z or '*'

    @property
    def din(self) -> str:
        """The 13-character DIN, the key of a BloodDonation."""
        return self.facility + self.year + self.sequence

    def __str__(self) -> str:
        return self.din


def _din_error(field: str, message: str, text: object, **details: object) -> InvalidDin:
    return InvalidDin(message, field=field, value=text, **details)


def _check_din_body(din13: str, text: object) -> None:
    """Raise InvalidDin for the first part of a 13-character DIN body that breaks ST-001."""
    fin, year, seq = din13[:5], din13[5:7], din13[7:13]
    if fin[0] not in _FIN_FIRST or not fin[1:].isdigit() or not fin[1:].isascii():
        raise _din_error(
            "facility",
            f"机构代码 '{fin}' 格式错误：首位应为 A–N、P–Z 或 1–9，后 4 位为数字 "
            f"facility identification number '{fin}' must be 1 character from A–N, P–Z, 1–9 then 4 digits",
            text, valid="[A-NP-Z1-9][0-9]{4}")
    if not (year.isdigit() and year.isascii()):
        raise _din_error("year", f"年份码 '{year}' 应为 2 位数字 year code '{year}' must be 2 digits",
                         text, valid="[0-9]{2}")
    if not (seq.isdigit() and seq.isascii()):
        raise _din_error("sequence", f"序列号 '{seq}' 应为 6 位数字 sequence number '{seq}' must be 6 digits",
                         text, valid="[0-9]{6}")


def din_check_character(din13: str) -> str:
    """The keyboard-entry check character of a 13-character DIN (ISO/IEC 7064 MOD 37-2).

    ``din_check_character("G123498654321") == "H"`` (Red Book Annex 2, Table A2.2). Raises
    InvalidDin when ``din13`` is not a well-formed 13-character DIN.
    """
    if not isinstance(din13, str) or len(din13) != 13:
        raise _din_error("length", f"计算校验字符需要 13 位献血码 the check character is computed over exactly 13 "
                         f"DIN characters, got {din13!r}", din13)
    din13 = din13.upper()
    _check_din_body(din13, din13)
    return _mod37_2(din13)


def parse_din(text: str) -> Din:
    """Parse a DIN as printed, typed or scanned; validate it and any check character or flags.

    Accepted, after removing spaces, hyphens, a box/brackets round the check character and a
    leading '=' data identifier (case-insensitive, full-width characters folded):

    * 13 characters — the DIN alone (``G123498654321``; the synthetic ``Z330025000038``)
    * 14 — DIN + check character (``G1234 98 654321 [H]``)
    * 15 — DIN + 2 flag digits, as scanned (``=G12349865432100``)
    * 16 — DIN + flags + check character (``G1234 98 654321 00 H``)

    Raises InvalidDin; ``details["field"]`` is one of ``length``, ``facility``, ``year``,
    ``sequence``, ``flags``, ``check``.
    """
    return _parse_din(text)[0]


def _parse_din(text: str) -> tuple[Din, bool]:
    """The parsed DIN and whether the input carried a check character."""
    if not isinstance(text, str):
        raise _din_error("length", f"献血码应为字符串 a DIN must be a string, got {type(text).__name__}", text)
    s = unicodedata.normalize("NFKC", text).upper().translate(_DIN_DECORATION)
    if s.startswith("="):
        s = s[1:]
    if len(s) not in (13, 14, 15, 16):
        raise _din_error(
            "length",
            f"献血码应为 13 位（可另带 2 位标志和 1 位校验字符），实际 {len(s)} 位 "
            f"a DIN is 13 characters, optionally followed by 2 flag digits and/or the check character; "
            f"got {len(s)} in {text!r}",
            text, valid=[13, 14, 15, 16])
    body = s[:13]
    _check_din_body(body, text)
    flags = s[13:15] if len(s) >= 15 else None
    supplied = s[-1] if len(s) in (14, 16) else None
    check = _mod37_2(body)
    if flags is not None:
        if not (flags.isdigit() and flags.isascii()):
            raise _din_error("flags", f"标志位 '{flags}' 应为 2 位数字 flag characters '{flags}' must be 2 digits",
                             text, valid="[0-9]{2}")
        if _CHECKSUM_FLAG_OFFSET <= int(flags) <= _CHECKSUM_FLAG_OFFSET + 36:
            expected = f"{_MOD37.index(check) + _CHECKSUM_FLAG_OFFSET:02d}"
            if flags != expected:
                raise _din_error(
                    "flags",
                    f"校验型标志位应为 {expected}，实际为 {flags}：献血码或标志位有误 "
                    f"checksum flags should be {expected} for {body}, got {flags} — the DIN or the flags were misread",
                    text, expected=expected, got=flags)
    if supplied is not None:
        if supplied not in _MOD37:
            raise _din_error("check", f"校验字符 '{supplied}' 不在 0–9、A–Z、* 中 "
                             f"check character '{supplied}' must be one of 0–9, A–Z, '*'", text, valid=_MOD37)
        if supplied != check:
            raise _din_error(
                "check",
                f"校验字符应为 '{check}'，实际为 '{supplied}'：请对照标签重新录入 "
                f"check character should be '{check}' for {body}, got '{supplied}' — retype the DIN from the label",
                text, expected=check, got=supplied)
    return Din(body[:5], body[5:7], body[7:13], flags, check), supplied is not None


def validate_din(text: str, *, require_check: bool = False) -> str:
    """The normalised 13-character DIN of ``text``, or InvalidDin saying what is wrong.

    With ``require_check=True`` a DIN typed without its check character is refused, as a
    keyboard-entry screen should (the check character is what catches typing errors).
    """
    din, had_check = _parse_din(text)
    if require_check and not had_check:
        # The expected character is deliberately not shown: it would defeat keyboard-entry checking.
        raise _din_error("check", "缺少校验字符：请录入标签上献血码后方框内的字符 the check character is required: "
                         "type the boxed character printed after the DIN", text)
    return din.din


# ---------------------------------------------------------------------------------------------
# GS1 (GS1 General Specifications: §7.9.1 check digit, §3.2 Application Identifiers,
# §7.8 element strings and FNC1, §7.11 character set 82, §7.12 dates).

_GS = "\x1d"  # FNC1 as transmitted by scanners (ASCII group separator)
_SYMBOLOGY_IDS = ("]C1", "]D2", "]Q3", "]E0", "]J1")  # GS1-128, DataMatrix, QR, DataBar, DotCode
_GS_SPELLINGS = ("<GS>", "{GS}", "[GS]", "␝", "\\x1d", "\\X1D", "^]")
# Only spaces and line breaks are dropped: str.isspace() (and so re's \s) is true for GS itself.
_BLANKS = re.compile(r"[ \t\r\n]+")
# GS1 AI encodable character set 82 (General Specifications §7.11, Figure 7.11-1).
_CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class _Ai:
    title: str
    min_len: int
    max_len: int
    numeric: bool
    date: bool = False

    @property
    def fixed(self) -> bool:
        return self.min_len == self.max_len


# The Application Identifiers found on drug and vaccine packs (General Specifications §3.2;
# AIs 710–715 are national healthcare reimbursement numbers). Others are refused in the raw
# form, where an unknown AI's length cannot be known, and kept unvalidated in the bracketed form.
_AIS: dict[str, _Ai] = {
    "01": _Ai("GTIN", 14, 14, True),
    "10": _Ai("batch/lot", 1, 20, False),
    "11": _Ai("production date", 6, 6, True, date=True),
    "15": _Ai("best before date", 6, 6, True, date=True),
    "16": _Ai("sell by date", 6, 6, True, date=True),
    "17": _Ai("expiration date", 6, 6, True, date=True),
    "21": _Ai("serial number", 1, 20, False),
    "240": _Ai("additional product identification", 1, 30, False),
    **{str(ai): _Ai("national healthcare reimbursement number", 1, 20, False) for ai in range(710, 716)},
}


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit for the digits of a GTIN-8/12/13/14 (or SSCC) before it.

    Weights 3 and 1 alternate from the right-most digit (General Specifications §7.9.1):
    ``gs1_check_digit("629104150021") == "3"``. Raises ValueError for non-digits.
    """
    if not digits or not digits.isdigit() or not digits.isascii():
        raise ValueError(f"GS1 check digit needs digits, got {digits!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str(-total % 10)


def gs1_date(yymmdd: str, *, as_of: dt.date | None = None) -> dt.date:
    """A GS1 YYMMDD date (AIs 11, 15, 16, 17) as a calendar date.

    DD = 00 means the last day of the month. The century follows General Specifications §7.12:
    a YY 51–99 years ahead of ``as_of`` (default today) is in the previous century, one 50–99
    years behind it in the next, any other in the current one. Raises ValueError.
    """
    if len(yymmdd) != 6 or not yymmdd.isdigit() or not yymmdd.isascii():
        raise ValueError(f"a GS1 date is 6 digits YYMMDD, got {yymmdd!r}")
    today = as_of or dt.date.today()
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    century = today.year // 100
    diff = yy - today.year % 100
    if 51 <= diff <= 99:
        century -= 1
    elif -99 <= diff <= -50:
        century += 1
    year = century * 100 + yy
    if not 1 <= mm <= 12:
        raise ValueError(f"month {mm:02d} in {yymmdd} is not 01–12")
    if dd == 0:
        dd = calendar.monthrange(year, mm)[1]
    return dt.date(year, mm, dd)  # ValueError for a day past the month's end


# ---------------------------------------------------------------------------------------------
# 药品追溯码 (NMPAB/T 1002-2019《药品追溯码编码要求》, §6 追溯码构成要求): made of digits,
# letters and/or symbols; contains a 药品标识码 (drug identifier, unique per packaging level), a
# 生产标识码 (production identifier: at least the 单品序列号, optionally batch, production and
# expiry dates) and a check portion; and is EITHER 20 characters whose first 7 are the 药品标识码
# OR encoded under an ISO international standard — in practice GS1 (an ISO/IEC 15459 issuing
# agency). The 国家医保局 describes the printed codes as 20 digits marked "药品追溯码"
# (《关于药品追溯码，国家医保局发布七问七答》, 2024-12-06).
NMPA20_LENGTH = 20
NMPA20_PRODUCT_LENGTH = 7

Scheme = Literal["nmpa20", "gs1"]


@dataclass(frozen=True)
class DrugTraceCode:
    """A parsed 药品追溯码.

    * ``nmpa20``: ``product_code`` is the 7-digit 药品标识码; ``serial`` is the 13 digits after
      it, which hold the unit serial number and the check portion (NMPAB/T 1002 does not fix
      the split); ``check`` is None because the check algorithm is not public.
    * ``gs1``: ``product_code`` is the GTIN-14 (AI 01), ``serial`` AI 21, ``lot`` AI 10,
      ``expiry`` AI 17, ``check`` the GTIN's verified check digit; ``elements`` keeps every
      (AI, value) in the order read.

    ``code`` is the normalised text: the 20 digits, or the bracketed GS1 element string —
    compare codes on it (a code settled twice points to 回流药 / 串换 / a counterfeit).
    """

    scheme: Scheme
    code: str
    product_code: str
    serial: str
    lot: str | None = None
    expiry: dt.date | None = None
    check: str | None = None
    elements: tuple[tuple[str, str], ...] = ()


def _drug_error(field: str, message: str, text: object, **details: object) -> InvalidDrugTraceCode:
    return InvalidDrugTraceCode(message, field=field, value=text, **details)


def _split_bracketed(s: str, text: str) -> list[tuple[str, str]]:
    """``(01)…(17)…(10)…(21)…`` → [(AI, value)]. Spaces are not in character set 82 and are dropped."""
    s = _BLANKS.sub("", s)
    marks = list(re.finditer(r"\((\d{2,4})\)", s))
    if not marks or marks[0].start() != 0:
        raise _drug_error("syntax", f"GS1 括号格式应以 (AI) 开头 a bracketed GS1 string starts with an (AI), "
                          f"got {text!r}", text)
    out = []
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        out.append((m.group(1), s[m.end(): nxt.start() if nxt else len(s)]))
    return out


def _split_raw(s: str, text: str) -> list[tuple[str, str]]:
    """A scanned element string: fixed-length AIs run on, variable-length ones end at FNC1/GS."""
    out = []
    i = 0
    while i < len(s):
        if s[i] == _GS:
            i += 1
            continue
        ai = next((s[i:i + k] for k in (2, 3, 4) if s[i:i + k] in _AIS), None)
        if ai is None:
            raise _drug_error(
                "ai",
                f"位置 {i} 处的应用标识符 '{s[i:i + 4]}…' 不受支持：请使用带括号的格式 "
                f"unsupported or unknown GS1 Application Identifier at position {i} ('{s[i:i + 4]}…'); "
                f"supported: {', '.join(sorted(_AIS))} — pass the bracketed (AI) form to keep others",
                text, valid=sorted(_AIS))
        spec = _AIS[ai]
        start = i + len(ai)
        if spec.fixed:
            end = start + spec.max_len
        else:
            end = s.find(_GS, start)
            end = len(s) if end < 0 else end
        out.append((ai, s[start:end]))
        i = end
    return out


def _check_elements(pairs: list[tuple[str, str]], text: str, as_of: dt.date | None) -> DrugTraceCode:
    seen: dict[str, str] = {}
    for ai, value in pairs:
        if ai in seen and seen[ai] != value:
            raise _drug_error("ai", f"应用标识符 ({ai}) 出现两次且取值不同 AI ({ai}) appears twice with different "
                              f"values '{seen[ai]}' and '{value}'", text, ai=ai)
        seen[ai] = value
        spec = _AIS.get(ai)
        if spec is None:
            continue
        field = {"01": "gtin", "10": "lot", "21": "serial"}.get(ai, "expiry" if ai == "17" else f"ai{ai}")
        if not spec.min_len <= len(value) <= spec.max_len:
            size = spec.max_len if spec.fixed else f"1–{spec.max_len}"
            raise _drug_error(field, f"({ai}) {spec.title} 长度应为 {size}，实际 {len(value)} "
                              f"({ai}) {spec.title} must be {size} characters, got {len(value)}: '{value}'",
                              text, ai=ai)
        if spec.numeric and not (value.isdigit() and value.isascii()):
            raise _drug_error(field, f"({ai}) {spec.title} 应为数字 ({ai}) {spec.title} must be digits, "
                              f"got '{value}'", text, ai=ai)
        bad = sorted({ch for ch in value if ch not in _CSET82})
        if bad:
            raise _drug_error(field, f"({ai}) {spec.title} 含有 GS1 字符集 82 之外的字符 {bad} ({ai}) {spec.title} "
                              f"has characters outside GS1 character set 82: {bad}", text, ai=ai)
        if spec.date:
            try:
                gs1_date(value, as_of=as_of)
            except ValueError as exc:
                raise _drug_error(field, f"({ai}) {spec.title} '{value}' 不是有效日期 is not a valid YYMMDD date: "
                                  f"{exc}", text, ai=ai) from None
    for ai, field, name in (("01", "gtin", "GTIN 药品标识"), ("21", "serial", "单品序列号 serial number")):
        if ai not in seen:
            raise _drug_error(field, f"GS1 药品追溯码缺少 ({ai}) {name}：NMPAB/T 1002 要求含药品标识码和单品序列号 "
                              f"a GS1 drug traceability code needs AI ({ai}) {name}", text, ai=ai)
    gtin = seen["01"]
    check = gs1_check_digit(gtin[:13])
    if gtin[13] != check:
        raise _drug_error("check", f"GTIN 校验位应为 {check}，实际为 {gtin[13]} GTIN check digit should be {check} "
                          f"for {gtin[:13]}, got {gtin[13]}", text, expected=check, got=gtin[13])
    code = "".join(f"({ai}){value}" for ai, value in pairs)
    expiry = gs1_date(seen["17"], as_of=as_of) if "17" in seen else None
    return DrugTraceCode("gs1", code, gtin, seen["21"], seen.get("10"), expiry, check, tuple(pairs))


def parse_drug_trace_code(text: str, *, as_of: dt.date | None = None) -> DrugTraceCode:
    """Parse a 药品追溯码 in any of the forms found on packs and from scanners.

    * ``nmpa20`` — 20 digits (spaces ignored), e.g. a 码上放心 / former 电子监管码 code. Only the
      structure is checked (module docstring).
    * ``gs1`` bracketed — ``(01)06901234567892(17)261231(10)B2407(21)0001234567``.
    * ``gs1`` raw — the same element string as scanned: optional symbology identifier
      (``]d2``, ``]C1``, ``]Q3``…), FNC1 sent as ASCII 29 (GS) or spelt ``<GS>``, after every
      variable-length field that is not last.

    A bare 20-digit string is read as ``nmpa20``; prefix a symbology identifier or use brackets
    for the rare GS1 string that is exactly 20 digits. ``as_of`` fixes the century window of
    GS1 dates (default today). Raises InvalidDrugTraceCode; ``details["field"]`` is one of
    ``length``, ``characters``, ``syntax``, ``ai``, ``gtin``, ``check``, ``lot``, ``serial``,
    ``expiry`` (or ``ai11``/``ai15``/… for other AIs).
    """
    if not isinstance(text, str) or not text.strip():
        raise _drug_error("length", f"药品追溯码为空 a drug traceability code is required, got {text!r}", text)
    s = unicodedata.normalize("NFKC", text).strip(" \t\r\n")
    if s.startswith("("):
        return _check_elements(_split_bracketed(s, text), text, as_of)
    raw = s
    for spelling in _GS_SPELLINGS:
        raw = raw.replace(spelling, _GS)
    has_symbology = raw[:3].upper() in _SYMBOLOGY_IDS
    if has_symbology:
        raw = raw[3:]
    compact = _BLANKS.sub("", raw)
    if not has_symbology and _GS not in compact and len(compact) == NMPA20_LENGTH and compact.isdigit():
        if not compact.isascii():
            raise _drug_error("characters", f"药品追溯码应为半角数字 the code must be ASCII digits, got {text!r}", text)
        return DrugTraceCode("nmpa20", compact, compact[:NMPA20_PRODUCT_LENGTH], compact[NMPA20_PRODUCT_LENGTH:])
    if has_symbology or _GS in compact or compact.startswith("01"):
        return _check_elements(_split_raw(compact.lstrip(_GS), text), text, as_of)
    if compact.isdigit():
        raise _drug_error("length", f"药品追溯码应为 20 位数字，实际 {len(compact)} 位 an NMPA drug traceability code "
                          f"is 20 digits, got {len(compact)} in {text!r}", text, valid=[NMPA20_LENGTH])
    raise _drug_error("characters", f"无法识别的药品追溯码：应为 20 位数字或 GS1 格式 (01)…(21)… "
                      f"unrecognised drug traceability code {text!r}: expected 20 digits or a GS1 element string",
                      text)


def validate_drug_trace_code(text: str, *, as_of: dt.date | None = None) -> str:
    """The normalised code (``DrugTraceCode.code``) of ``text``, or InvalidDrugTraceCode saying what is wrong."""
    return parse_drug_trace_code(text, as_of=as_of).code
