"""Checking one signature against one key: the hash (RFC 4880 §5.2.4) and the public-key
operation, with the policy of which algorithms are acceptable.

Accepted: RSA (PKCS#1 v1.5, keys of at least 2048 bits) and legacy EdDSA on Ed25519, over
SHA-256, SHA-384 or SHA-512. SHA-1 and MD5 are refused outright (collisions are practical), and
so is every other digest, since an archive signature needs none of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from kitdsl.pkg.debian.openpgp.packets import (
    ALGO_EDDSA_LEGACY,
    ALGO_RSA,
    ALGO_RSA_SIGN_ONLY,
    PublicKey,
    Signature,
)

HASHES: dict[int, tuple[str, type[hashes.HashAlgorithm]]] = {
    8: ("sha256", hashes.SHA256),
    9: ("sha384", hashes.SHA384),
    10: ("sha512", hashes.SHA512),
}
"""The digests accepted, by OpenPGP id: hashlib name and the matching ``cryptography`` class."""
HASH_NAMES = {
    1: "MD5",
    2: "SHA-1",
    3: "RIPEMD-160",
    8: "SHA-256",
    9: "SHA-384",
    10: "SHA-512",
    11: "SHA-224",
    12: "SHA3-256",
    14: "SHA3-512",
}
ARMOR_HASH_IDS = {"SHA256": 8, "SHA384": 9, "SHA512": 10, "SHA1": 2, "MD5": 1, "SHA224": 11}
"""The names a cleartext ``Hash:`` header uses (RFC 9580 §9.5)."""
MIN_RSA_BITS = 2048

SIG_BINARY = 0x00
SIG_TEXT = 0x01
SIG_CERTIFICATIONS = frozenset({0x10, 0x11, 0x12, 0x13})
SIG_SUBKEY_BINDING = 0x18
SIG_PRIMARY_BINDING = 0x19
SIG_DIRECT_KEY = 0x1F
SIG_KEY_REVOCATION = 0x20
SIG_SUBKEY_REVOCATION = 0x28
SIG_CERT_REVOCATION = 0x30


class BadSignature(Exception):
    """This signature does not verify with this key; the message says why."""


def hash_name(algorithm: int) -> str:
    """``SHA-256`` for 8, for messages."""
    return HASH_NAMES.get(algorithm, f"hash algorithm {algorithm}")


def check(key: PublicKey, signature: Signature, parts: Iterable[bytes]) -> None:
    """Raise :class:`BadSignature` unless ``signature`` over the concatenated ``parts`` (the
    signed data, as the signature type defines it) was made by ``key``."""
    if signature.hash_algorithm not in HASHES:
        raise BadSignature(f"{hash_name(signature.hash_algorithm)} signatures are not accepted")
    if signature.critical_unknown:
        kinds = ", ".join(map(str, signature.critical_unknown))
        raise BadSignature(f"it has critical subpackets this verifier does not know ({kinds})")
    if signature.created is None:
        raise BadSignature("it has no creation time")
    if signature.algorithm != key.algorithm:
        raise BadSignature("its algorithm is not the key's")
    name, algorithm = HASHES[signature.hash_algorithm]
    digest = hashlib.new(name)
    for part in parts:
        digest.update(part)
    digest.update(signature.trailer())
    value = digest.digest()
    if value[:2] != signature.left16:
        raise BadSignature("the digest does not match (the signed data was changed)")
    try:
        _verify(key, signature, value, algorithm())
    except InvalidSignature:
        raise BadSignature("the signature value is wrong") from None


def _verify(
    key: PublicKey, signature: Signature, digest: bytes, algorithm: hashes.HashAlgorithm
) -> None:
    if key.algorithm in (ALGO_RSA, ALGO_RSA_SIGN_ONLY) and key.rsa is not None:
        n, e = key.rsa
        if n.bit_length() < MIN_RSA_BITS:
            raise BadSignature(f"RSA keys under {MIN_RSA_BITS} bits are not accepted")
        if len(signature.values) != 1:
            raise BadSignature("malformed RSA signature")
        size = (n.bit_length() + 7) // 8
        if signature.values[0] >= n:
            raise InvalidSignature
        public = rsa.RSAPublicNumbers(e, n).public_key()
        public.verify(
            signature.values[0].to_bytes(size, "big"),
            digest,
            padding.PKCS1v15(),
            Prehashed(algorithm),
        )
        return
    if key.algorithm == ALGO_EDDSA_LEGACY and key.ed25519 is not None:
        if len(signature.values) != 2 or any(v.bit_length() > 256 for v in signature.values):
            raise BadSignature("malformed EdDSA signature")
        r, s = signature.values
        # Legacy EdDSA signs the digest itself: R and S are the two halves of the RFC 8032
        # signature, each an MPI (so leading zero octets were dropped and must come back).
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        Ed25519PublicKey.from_public_bytes(key.ed25519).verify(raw, digest)
        return
    raise BadSignature(f"{key.describe()} keys are not supported")
