"""Keyrings: the certificates trusted to sign archives, checked the way gpg checks them.

A certificate (RFC 9580 §10.1) is a primary key, its user ids, its subkeys, and signatures that
bind them. Only what the primary key itself signed counts: a user id certified by the primary
key makes the certificate usable; a subkey counts once the primary key's binding signature
verifies and, for a signing subkey, the subkey's own back-signature (0x19) verifies too, so
nobody can claim another person's signing subkey. The newest valid self-signature gives the
key flags and expiry; revocations made by the key itself are honoured (a "superseded" or
"retired" revocation from its date on, any other for all time). Third-party certifications
are ignored: trust here comes from the keyring file, not a web of trust.

A key that fails these checks is kept out of :attr:`Keyring.keys` and listed, with the reason,
in :attr:`Keyring.skipped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kitdsl.pkg.debian.errors import SignatureError
from kitdsl.pkg.debian.openpgp.armor import ArmorError, dearmor_all, is_armored
from kitdsl.pkg.debian.openpgp.packets import (
    KEY_FLAG_SIGN,
    TAG_MARKER,
    TAG_PUBLIC_KEY,
    TAG_PUBLIC_SUBKEY,
    TAG_SIGNATURE,
    TAG_TRUST,
    TAG_USER_ATTRIBUTE,
    TAG_USER_ID,
    Packet,
    PacketError,
    PublicKey,
    Signature,
    parse_public_key,
    parse_signature,
    split_packets,
)
from kitdsl.pkg.debian.openpgp.signature import (
    SIG_CERT_REVOCATION,
    SIG_CERTIFICATIONS,
    SIG_DIRECT_KEY,
    SIG_KEY_REVOCATION,
    SIG_PRIMARY_BINDING,
    SIG_SUBKEY_BINDING,
    SIG_SUBKEY_REVOCATION,
    BadSignature,
    check,
)

SOFT_REVOCATIONS = frozenset({1, 3})
"""Revocation reasons "superseded" and "retired": signatures made before them stay good."""
KEYRING_SUFFIXES = (".gpg", ".pgp", ".asc", ".key")


@dataclass(frozen=True)
class SigningKey:
    """A key that may sign: a primary key or a subkey, with its certificate's verdicts."""

    key: PublicKey
    primary: PublicKey
    user_id: str
    """The certificate's primary (or first valid) user id."""
    expires: int | None
    """When the key stops being valid (the earlier of its own and its primary's expiry)."""
    revoked: int | None
    """From when the key is revoked (0: always), if it is."""
    can_sign: bool
    source: str
    """The file it came from."""

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the certificate (the primary key), as gpg shows it."""
        return self.primary.fingerprint_hex

    def problem_at(self, when: int) -> str | None:
        """Why a signature made at ``when`` by this key must not count, or ``None``."""
        if not self.can_sign:
            return "the key is not allowed to sign data"
        if when < self.key.created:
            return "the signature is older than the key"
        if self.revoked is not None and when >= self.revoked:
            return "the key was revoked"
        if self.expires is not None and when >= self.expires:
            return "the key had expired when the signature was made"
        return None

    def __str__(self) -> str:
        sub = "" if self.key is self.primary else f" (subkey {self.key.fingerprint_hex})"
        return f"{self.user_id} [{self.key.describe()} {self.fingerprint}{sub}]"


@dataclass(frozen=True)
class _Certificate:
    primary: PublicKey
    direct: list[Signature]
    user_ids: list[tuple[bytes, list[Signature]]]
    subkeys: list[tuple[PublicKey, list[Signature]]]


class Keyring:
    """The keys trusted to sign archives. Build one with :meth:`load`, :meth:`from_bytes`
    or :meth:`debian`."""

    def __init__(self, keys: Iterable[SigningKey] = (), skipped: Iterable[str] = ()) -> None:
        self.keys: tuple[SigningKey, ...] = tuple(keys)
        """Every usable primary key and subkey."""
        self.skipped: tuple[str, ...] = tuple(skipped)
        """Keys that were found but cannot be used, each with the reason."""

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[SigningKey]:
        return iter(self.keys)

    def __add__(self, other: Keyring) -> Keyring:
        return Keyring(self.keys + other.keys, self.skipped + other.skipped)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<keyring>") -> Keyring:
        """Keys from a binary keyring or ASCII-armoured key blocks."""
        try:
            armored = is_armored(data)
            binary = b"".join(dearmor_all(data, "PUBLIC KEY BLOCK")) if armored else data
            packets = split_packets(binary)
        except (ArmorError, PacketError) as exc:
            raise SignatureError(
                f"cannot read keyring {source}: {exc}",
                hint="give a binary keyring (.gpg) or an armoured public key block (.asc)",
            ) from None
        keys: list[SigningKey] = []
        skipped: list[str] = []
        for group in _certificates(packets):
            try:
                certificate = _parse_certificate(group)
            except PacketError as exc:
                skipped.append(f"{source}: unreadable key: {exc}")
                continue
            found, problems = _signing_keys(certificate, source)
            keys += found
            skipped += problems
        if not keys:
            raise SignatureError(
                f"keyring {source} holds no usable signing key",
                details=tuple(skipped),
                hint="export the archive's public key with 'gpg --export KEYID > FILE'",
            )
        return cls(keys, skipped)

    @classmethod
    def load(cls, *paths: str | Path) -> Keyring:
        """Keys from files, or folders whose ``*.gpg``, ``*.pgp``, ``*.asc`` and ``*.key``
        files all count (as in ``/etc/apt/trusted.gpg.d``)."""
        keyring = cls()
        for path in map(Path, paths):
            files = (
                sorted(p for p in path.iterdir() if p.suffix in KEYRING_SUFFIXES)
                if path.is_dir()
                else [path]
            )
            for file in files:
                try:
                    data = file.read_bytes()
                except OSError as exc:
                    raise SignatureError(f"cannot read keyring {file}: {exc.strerror}") from None
                keyring = keyring + cls.from_bytes(data, source=str(file))
        if not keyring.keys:
            raise SignatureError(f"no keyring files in {', '.join(map(str, paths))}")
        return keyring

    @classmethod
    def debian(cls) -> Keyring:
        """Debian's archive, security archive and stable release keys for bookworm and
        trixie, shipped with kitdsl (see docs/debian.md for where they come from)."""
        folder = resources.files("kitdsl.pkg.debian") / "keys"
        keyring = cls()
        for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
            if item.name.endswith(".pgp"):
                keyring = keyring + cls.from_bytes(item.read_bytes(), source=item.name)
        return keyring

    def candidates(self, signature: Signature) -> list[SigningKey]:
        """The keys a signature names as its issuer (every key if it names none)."""
        if not signature.issuer_fingerprints and not signature.issuer_key_ids:
            return list(self.keys)
        return [
            key
            for key in self.keys
            if key.key.fingerprint in signature.issuer_fingerprints
            or key.key.key_id in signature.issuer_key_ids
        ]


def _certificates(packets: list[Packet]) -> Iterator[list[Packet]]:
    """Split a keyring's packets into one list per certificate."""
    group: list[Packet] = []
    for packet in packets:
        if packet.tag in (TAG_TRUST, TAG_MARKER):
            continue  # gpg's local trust packets and markers carry nothing to verify
        if packet.tag == TAG_PUBLIC_KEY and group:
            yield group
            group = []
        group.append(packet)
    if group:
        yield group


def _parse_certificate(packets: list[Packet]) -> _Certificate:
    if packets[0].tag != TAG_PUBLIC_KEY:
        raise PacketError(
            f"a keyring must start with a public key packet, not tag {packets[0].tag}"
        )
    certificate = _Certificate(parse_public_key(packets[0].body), [], [], [])
    current: list[Signature] = certificate.direct
    for packet in packets[1:]:
        if packet.tag == TAG_SIGNATURE:
            current.append(parse_signature(packet.body))
        elif packet.tag == TAG_USER_ID:
            certificate.user_ids.append((packet.body, []))
            current = certificate.user_ids[-1][1]
        elif packet.tag == TAG_PUBLIC_SUBKEY:
            certificate.subkeys.append((parse_public_key(packet.body), []))
            current = certificate.subkeys[-1][1]
        elif packet.tag == TAG_USER_ATTRIBUTE:
            current = []  # photo ids: their signatures are of no use here
        else:
            raise PacketError(f"unexpected packet (tag {packet.tag}) in a certificate")
    return certificate


def _issued_by(signature: Signature, key: PublicKey) -> bool:
    """Whether the signature may have been made by ``key`` (it names it, or names nobody)."""
    if not signature.issuer_fingerprints and not signature.issuer_key_ids:
        return True
    return key.fingerprint in signature.issuer_fingerprints or key.key_id in (
        signature.issuer_key_ids
    )


def _valid(key: PublicKey, signature: Signature, *parts: bytes) -> bool:
    if not _issued_by(signature, key):
        return False
    try:
        check(key, signature, parts)
    except BadSignature:
        return False
    return signature.created is not None and signature.created >= key.created


def _revoked_from(revocations: Iterable[Signature]) -> int | None:
    times = [
        (sig.created or 0) if sig.revocation_reason in SOFT_REVOCATIONS else 0
        for sig in revocations
    ]
    return min(times) if times else None


def _expiry(key: PublicKey, signature: Signature) -> int | None:
    seconds = signature.key_expires_after
    return key.created + seconds if seconds else None


def _signing_keys(certificate: _Certificate, source: str) -> tuple[list[SigningKey], list[str]]:
    primary = certificate.primary
    material = primary.hash_material()
    name = f"{source}: key {primary.fingerprint_hex}"
    if primary.rsa is None and primary.ed25519 is None:
        return [], [f"{name}: {primary.describe()} keys are not supported"]
    direct = [
        sig
        for sig in certificate.direct
        if sig.sig_type == SIG_DIRECT_KEY and _valid(primary, sig, material)
    ]
    certified: list[Signature] = []
    user_ids: list[str] = []
    for uid, sigs in certificate.user_ids:
        uid_material = material + b"\xb4" + len(uid).to_bytes(4, "big") + uid
        certifications = [
            sig
            for sig in sigs
            if sig.sig_type in SIG_CERTIFICATIONS and _valid(primary, sig, uid_material)
        ]
        revoked = any(
            sig.sig_type == SIG_CERT_REVOCATION and _valid(primary, sig, uid_material)
            for sig in sigs
        )
        if certifications and not revoked:
            certified += certifications
            user_ids.append(uid.decode("utf-8", "replace"))
    if not user_ids:
        return [], [f"{name}: no user id is validly self-signed (SHA-256 or better)"]
    # As gpg does: the newest user id self-signature says when the key expires and what it
    # may do; a newer direct-key signature overrides what it states explicitly.
    latest = max(certified, key=lambda sig: sig.created or 0)
    primary_expires = _expiry(primary, latest)
    flags = latest.key_flags
    for sig in sorted(direct, key=lambda sig: sig.created or 0):
        if (sig.created or 0) > (latest.created or 0):
            if sig.key_expires_after is not None:
                primary_expires = _expiry(primary, sig)
            if sig.key_flags is not None:
                flags = sig.key_flags
    primary_revoked = _revoked_from(
        sig
        for sig in certificate.direct
        if sig.sig_type == SIG_KEY_REVOCATION and _valid(primary, sig, material)
    )
    user_id = user_ids[0]
    keys = [
        SigningKey(
            key=primary,
            primary=primary,
            user_id=user_id,
            expires=primary_expires,
            revoked=primary_revoked,
            can_sign=flags is None or bool(flags & KEY_FLAG_SIGN),
            source=source,
        )
    ]
    problems: list[str] = []
    for subkey, sigs in certificate.subkeys:
        both = material + subkey.hash_material()
        bindings = [
            sig for sig in sigs if sig.sig_type == SIG_SUBKEY_BINDING and _valid(primary, sig, both)
        ]
        if not bindings:
            problems.append(f"{name}: subkey {subkey.fingerprint_hex} has no valid binding")
            continue
        binding = max(bindings, key=lambda sig: sig.created or 0)
        can_sign = binding.key_flags is None or bool(binding.key_flags & KEY_FLAG_SIGN)
        if can_sign and not any(
            back.sig_type == SIG_PRIMARY_BINDING and _valid(subkey, back, both)
            for back in binding.embedded
        ):
            problems.append(
                f"{name}: signing subkey {subkey.fingerprint_hex} has no valid back-signature"
            )
            continue
        expiries = [t for t in (primary_expires, _expiry(subkey, binding)) if t is not None]
        revocations = [
            t
            for t in (
                primary_revoked,
                _revoked_from(
                    sig
                    for sig in sigs
                    if sig.sig_type == SIG_SUBKEY_REVOCATION and _valid(primary, sig, both)
                ),
            )
            if t is not None
        ]
        keys.append(
            SigningKey(
                key=subkey,
                primary=primary,
                user_id=user_id,
                expires=min(expiries) if expiries else None,
                revoked=min(revocations) if revocations else None,
                can_sign=can_sign,
                source=source,
            )
        )
    return keys, problems
