"""xtask's fix of moto's KMS Sign, Verify and GetPublicKey, run before `moto.server.main()`.

`cargo xtask local up` writes this file into the stack's state directory as
`xtask_moto_kms_fix.py` and starts moto there as (xtask/src/local/servers.rs, `MOTO_LAUNCHER`)

    python3 -c 'import runpy; runpy.run_path("xtask_moto_kms_fix.py"); import moto.server; moto.server.main()' -H 127.0.0.1 -p PORT

the same server as `python3 -m moto.server -H 127.0.0.1 -p PORT`, with two things made as real
KMS does them. Measured with moto 5.2.5 (the pinned version):

- `MessageType=DIGEST`: KMS signs (and verifies) the given digest as it is. moto ignores
  MessageType and hashes the digest again, so its signature is over SHA-256(digest) and a
  verifier of the real message (openssl, cosign) rejects it. Here the digest is used prehashed,
  and its length must be the algorithm's ("Digest is invalid length for algorithm ...").
- The message is at most 4096 bytes (KMS's API limit; bigger payloads must be sent as their
  digest). moto takes any size. Here a bigger message is a ValidationException, as on AWS.
- `GetPublicKey` answers `KeySpec` and the key ARN as `KeyId`. moto answers only the deprecated
  `CustomerMasterKeySpec`, and the bare key id. Here both fields are as on AWS.

Remove this file, its `include_str!` and the launcher in servers.rs once moto signs digests
itself (`xtask/tests/kms.rs` says when: its stock-moto test then fails).
"""

import contextvars
import json

from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.kms import utils
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse

MAX_MESSAGE_BYTES = 4096
DIGEST_BYTES = {"256": 32, "384": 48, "512": 64}

# Set while a DIGEST request is handled: the key then signs/verifies the message as a digest.
_prehashed = contextvars.ContextVar("xtask_kms_prehashed", default=False)

_ecdsa_hash = utils.ECDSAPrivateKey._ECDSAPrivateKey__hash_algorithm
_rsa_padding_and_hash = utils.RSAPrivateKey._RSAPrivateKey__padding_and_hash_algorithm


def _ecdsa_hash_algorithm(self, signing_algorithm):
    algorithm = _ecdsa_hash(self, signing_algorithm)
    return Prehashed(algorithm) if _prehashed.get() else algorithm


def _rsa_padding_and_hash_algorithm(self, signing_algorithm):
    pad, algorithm = _rsa_padding_and_hash(self, signing_algorithm)
    return pad, (Prehashed(algorithm) if _prehashed.get() else algorithm)


def _as_kms(handler):
    def checked(self):
        message = self._get_param("Message")
        if isinstance(message, bytes) and len(message) > MAX_MESSAGE_BYTES:
            raise ValidationException(
                "1 validation error detected: Value at 'message' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_MESSAGE_BYTES}"
            )
        if (self._get_param("MessageType") or "RAW") != "DIGEST":
            return handler(self)
        algorithm = self._get_param("SigningAlgorithm") or ""
        expected = DIGEST_BYTES.get(algorithm.rsplit("_", 1)[-1])
        if expected is not None and isinstance(message, bytes) and len(message) != expected:
            raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
        token = _prehashed.set(True)
        try:
            return handler(self)
        finally:
            _prehashed.reset(token)

    checked.__name__ = handler.__name__
    checked.__doc__ = handler.__doc__
    return checked


def _with_key_spec(handler):
    def get_public_key(self):
        body = json.loads(handler(self))
        body.setdefault("KeySpec", body.get("CustomerMasterKeySpec"))
        body["KeyId"] = self.kms_backend.describe_key(self._get_param("KeyId")).arn
        return json.dumps(body)

    get_public_key.__doc__ = handler.__doc__
    return get_public_key


utils.ECDSAPrivateKey._ECDSAPrivateKey__hash_algorithm = _ecdsa_hash_algorithm
utils.RSAPrivateKey._RSAPrivateKey__padding_and_hash_algorithm = _rsa_padding_and_hash_algorithm
KmsResponse.sign = _as_kms(KmsResponse.sign)
KmsResponse.verify = _as_kms(KmsResponse.verify)
KmsResponse.get_public_key = _with_key_spec(KmsResponse.get_public_key)
