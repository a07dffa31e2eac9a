"""Verifying a signed document against a keyring: what archives need from OpenPGP.

A document may carry several signatures (Debian signs each ``InRelease`` with its RSA archive
keys and an EdDSA release key). It is accepted when at least one of them verifies with a key of
the keyring that was valid (not expired, not revoked, allowed to sign) when the signature was
made; every signature is checked, so the result names all good signers. Anything else fails
closed with a :class:`~kitdsl.pkg.debian.errors.SignatureError` that lists, per signature, why
it did not count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kitdsl.pkg.debian.errors import SignatureError
from kitdsl.pkg.debian.openpgp.armor import (
    ArmorError,
    canonical_text,
    dearmor_all,
    is_armored,
    split_cleartext,
)
from kitdsl.pkg.debian.openpgp.keyring import Keyring
from kitdsl.pkg.debian.openpgp.packets import (
    ALGORITHM_NAMES,
    TAG_MARKER,
    TAG_SIGNATURE,
    PacketError,
    Signature,
    parse_signature,
    split_packets,
)
from kitdsl.pkg.debian.openpgp.signature import (
    ARMOR_HASH_IDS,
    SIG_BINARY,
    SIG_TEXT,
    BadSignature,
    check,
    hash_name,
)

CLOCK_SKEW = 3600
"""Seconds a signature may seem to come from the future (clocks differ) before it is refused."""


@dataclass(frozen=True)
class Signer:
    """A signature that verified: who made it, with which key, when."""

    fingerprint: str
    """The certificate's (primary key's) fingerprint."""
    key_fingerprint: str
    """The fingerprint of the key that signed: the primary key or one of its subkeys."""
    user_id: str
    algorithm: str
    """``RSA 4096``, ``EdDSA Ed25519``."""
    hash: str
    """``SHA-512``."""
    created: datetime

    def __str__(self) -> str:
        return f"{self.user_id} ({self.algorithm} key {self.key_fingerprint})"


@dataclass(frozen=True)
class Verified:
    """A document whose signature verified."""

    text: bytes
    """What was signed, and nothing else."""
    signers: tuple[Signer, ...]
    """Every signature that verified (at least one)."""


def verify_cleartext(
    data: bytes, keyring: Keyring, *, what: str, now: float | None = None
) -> Verified:
    """Verify a cleartext-signed document (an ``InRelease`` file); ``what`` names it in
    errors (its URL). Returns the signed text."""
    try:
        message = split_cleartext(data)
    except ArmorError as exc:
        raise SignatureError(
            f"{what} is not a valid signed message: {exc}",
            hint="the mirror may be serving a damaged or unsigned file; try another mirror",
        ) from None
    allowed = {ARMOR_HASH_IDS.get(name.upper(), -1) for name in message.hash_names}
    signatures = _signatures(message.signature, what)

    def policy(signature: Signature) -> str | None:
        if signature.sig_type != SIG_TEXT:
            return f"signature type {signature.sig_type:#04x} is not a text signature"
        if allowed and signature.hash_algorithm not in allowed:
            return "its hash algorithm is not the one the Hash header announces"
        return None

    signers = _verify_all(signatures, message.hashed, keyring, what, now, policy)
    return Verified(message.text, signers)


def verify_detached(
    data: bytes, signature: bytes, keyring: Keyring, *, what: str, now: float | None = None
) -> Verified:
    """Verify ``data`` against a detached signature (``Release`` with ``Release.gpg``),
    binary or armoured."""
    if is_armored(signature):
        try:
            (signature,) = dearmor_all(signature, "SIGNATURE")[:1]
        except ArmorError as exc:
            raise SignatureError(f"the signature of {what} is malformed: {exc}") from None
    signatures = _signatures(signature, what)
    text = canonical_text(data)

    def policy(sig: Signature) -> str | None:
        if sig.sig_type not in (SIG_BINARY, SIG_TEXT):
            return f"signature type {sig.sig_type:#04x} does not sign a document"
        return None

    binary_signers = [sig for sig in signatures if sig.sig_type == SIG_BINARY]
    text_signers = [sig for sig in signatures if sig.sig_type != SIG_BINARY]
    good: list[Signer] = []
    failures: list[str] = []
    for group, signed in ((binary_signers, data), (text_signers, text)):
        if group:
            try:
                good += _verify_all(group, signed, keyring, what, now, policy)
            except SignatureError as exc:
                failures += exc.details
    if not good:
        raise _failure(what, failures)
    return Verified(data, tuple(good))


def _signatures(binary: bytes, what: str) -> list[Signature]:
    try:
        packets = [p for p in split_packets(binary) if p.tag != TAG_MARKER]
        if any(p.tag != TAG_SIGNATURE for p in packets):
            raise PacketError("it holds packets that are not signatures")
        signatures = [parse_signature(p.body) for p in packets]
    except PacketError as exc:
        raise SignatureError(f"the signature of {what} is malformed: {exc}") from None
    if not signatures:
        raise SignatureError(f"{what} is not signed")
    return signatures


def _verify_all(
    signatures: list[Signature],
    signed: bytes,
    keyring: Keyring,
    what: str,
    now: float | None,
    policy: Callable[[Signature], str | None],
) -> tuple[Signer, ...]:
    current = time.time() if now is None else now
    good: list[Signer] = []
    failures: list[str] = []
    for signature in signatures:
        label = _label(signature)
        reason = policy(signature) or _timing(signature, current)
        if reason is not None:
            failures.append(f"{label}: {reason}")
            continue
        keys = keyring.candidates(signature)
        if not keys:
            failures.append(f"{label}: no such key in the keyring")
            continue
        problems: list[str] = []
        for key in keys:
            try:
                check(key.key, signature, (signed,))
            except BadSignature as exc:
                problems.append(str(exc))
                continue
            assert signature.created is not None  # check() refuses signatures without one
            problem = key.problem_at(signature.created)
            if problem is not None:
                problems.append(problem)
                continue
            good.append(
                Signer(
                    fingerprint=key.fingerprint,
                    key_fingerprint=key.key.fingerprint_hex,
                    user_id=key.user_id,
                    algorithm=key.key.describe(),
                    hash=hash_name(signature.hash_algorithm),
                    created=datetime.fromtimestamp(signature.created, UTC),
                )
            )
            break
        else:
            failures.append(f"{label}: {'; '.join(dict.fromkeys(problems))}")
    if not good:
        raise _failure(what, failures)
    return tuple(good)


def _timing(signature: Signature, now: float) -> str | None:
    if signature.created is None:
        return "it has no creation time"
    if signature.created > now + CLOCK_SKEW:
        return "it was made in the future (check the clock)"
    if signature.expires_after and signature.created + signature.expires_after <= now:
        return "the signature has expired"
    return None


def _label(signature: Signature) -> str:
    algorithm = ALGORITHM_NAMES.get(signature.algorithm, f"algorithm {signature.algorithm}")
    made = (
        datetime.fromtimestamp(signature.created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if signature.created is not None
        else "at an unknown time"
    )
    return f"{algorithm} signature by {signature.issuer_hint()} made {made}"


def _failure(what: str, failures: list[str]) -> SignatureError:
    return SignatureError(
        f"{what} has no valid signature from a trusted key",
        details=tuple(failures),
        hint="the file may be damaged or forged; if the archive is signed by another key, "
        "pass its keyring (Archive(..., keyring=Keyring.load(PATH)))",
    )
