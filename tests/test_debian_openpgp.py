"""OpenPGP verification of archive signatures, against keys and signatures made by the real
gpg, and cross-checked with gpgv."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from kitdsl.errors import PackageError
from kitdsl.pkg.debian import Keyring, SignatureError, verify_cleartext, verify_detached
from kitdsl.pkg.debian.openpgp.armor import crc24, split_cleartext
from tests.debian_archive import ArchiveKeys, Gpg, shared_keys

TEXT = (
    b"Origin: Kit\n"
    b"- a line that starts with a dash\n"
    b"--- and one with three\n"
    b"trailing spaces   \n"
    b"trailing tab\t\n"
    b"-----BEGIN PGP SIGNATURE----- in the text\n"
    b"From the start\n"
    b"\n"
    b"last line\n"
)


@pytest.fixture(scope="module")
def keys() -> ArchiveKeys:
    return shared_keys()


@pytest.fixture(scope="module")
def keyring(keys: ArchiveKeys) -> Keyring:
    return Keyring.from_bytes(keys.keyring(), source="test keyring")


@pytest.mark.parametrize("algorithm", ["ed25519", "rsa"])
def test_cleartext_signature_verifies_and_names_the_signer(
    keys: ArchiveKeys, keyring: Keyring, algorithm: str
) -> None:
    fingerprint = getattr(keys, algorithm)
    signed = keys.gpg.clearsign(TEXT, fingerprint)

    verified = verify_cleartext(signed, keyring, what="InRelease")

    assert [s.key_fingerprint for s in verified.signers] == [fingerprint]
    expected = "EdDSA Ed25519" if algorithm == "ed25519" else "RSA 2048"
    assert verified.signers[0].algorithm == expected
    assert verified.signers[0].user_id.startswith("Kit ")
    # What comes back is what was signed: dash escapes undone, trailing blanks dropped.
    assert verified.text == b"".join(line.rstrip() + b"\n" for line in TEXT.splitlines())
    assert keys.gpg.gpgv(keys.keyring(), signed)


def test_crlf_message_verifies(keys: ArchiveKeys, keyring: Keyring) -> None:
    signed = keys.gpg.clearsign(TEXT.replace(b"\n", b"\r\n"), keys.ed25519)
    assert verify_cleartext(signed, keyring, what="x").signers
    assert verify_cleartext(signed.replace(b"\r\n", b"\n"), keyring, what="x").signers


def test_several_signatures_count_if_one_is_trusted(keys: ArchiveKeys) -> None:
    """As Debian's InRelease: several signatures, some by keys we do not have."""
    signed = keys.gpg.clearsign(TEXT, keys.other, keys.rsa, keys.ed25519)
    only_rsa = Keyring.from_bytes(keys.keyring(keys.rsa))

    verified = verify_cleartext(signed, only_rsa, what="InRelease")

    assert [s.key_fingerprint for s in verified.signers] == [keys.rsa]
    both = verify_cleartext(signed, Keyring.from_bytes(keys.keyring()), what="InRelease")
    assert {s.key_fingerprint for s in both.signers} == {keys.rsa, keys.ed25519}


def test_unknown_key_is_refused(keys: ArchiveKeys, keyring: Keyring) -> None:
    signed = keys.gpg.clearsign(TEXT, keys.other)
    with pytest.raises(SignatureError, match="no valid signature") as caught:
        verify_cleartext(signed, keyring, what="http://mirror/InRelease")
    assert "http://mirror/InRelease" in str(caught.value)
    assert keys.other in str(caught.value) and "no such key in the keyring" in str(caught.value)
    assert caught.value.exit_code == PackageError.exit_code == 10
    assert not keys.gpg.gpgv(keys.keyring(), signed)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s.replace(b"last line", b"last lime"),
        lambda s: s.replace(b"Origin: Kit", b"Origin: Kit\nExtra: field"),
        lambda s: s.replace(b"\nlast line", b"\n- Injected: yes\nlast line"),
    ],
    ids=["changed", "added-line", "added-escaped"],
)
def test_changed_text_is_refused_as_gpgv_refuses_it(
    keys: ArchiveKeys, keyring: Keyring, tamper
) -> None:  # type: ignore[no-untyped-def]
    signed = tamper(keys.gpg.clearsign(TEXT, keys.ed25519, keys.rsa))
    with pytest.raises(SignatureError, match="no valid signature"):
        verify_cleartext(signed, keyring, what="x")
    assert not keys.gpg.gpgv(keys.keyring(), signed)


def test_trailing_whitespace_is_not_signed_as_gpgv_agrees(
    keys: ArchiveKeys, keyring: Keyring
) -> None:
    signed = keys.gpg.clearsign(TEXT, keys.rsa)
    changed = signed.replace(b"last line\n", b"last line  \t\n")
    assert verify_cleartext(changed, keyring, what="x").text.endswith(b"last line\n")
    assert keys.gpg.gpgv(keys.keyring(), changed)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda s: b"Unsigned: data\n" + s, "no BEGIN PGP SIGNED MESSAGE"),
        (lambda s: s + b"Appended: unsigned\n", "data after the signature"),
        (lambda s: s.replace(b"Hash: SHA", b"NotDashEscaped: yes\nHash: SHA"), "unexpected header"),
        (lambda s: s.replace(b"\n- - a line", b"\n-- a line"), "not dash-escaped"),
        (lambda s: s.split(b"-----BEGIN PGP SIGNATURE-----")[0], "no BEGIN PGP SIGNATURE"),
        (lambda s: s.replace(b"-----END PGP SIGNATURE-----", b""), "no END PGP SIGNATURE"),
    ],
    ids=["before", "after", "header", "escape", "no-signature", "no-end"],
)
def test_malformed_messages_are_refused(
    keys: ArchiveKeys, keyring: Keyring, tamper, message: str
) -> None:  # type: ignore[no-untyped-def]
    signed = tamper(keys.gpg.clearsign(TEXT, keys.ed25519))
    with pytest.raises(SignatureError, match=message):
        verify_cleartext(signed, keyring, what="x")


def test_unsigned_file_is_refused(keyring: Keyring) -> None:
    with pytest.raises(SignatureError, match="not a cleartext-signed message"):
        verify_cleartext(b"Origin: Debian\nSuite: stable\n", keyring, what="InRelease")


def _armour_lines(signed: bytes) -> tuple[bytes, bytes, bytes]:
    head, _, rest = signed.partition(b"-----BEGIN PGP SIGNATURE-----\n\n")
    body, _, tail = rest.partition(b"\n=")
    return head, body, tail


def test_damaged_armour_is_refused(keys: ArchiveKeys, keyring: Keyring) -> None:
    signed = keys.gpg.clearsign(TEXT, keys.ed25519)
    head, body, tail = _armour_lines(signed)
    flipped = body[:10] + (b"A" if body[10:11] != b"A" else b"B") + body[11:]
    damaged = head + b"-----BEGIN PGP SIGNATURE-----\n\n" + flipped + b"\n=" + tail
    with pytest.raises(SignatureError, match="CRC-24"):
        verify_cleartext(damaged, keyring, what="x")
    not_base64 = head + b"-----BEGIN PGP SIGNATURE-----\n\n" + b"%%%%\n=" + tail
    with pytest.raises(SignatureError, match="base64"):
        verify_cleartext(not_base64, keyring, what="x")


def test_crc24_matches_the_armour_gpg_writes(keys: ArchiveKeys) -> None:
    _, body, tail = _armour_lines(keys.gpg.clearsign(TEXT, keys.rsa))
    data = base64.b64decode(b"".join(body.split()))
    assert crc24(data).to_bytes(3, "big") == base64.b64decode(tail[:4])


def test_detached_signature_binary_and_armoured(keys: ArchiveKeys, keyring: Keyring) -> None:
    for armor in (True, False):
        signature = keys.gpg.detach_sign(TEXT, keys.rsa, keys.ed25519, armor=armor)
        verified = verify_detached(TEXT, signature, keyring, what="Release")
        assert {s.key_fingerprint for s in verified.signers} == {keys.rsa, keys.ed25519}
        assert verified.text == TEXT
        assert keys.gpg.gpgv(keys.keyring(), signature, TEXT)
        with pytest.raises(SignatureError, match="no valid signature"):
            verify_detached(TEXT + b"x", signature, keyring, what="Release")
        assert not keys.gpg.gpgv(keys.keyring(), signature, TEXT + b"x")


def test_sha1_signatures_are_refused(keys: ArchiveKeys, keyring: Keyring) -> None:
    signed = keys.gpg.run(
        "--local-user", keys.rsa, "--digest-algo", "SHA1", "--clearsign", data=TEXT
    )
    with pytest.raises(SignatureError, match="SHA-1 signatures are not accepted"):
        verify_cleartext(signed, keyring, what="x")


@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_sha2_digests_are_accepted(keys: ArchiveKeys, keyring: Keyring, digest: str) -> None:
    signed = keys.gpg.run(
        "--local-user", keys.rsa, "--digest-algo", digest, "--clearsign", data=TEXT
    )
    assert verify_cleartext(signed, keyring, what="x").signers[0].hash == digest.replace(
        "SHA", "SHA-"
    )


def test_keyring_reads_binary_armoured_and_folders(keys: ArchiveKeys, tmp_path: Path) -> None:
    (tmp_path / "a.gpg").write_bytes(keys.keyring(keys.ed25519))
    (tmp_path / "b.asc").write_bytes(b"comment\n" + keys.keyring(keys.rsa, armor=True))
    (tmp_path / "notes.txt").write_text("not a key")

    keyring = Keyring.load(tmp_path)

    assert {k.key.fingerprint_hex for k in keyring} == {keys.ed25519, keys.rsa}
    assert {k.source for k in keyring} == {str(tmp_path / "a.gpg"), str(tmp_path / "b.asc")}


def test_bad_keyrings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="cannot read keyring"):
        Keyring.from_bytes(b"this is not a key", source="junk.gpg")
    with pytest.raises(SignatureError, match="cannot read keyring"):
        Keyring.from_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n", source="cut.asc")
    with pytest.raises(SignatureError, match="cannot read keyring"):
        Keyring.load(tmp_path / "missing.gpg")


def test_debian_keys_are_shipped() -> None:
    keyring = Keyring.debian()
    names = {key.user_id for key in keyring}
    assert "Debian Archive Automatic Signing Key (12/bookworm) <ftpmaster@debian.org>" in names
    assert "Debian Stable Release Key (13/trixie) <debian-release@lists.debian.org>" in names
    assert "Debian Security Archive Automatic Signing Key (13/trixie) <ftpmaster@debian.org>" in (
        names
    )
    subkey = next(k for k in keyring if k.key.fingerprint_hex.endswith("6ED0E7B82643E131"))
    assert subkey.fingerprint == "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"
    assert subkey.expires == 1926589461  # as gpg shows it: 2031-01-19
    assert not keyring.skipped


def test_signatures_count_only_while_the_key_is_valid() -> None:
    """A key whose newest self-signature makes it expire before it signed: refused. A
    signature made before expiry stays good after it."""
    gpg = Gpg()
    try:
        start = int(time.time()) - 10 * 86400
        fingerprint = gpg.generate("Expiring <exp@example.org>", faked_time=start)
        early = gpg.clearsign(TEXT, fingerprint, faked_time=start + 3600)
        late = gpg.clearsign(TEXT, fingerprint, faked_time=start + 5 * 86400)
        gpg.set_expiry(fingerprint, "1d", faked_time=start + 60)
        keyring = Keyring.from_bytes(gpg.export(fingerprint))

        assert verify_cleartext(early, keyring, what="x").signers
        with pytest.raises(SignatureError, match="the key had expired when the signature"):
            verify_cleartext(late, keyring, what="x")

        gpg.revoke(fingerprint)
        revoked = Keyring.from_bytes(gpg.export(fingerprint))
        with pytest.raises(SignatureError, match="the key was revoked"):
            verify_cleartext(early, revoked, what="x")
        assert not gpg.gpgv(gpg.export(fingerprint), early)  # REVKEYSIG, as apt reads it
    finally:
        gpg.close()


def test_signing_subkey_with_binding_and_back_signature() -> None:
    gpg = Gpg()
    try:
        primary = gpg.generate("With Subkey <sub@example.org>", "ed25519")
        gpg.run("--passphrase", "", "--quick-add-key", primary, "rsa2048", "sign", "never")
        listing = gpg.run("--with-colons", "--list-keys", primary).decode().splitlines()
        subkey = [line.split(":")[9] for line in listing if line.startswith("fpr")][1]
        signed = gpg.clearsign(TEXT, subkey + "!")
        keyring = Keyring.from_bytes(gpg.export(primary))

        (signer,) = verify_cleartext(signed, keyring, what="x").signers

        assert (signer.fingerprint, signer.key_fingerprint) == (primary, subkey)
        assert signer.algorithm == "RSA 2048"
        assert gpg.gpgv(gpg.export(primary), signed)
    finally:
        gpg.close()


def test_signature_from_the_future_is_refused(keys: ArchiveKeys, keyring: Keyring) -> None:
    signed = keys.gpg.clearsign(TEXT, keys.ed25519)
    with pytest.raises(SignatureError, match="made in the future"):
        verify_cleartext(signed, keyring, what="x", now=time.time() - 7 * 86400)


def test_split_cleartext_reports_the_hash_header(keys: ArchiveKeys) -> None:
    message = split_cleartext(keys.gpg.clearsign(TEXT, keys.ed25519, keys.rsa))
    assert set(message.hash_names) <= {"SHA256", "SHA512"}
    assert message.hashed == b"\r\n".join(line.rstrip() for line in TEXT.splitlines())
