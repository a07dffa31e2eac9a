"""OpenPGP packets (RFC 4880 §4-5, RFC 9580): the framing, and the two packets archive
verification needs, public keys and signatures, in their version 4 form.

Parsing is strict: a length that runs past the data, an unknown packet framing or a truncated
field is a :class:`PacketError`, never a guess. Algorithms are only *recognised* here; which
ones are accepted is decided in :mod:`.signature`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

TAG_SIGNATURE = 2
TAG_PUBLIC_KEY = 6
TAG_MARKER = 10
TAG_TRUST = 12
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14
TAG_USER_ATTRIBUTE = 17

ALGO_RSA = 1
ALGO_RSA_SIGN_ONLY = 3
ALGO_EDDSA_LEGACY = 22
ALGORITHM_NAMES = {
    1: "RSA",
    2: "RSA (encrypt-only)",
    3: "RSA (sign-only)",
    16: "Elgamal",
    17: "DSA",
    18: "ECDH",
    19: "ECDSA",
    22: "EdDSA",
    25: "X25519",
    27: "Ed25519",
}
ED25519_OID = bytes.fromhex("2b06010401da470f01")
"""1.3.6.1.4.1.11591.15.1, the curve of legacy EdDSA (algorithm 22) keys."""

# Signature subpackets (RFC 9580 §5.2.3.7): the ones whose meaning we use or may ignore.
SUB_CREATED = 2
SUB_SIG_EXPIRES = 3
SUB_KEY_EXPIRES = 9
SUB_ISSUER_KEY_ID = 16
SUB_KEY_FLAGS = 27
SUB_REVOCATION_REASON = 29
SUB_EMBEDDED_SIGNATURE = 32
SUB_ISSUER_FINGERPRINT = 33
UNDERSTOOD_SUBPACKETS = frozenset(
    {2, 3, 4, 7, 9, 11, 12, 16, 21, 22, 23, 24, 25, 27, 29, 30, 31, 32, 33, 34}
)
"""Subpackets that are either interpreted or purely informational for a verifier (preferences,
features, designated revokers): a *critical* subpacket outside this set makes the signature
unusable, as RFC 9580 §5.2.3.7 requires."""

KEY_FLAG_CERTIFY = 0x01
KEY_FLAG_SIGN = 0x02


class PacketError(ValueError):
    """Bytes that are not the OpenPGP structure they claim to be."""


@dataclass(frozen=True)
class Packet:
    """One packet: its tag and its body (the header stripped)."""

    tag: int
    body: bytes


def split_packets(data: bytes) -> list[Packet]:
    """The packets of a binary OpenPGP stream, in order."""
    packets: list[Packet] = []
    pos = 0
    while pos < len(data):
        start = pos
        ctb = data[pos]
        pos += 1
        if not ctb & 0x80:
            raise PacketError(f"byte {start} is not the start of an OpenPGP packet")
        if ctb & 0x40:
            tag = ctb & 0x3F
            length, pos = _new_length(data, pos)
        else:
            tag = (ctb >> 2) & 0x0F
            kind = ctb & 0x03
            if kind == 3:
                raise PacketError(f"packet at byte {start} has an indeterminate length")
            size = (1, 2, 4)[kind]
            length = int.from_bytes(_take(data, pos, size), "big")
            pos += size
        packets.append(Packet(tag, _take(data, pos, length)))
        pos += length
    return packets


def _new_length(data: bytes, pos: int) -> tuple[int, int]:
    first = _take(data, pos, 1)[0]
    if first < 192:
        return first, pos + 1
    if first < 224:
        second = _take(data, pos + 1, 1)[0]
        return ((first - 192) << 8) + second + 192, pos + 2
    if first == 255:
        return int.from_bytes(_take(data, pos + 1, 4), "big"), pos + 5
    # Partial body lengths exist only for streamed data packets, never keys or signatures.
    raise PacketError(f"packet at byte {pos - 1} uses a partial body length")


def _take(data: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(data):
        raise PacketError("truncated OpenPGP data")
    return data[pos : pos + size]


def _mpi(data: bytes, pos: int) -> tuple[int, int]:
    """A multiprecision integer (two-octet bit count, then big-endian octets)."""
    bits = int.from_bytes(_take(data, pos, 2), "big")
    size = (bits + 7) // 8
    return int.from_bytes(_take(data, pos + 2, size), "big"), pos + 2 + size


@dataclass(frozen=True)
class PublicKey:
    """A version 4 public key or subkey packet."""

    body: bytes
    """The packet body, as hashed into the signatures over the key."""
    created: int
    """Creation time, seconds since the epoch."""
    algorithm: int
    fingerprint: bytes
    """20 octets: SHA-1 over the key packet (RFC 4880 §12.2, the v4 definition)."""
    rsa: tuple[int, int] | None = None
    """``(n, e)`` of an RSA key."""
    ed25519: bytes | None = None
    """The 32-octet public point of a legacy EdDSA key on Ed25519."""
    bits: int = 0

    @property
    def key_id(self) -> bytes:
        """The low 64 bits of the fingerprint."""
        return self.fingerprint[-8:]

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint in upper-case hex, as gpg prints it."""
        return self.fingerprint.hex().upper()

    def describe(self) -> str:
        """``RSA 4096`` or ``EdDSA Ed25519``, for messages."""
        name = ALGORITHM_NAMES.get(self.algorithm, f"algorithm {self.algorithm}")
        if self.ed25519 is not None:
            return f"{name} Ed25519"
        return f"{name} {self.bits}" if self.bits else name

    def hash_material(self) -> bytes:
        """What a signature over this key hashes for it: 0x99, a two-octet length, the body."""
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body


def parse_public_key(body: bytes) -> PublicKey:
    """A public key or subkey packet body; only version 4 is accepted."""
    if not body or body[0] != 4:
        version = body[0] if body else "?"
        raise PacketError(f"version {version} keys are not supported (only version 4)")
    created = int.from_bytes(_take(body, 1, 4), "big")
    algorithm = _take(body, 5, 1)[0]
    # The fingerprint definition of v4 keys uses SHA-1; it names keys, it signs nothing.
    fingerprint = hashlib.sha1(
        b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False
    ).digest()
    if algorithm in (ALGO_RSA, ALGO_RSA_SIGN_ONLY):
        n, pos = _mpi(body, 6)
        e, pos = _mpi(body, pos)
        return PublicKey(body, created, algorithm, fingerprint, rsa=(n, e), bits=n.bit_length())
    if algorithm == ALGO_EDDSA_LEGACY:
        size = _take(body, 6, 1)[0]
        oid = _take(body, 7, size)
        point, _ = _mpi(body, 7 + size)
        raw = point.to_bytes(33, "big") if point.bit_length() <= 263 else b""
        if oid == ED25519_OID and raw[:1] == b"\x40":
            return PublicKey(body, created, algorithm, fingerprint, ed25519=raw[1:], bits=255)
    return PublicKey(body, created, algorithm, fingerprint)


@dataclass(frozen=True)
class Signature:
    """A version 4 signature packet, with the subpackets that matter to a verifier.

    Only the *hashed* area is trusted for times, flags and revocation reasons; the unhashed
    area may only name the issuer (a hint to find the key) and carry the embedded primary key
    binding signature (which is verified on its own)."""

    sig_type: int
    algorithm: int
    hash_algorithm: int
    hashed_prefix: bytes
    """Version through hashed subpackets: what the v4 trailer hashes."""
    left16: bytes
    """The first two octets of the digest, a quick check."""
    values: tuple[int, ...]
    """The algorithm-specific integers: RSA ``m^d mod n``; EdDSA ``R`` and ``S``."""
    created: int | None = None
    expires_after: int | None = None
    """Seconds after creation when the signature expires (``None`` or 0: never)."""
    key_expires_after: int | None = None
    """Seconds after the key's creation when the key expires (``None`` or 0: never)."""
    key_flags: int | None = None
    revocation_reason: int | None = None
    issuer_key_ids: frozenset[bytes] = frozenset()
    issuer_fingerprints: frozenset[bytes] = frozenset()
    embedded: tuple[Signature, ...] = ()
    critical_unknown: tuple[int, ...] = ()
    """Critical subpackets this verifier does not understand: the signature must not count."""

    def trailer(self) -> bytes:
        """What follows the signed data into the hash (RFC 4880 §5.2.4): the hashed part of
        the packet, then 0x04 0xFF and its length as four big-endian octets."""
        return self.hashed_prefix + b"\x04\xff" + len(self.hashed_prefix).to_bytes(4, "big")

    def issuer_hint(self) -> str:
        """The issuer as the signature names it (fingerprint if present, else key id)."""
        if self.issuer_fingerprints:
            return min(self.issuer_fingerprints).hex().upper()
        if self.issuer_key_ids:
            return min(self.issuer_key_ids).hex().upper()
        return "an unnamed key"


def parse_signature(body: bytes) -> Signature:
    """A signature packet body; only version 4 is accepted."""
    if not body or body[0] != 4:
        version = body[0] if body else "?"
        raise PacketError(f"version {version} signatures are not supported (only version 4)")
    sig_type, algorithm, hash_algorithm = _take(body, 1, 3)
    hashed_len = int.from_bytes(_take(body, 4, 2), "big")
    hashed_area = _take(body, 6, hashed_len)
    pos = 6 + hashed_len
    unhashed_len = int.from_bytes(_take(body, pos, 2), "big")
    unhashed_area = _take(body, pos + 2, unhashed_len)
    pos += 2 + unhashed_len
    left16 = _take(body, pos, 2)
    pos += 2
    values: list[int] = []
    while pos < len(body):
        value, pos = _mpi(body, pos)
        values.append(value)
    fields: dict[str, int] = {}
    key_ids: set[bytes] = set()
    fingerprints: set[bytes] = set()
    embedded: list[Signature] = []
    critical: list[int] = []
    for hashed, area in ((True, hashed_area), (False, unhashed_area)):
        for kind, is_critical, data in _subpackets(area):
            if kind == SUB_ISSUER_KEY_ID and len(data) == 8:
                key_ids.add(data)
            elif kind == SUB_ISSUER_FINGERPRINT and len(data) == 21 and data[0] == 4:
                fingerprints.add(data[1:])
            elif kind == SUB_EMBEDDED_SIGNATURE:
                embedded.append(parse_signature(data))
            elif hashed:
                _hashed_field(kind, data, fields)
            if hashed and is_critical and kind not in UNDERSTOOD_SUBPACKETS:
                critical.append(kind)
    return Signature(
        sig_type=sig_type,
        algorithm=algorithm,
        hash_algorithm=hash_algorithm,
        hashed_prefix=body[: 6 + hashed_len],
        left16=left16,
        values=tuple(values),
        issuer_key_ids=frozenset(key_ids),
        issuer_fingerprints=frozenset(fingerprints),
        embedded=tuple(embedded),
        critical_unknown=tuple(critical),
        created=fields.get("created"),
        expires_after=fields.get("expires_after"),
        key_expires_after=fields.get("key_expires_after"),
        key_flags=fields.get("key_flags"),
        revocation_reason=fields.get("revocation_reason"),
    )


def _hashed_field(kind: int, data: bytes, fields: dict[str, int]) -> None:
    """Record a hashed subpacket's value; a malformed one is an error, not ignored."""
    names = {
        SUB_CREATED: "created",
        SUB_SIG_EXPIRES: "expires_after",
        SUB_KEY_EXPIRES: "key_expires_after",
    }
    if kind in names:
        if len(data) != 4:
            raise PacketError(f"signature subpacket {kind} has length {len(data)}, not 4")
        fields[names[kind]] = int.from_bytes(data, "big")
    elif kind == SUB_KEY_FLAGS:
        fields["key_flags"] = data[0] if data else 0
    elif kind == SUB_REVOCATION_REASON and data:
        fields["revocation_reason"] = data[0]


def _subpackets(area: bytes) -> list[tuple[int, bool, bytes]]:
    """``(type, critical, data)`` of each subpacket in a signature's area."""
    found: list[tuple[int, bool, bytes]] = []
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            length = ((first - 192) << 8) + _take(area, pos + 1, 1)[0] + 192
            pos += 2
        else:
            length = int.from_bytes(_take(area, pos + 1, 4), "big")
            pos += 5
        if length == 0:
            raise PacketError("empty signature subpacket")
        chunk = _take(area, pos, length)
        found.append((chunk[0] & 0x7F, bool(chunk[0] & 0x80), chunk[1:]))
        pos += length
    return found
