"""OpenPGP signature verification for archives, in Python on top of ``cryptography``.

Only what verifying a package archive needs: version 4 keys and signatures, RSA and legacy
EdDSA (Ed25519) keys, SHA-2 digests, binary and armoured keyrings, cleartext-signed and detached
signatures. No encryption, no key generation, no web of trust.
"""

from kitdsl.pkg.debian.openpgp.keyring import Keyring, SigningKey
from kitdsl.pkg.debian.openpgp.verify import Signer, Verified, verify_cleartext, verify_detached

__all__ = ["Keyring", "Signer", "SigningKey", "Verified", "verify_cleartext", "verify_detached"]
