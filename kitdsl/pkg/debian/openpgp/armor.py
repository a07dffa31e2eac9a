"""ASCII armour (RFC 9580 §6) and the cleartext signature framework (§7), parsed strictly.

A cleartext-signed file is split into the text that was signed and the signature packets. The
text handed back is exactly what the signature covers (dash-escapes removed, trailing
whitespace dropped as the hash drops it): nothing outside the signed part is ever returned,
and anything but blank lines before or after the signed message is refused, since a reader
that skipped it would be trusting unsigned data.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

BEGIN_SIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"
BEGIN_SIGNATURE = b"-----BEGIN PGP SIGNATURE-----"
END_SIGNATURE = b"-----END PGP SIGNATURE-----"
_WHITESPACE = b" \t\r"


class ArmorError(ValueError):
    """Armour or a cleartext framework that is malformed."""


def crc24(data: bytes) -> int:
    """The armour checksum (RFC 9580 §6.1.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def is_armored(data: bytes) -> bool:
    """Whether ``data`` is text (armour, maybe with comments around it) rather than binary
    OpenPGP, whose first octet always has its high bit set."""
    return not data or not data[0] & 0x80


def dearmor_all(data: bytes, kind: str) -> list[bytes]:
    """The decoded bodies of every ``-----BEGIN PGP {kind}-----`` block in ``data``; text
    between blocks is ignored (keys are often shipped with comments around them)."""
    lines = [line.rstrip(_WHITESPACE) for line in data.split(b"\n")]
    begin = f"-----BEGIN PGP {kind}-----".encode()
    blocks: list[bytes] = []
    index = 0
    while index < len(lines):
        if lines[index] == begin:
            body, index = _armored_body(lines, index + 1, kind)
            blocks.append(body)
        else:
            index += 1
    if not blocks:
        raise ArmorError(f"no '-----BEGIN PGP {kind}-----' block")
    return blocks


def _armored_body(lines: list[bytes], index: int, kind: str) -> tuple[bytes, int]:
    """Decode armour from the line after its BEGIN line; returns the data and the index of
    the line after END."""
    end = f"-----END PGP {kind}-----".encode()
    # Armour headers ("Version: ...", "Comment: ...") run to the first blank line.
    while True:
        if index >= len(lines):
            raise ArmorError(f"armoured {kind} ends inside its headers")
        line = lines[index]
        index += 1
        if not line:
            break
        if b": " not in line:
            raise ArmorError(f"malformed armour header line {line[:40]!r}")
    encoded: list[bytes] = []
    checksum: bytes | None = None
    while True:
        if index >= len(lines):
            raise ArmorError(f"armoured {kind} has no '-----END PGP {kind}-----' line")
        line = lines[index]
        index += 1
        if line == end:
            break
        if checksum is not None:
            raise ArmorError(f"armoured {kind} has data after its checksum")
        if line.startswith(b"=") and len(line) == 5:
            checksum = line[1:]
        elif line:
            encoded.append(line)
    try:
        body = base64.b64decode(b"".join(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise ArmorError(f"armoured {kind} is not valid base64") from None
    if checksum is not None:
        try:
            expected = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except (binascii.Error, ValueError):
            raise ArmorError(f"armoured {kind} has a malformed checksum") from None
        if crc24(body) != expected:
            raise ArmorError(f"armoured {kind} fails its CRC-24 checksum (it was damaged)")
    if not body:
        raise ArmorError(f"armoured {kind} is empty")
    return body, index


@dataclass(frozen=True)
class ClearSigned:
    """A cleartext-signed message taken apart."""

    text: bytes
    """The signed text with LF line endings, each line followed by one LF."""
    hashed: bytes
    """The text as the signatures hash it: lines joined with CR LF, no final line ending."""
    hash_names: tuple[str, ...]
    """The ``Hash:`` header values (``SHA256``, ...), empty when there was none."""
    signature: bytes
    """The binary signature packets."""


def split_cleartext(data: bytes) -> ClearSigned:
    """Take a cleartext-signed message (an ``InRelease`` file) apart, strictly."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index >= len(lines) or lines[index].rstrip(_WHITESPACE) != BEGIN_SIGNED:
        raise ArmorError("it is not a cleartext-signed message (no BEGIN PGP SIGNED MESSAGE)")
    index += 1
    hash_names: list[str] = []
    while True:
        if index >= len(lines):
            raise ArmorError("the signed message ends inside its headers")
        line = lines[index].rstrip(_WHITESPACE)
        index += 1
        if not line:
            break
        key, sep, value = line.partition(b": ")
        if key != b"Hash" or not sep:
            # RFC 9580 §7 allows only Hash here; NotDashEscaped and the like change what
            # was signed, so they are refused rather than guessed at.
            raise ArmorError(f"unexpected header {line[:40]!r} in the signed message")
        hash_names += [name.strip().decode("ascii", "replace") for name in value.split(b",")]
    text_lines: list[bytes] = []
    while True:
        if index >= len(lines):
            raise ArmorError("the signed message has no BEGIN PGP SIGNATURE line")
        line = lines[index]
        index += 1
        if line.rstrip(_WHITESPACE) == BEGIN_SIGNATURE:
            break
        if line.startswith(b"- "):
            line = line[2:]
        elif line.startswith(b"-"):
            raise ArmorError(f"line {index} of the signed message is not dash-escaped")
        text_lines.append(line.rstrip(b" \t"))
    signature_lines = [BEGIN_SIGNATURE]
    while index < len(lines):
        line = lines[index].rstrip(_WHITESPACE)
        index += 1
        signature_lines.append(line)
        if line == END_SIGNATURE:
            break
    else:
        raise ArmorError("the signature has no END PGP SIGNATURE line")
    if any(line.strip() for line in lines[index:]):
        raise ArmorError("there is data after the signature, outside what was signed")
    (signature,) = dearmor_all(b"\n".join(signature_lines), "SIGNATURE")
    return ClearSigned(
        text=b"".join(line + b"\n" for line in text_lines),
        hashed=b"\r\n".join(text_lines),
        hash_names=tuple(hash_names),
        signature=signature,
    )


def canonical_text(data: bytes) -> bytes:
    """A text document as a text signature (type 0x01) hashes it: every line ending CR LF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
