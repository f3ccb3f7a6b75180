"""Attributes at rest: AES-256-GCM with a key id per row (so keys rotate), or a keyed hash.

Attributes named in `hashed` ("subject.email", "context.ip") are replaced by
`hmac-sha256:<hex>` of their canonical JSON value under the hash key: equal values give equal
hashes, so the log can still be searched and correlated without holding the value. All other
attributes are encrypted together as one JSON object.

Ciphertext format: ``v1:<base64(nonce(12) || ciphertext || tag)>``, with the key id as
associated data, so a ciphertext cannot be presented under another key id.

Key material
------------
Keys are 32 random bytes (16 or 24 are accepted), written as standard base64.

* File (`AttributeProtector.from_file`), JSON::

      {"active": "2026-11", "keys": {"2026-11": "<base64>", "2026-05": "<base64>"},
       "hash_key": "<base64>"}

* Environment (`AttributeProtector.from_env`)::

      POLICY_ENGINE_AUDIT_KEYS="2026-11:<base64>,2026-05:<base64>"
      POLICY_ENGINE_AUDIT_ACTIVE_KEY="2026-11"        (default: the first key listed)
      POLICY_ENGINE_AUDIT_HASH_KEY="<base64>"         (needed only when attributes are hashed)

Rotation: add the new key, make it active, keep the old ones as long as rows encrypted with
them are retained (each row names its key id). The hash key must not change, or hashes made
before and after no longer compare.

`AttributeProtector.generate_key()` returns a fresh base64 key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from policy_engine.audit.errors import AttributeDecryptionError, AttributeKeyError
from policy_engine.audit.redaction import is_credential_name, redact

__all__ = ["AttributeProtector"]

_VERSION = "v1"
# Built once: json.dumps with these options would build a new encoder on every call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
_ENV_PREFIX = "POLICY_ENGINE_AUDIT_"
# Attribute value types whose equality means an equal encoding (see _party_by_content).
_MEMO_TYPES = frozenset({str, int, bool, type(None)})


class AttributeProtector:
    """Encrypts attributes with the active key, hashes the configured ones, reveals with any key."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active_key_id: str,
        hashed: Collection[str] = (),
        hash_key: bytes | None = None,
    ) -> None:
        if active_key_id not in keys:
            raise AttributeKeyError(f"the active key {active_key_id!r} is not among the keys")
        for key_id, key in keys.items():
            if not key_id or len(key_id) > 64 or ":" in key_id:
                raise AttributeKeyError(f"key id {key_id!r}: 1-64 characters, no ':'")
            if len(key) not in (16, 24, 32):
                raise AttributeKeyError(f"key {key_id!r}: must be 16, 24 or 32 bytes, not {len(key)}")
        paths = tuple(hashed)
        for path in paths:
            if path.count(".") < 1:
                raise AttributeKeyError(f"hashed attribute {path!r}: write it as <entity>.<name>")
        if paths and not hash_key:
            raise AttributeKeyError("hashed attributes are configured but no hash key is")
        self._keys = {key_id: bytes(key) for key_id, key in keys.items()}
        self._ciphers = {key_id: AESGCM(key) for key_id, key in self._keys.items()}
        self._active = active_key_id
        self._hashed = paths
        self._hash_key = bytes(hash_key) if hash_key else b""

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable, so the writer process can be handed the same keys.
        return (AttributeProtector, (self._keys, self._active, self._hashed, self._hash_key or None))

    @property
    def active_key_id(self) -> str:
        return self._active

    @staticmethod
    def generate_key() -> str:
        """A fresh 256-bit key, base64, for a key file or the environment."""
        return base64.b64encode(os.urandom(32)).decode("ascii")

    @classmethod
    def from_file(cls, path: Path | str, hashed: Collection[str] = ()) -> AttributeProtector:
        """Keys from a JSON key file (format in the module docstring)."""
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
            keys = {str(k): _b64(v, f"key {k!r}") for k, v in dict(document["keys"]).items()}
            active = str(document.get("active") or next(iter(keys)))
            hash_key = _b64(document["hash_key"], "hash_key") if document.get("hash_key") else None
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
            raise AttributeKeyError(f"{path}: not a usable audit key file ({exc})") from exc
        return cls(keys, active, hashed=hashed, hash_key=hash_key)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, hashed: Collection[str] = ()
    ) -> AttributeProtector:
        """Keys from POLICY_ENGINE_AUDIT_KEYS / _ACTIVE_KEY / _HASH_KEY (see the module docstring)."""
        env = os.environ if environ is None else environ
        listed = env.get(f"{_ENV_PREFIX}KEYS", "").strip()
        if not listed:
            raise AttributeKeyError(f"{_ENV_PREFIX}KEYS is not set")
        keys: dict[str, bytes] = {}
        for item in listed.split(","):
            key_id, sep, material = item.strip().partition(":")
            if not sep:
                raise AttributeKeyError(f"{_ENV_PREFIX}KEYS: write each key as <id>:<base64>")
            keys[key_id] = _b64(material, f"key {key_id!r}")
        active = env.get(f"{_ENV_PREFIX}ACTIVE_KEY") or next(iter(keys))
        raw_hash_key = env.get(f"{_ENV_PREFIX}HASH_KEY")
        hash_key = _b64(raw_hash_key, f"{_ENV_PREFIX}HASH_KEY") if raw_hash_key else None
        return cls(keys, active, hashed=hashed, hash_key=hash_key)

    def protect(
        self, attributes: Mapping[str, Mapping[str, Any]]
    ) -> tuple[str, str, dict[str, str]]:
        """(ciphertext, key id, hashed): the configured attributes hashed and removed, the rest
        encrypted as one JSON object with the active key."""
        remaining = {str(entity): dict(values) for entity, values in attributes.items()}
        hashed: dict[str, str] = {}
        for path in self._hashed:
            entity, _, name = path.partition(".")
            values = remaining.get(entity)
            if values is not None and name in values:
                hashed[path] = self.hash_value(values.pop(name))
        return self._seal(_CANONICAL_JSON.encode(remaining).encode("utf-8")), self._active, hashed

    def protect_many(
        self,
        batch: Sequence[Mapping[str, Mapping[str, Any]]],
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> list[tuple[str, str, str]]:
        """(ciphertext, key id, hashed attributes as JSON) for each attributes mapping of `batch`,
        credentials redacted first (`redact`).

        The same result as `redact` then `protect` per entry (the same plaintext, the same
        hashes), but a party's attributes object shared by several entries (the subject of a
        BatchCheck) is redacted, hashed and JSON-encoded once per call. Every entry is still
        encrypted on its own, with a fresh random nonce. An entry whose attributes cannot be
        encoded gets the encryption of {}, and `on_error(index, exception)` is called.
        """
        parties: dict[Any, tuple[str, tuple[tuple[str, str], ...]]] = {}
        orders: dict[tuple[Any, ...], tuple[tuple[Any, str], ...]] = {}
        hashed_json: dict[tuple[tuple[str, str], ...], str] = {}
        plaintexts: list[bytes] = []
        hashes: list[str] = []
        for index, attributes in enumerate(batch):
            encoded, found = self._encode(attributes, orders, parties, on_error, index)
            plaintexts.append(encoded.encode("utf-8"))
            if not found:
                hashes.append("{}")
                continue
            text = hashed_json.get(found)
            if text is None:
                text = hashed_json[found] = json.dumps(dict(found), sort_keys=True)
            hashes.append(text)
        active = self._active
        encrypt = self._ciphers[active].encrypt
        associated = active.encode()
        nonces = os.urandom(12 * len(plaintexts))
        b64 = base64.b64encode
        out = []
        for index, plaintext in enumerate(plaintexts):
            nonce = nonces[12 * index : 12 * index + 12]
            token = b64(nonce + encrypt(nonce, plaintext, associated)).decode("ascii")
            out.append((f"{_VERSION}:{token}", active, hashes[index]))
        return out

    def protect_group(
        self,
        items: Sequence[Mapping[str, Mapping[str, Any]]],
        shared: Mapping[str, Mapping[str, Any]],
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> tuple[str, str, str, list[str]]:
        """(ciphertext, key id, shared hashed attributes as JSON, each item's hashed attributes as
        JSON or "") for a group of decisions (a group row of the decision log): the parties all
        items share (`shared`: {"subject": {...}, "actor": {...}}) and each item's own (`items`:
        {"resource": {...}, "context": {...}} each).

        One ciphertext seals them all: the JSON of {<shared party>: {...}, "items": [{<own
        party>: {...}}, ...]}, redacted and hashed as `protect_many` does (item_attributes gives
        an item's attributes back in a single decision's shape). An item whose own attributes
        cannot be encoded gets {} and `on_error(index, exception)` is called; shared attributes
        that cannot be encoded raise. With no `items` (a group whose items have no attributes of
        their own) "items" is left out, and each item reads back with {"resource": {}, "context":
        {}} as its own.
        """
        fragments = []
        shared_found: list[tuple[str, str]] = []
        for key in sorted(shared, key=str):
            if is_credential_name(key):
                continue
            encoded, found = self._party(str(key), shared[key] or {})
            fragments.append(f"{_CANONICAL_JSON.encode(str(key))}:{encoded}")
            shared_found.extend(found)
        parties: dict[Any, tuple[str, tuple[tuple[str, str], ...]]] = {}
        orders: dict[tuple[Any, ...], tuple[tuple[Any, str], ...]] = {}
        encoded_items: list[str] = []
        item_hashes: list[str] = []
        # Items may share one attributes object: each object is encoded once. Not a failed one
        # ("{}"), so that every item it fails for is reported. (Items without attributes of their
        # own come as PlainItems and are not passed here at all.)
        by_object: dict[int, tuple[str, str]] = {}
        for index, attributes in enumerate(items):
            known = by_object.get(id(attributes))
            if known is None:
                encoded, found = self._encode(attributes, orders, parties, on_error, index)
                known = (encoded, json.dumps(dict(found), sort_keys=True) if found else "")
                if encoded != "{}":
                    by_object[id(attributes)] = known  # `items` keeps the object alive: ids stay unique
            encoded_items.append(known[0])
            item_hashes.append(known[1])
        if encoded_items:
            fragments.append('"items":[' + ",".join(encoded_items) + "]")
        ciphertext = self._seal(("{" + ",".join(fragments) + "}").encode("utf-8"))
        return ciphertext, self._active, json.dumps(dict(shared_found), sort_keys=True), item_hashes

    @staticmethod
    def item_attributes(group_attributes: Mapping[str, Any], index: int) -> dict[str, Any]:
        """The attributes of item `index` from a group's revealed attributes, shaped as a single
        decision's: the shared parties and that item's own."""
        items = group_attributes.get("items")
        own = items[index] if items is not None else {"resource": {}, "context": {}}
        return {**{key: value for key, value in group_attributes.items() if key != "items"}, **own}

    def _encode(
        self,
        attributes: Mapping[str, Mapping[str, Any]],
        orders: dict[tuple[Any, ...], tuple[tuple[Any, str], ...]],
        parties: dict[Any, tuple[str, tuple[tuple[str, str], ...]]],
        on_error: Callable[[int, Exception], None] | None,
        index: int,
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        """One entry's parties as a JSON object (keys sorted, credentials redacted, hashed
        attributes left out) and the hashed ones as (path, hash) pairs. `orders` (key order per
        key set) and `parties` (each party encoded once, see _party_by_content) are memos shared
        by the entries of one call. Attributes that cannot be encoded give "{}" (the decision is
        still kept) and are reported as `on_error(index, exception)`."""
        try:
            return self._encode_parties(attributes, orders, parties)
        except Exception as exc:  # noqa: BLE001 - unserializable attributes: keep the decision
            if on_error is not None:
                on_error(index, exc)
            return "{}", ()

    def _encode_parties(
        self,
        attributes: Mapping[str, Mapping[str, Any]],
        orders: dict[tuple[Any, ...], tuple[tuple[Any, str], ...]],
        parties: dict[Any, tuple[str, tuple[tuple[str, str], ...]]],
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        keys = tuple(attributes)
        order = orders.get(keys)
        if order is None:
            order = orders[keys] = tuple(
                (key, f"{_CANONICAL_JSON.encode(str(key))}:")
                for key in sorted(keys, key=str)
                if not is_credential_name(key)
            )
        fragments = []
        found: tuple[tuple[str, str], ...] = ()
        for key, label in order:
            values = attributes[key]
            if not values:
                fragments.append(label + "{}")
                continue
            party = parties.get((label, id(values)))
            if party is None:
                party = self._party_by_content(parties, label, str(key), values)
            fragments.append(label + party[0])
            found += party[1]
        return "{" + ",".join(fragments) + "}", found

    def _party_by_content(
        self, memo: dict[Any, Any], label: str, entity: str, values: Mapping[str, Any]
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        """`_party`, remembered in `memo` by the object and, when its values are all strings,
        ints, bools or None, by its content too: the items of a batch often repeat a few small
        attribute objects (a resource's classification), each a new object. The value's type is
        part of the key (1 == True, but they encode differently); floats are left out (0.0 ==
        -0.0)."""
        content: Any = None
        party = None
        if all(type(value) in _MEMO_TYPES for value in values.values()):
            content = (label, tuple((key, type(value), value) for key, value in values.items()))
            party = memo.get(content)
        if party is None:
            party = self._party(entity, values)
            if content is not None:
                memo[content] = party
        memo[(label, id(values))] = party
        return party

    def _seal(self, plaintext: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._ciphers[self._active].encrypt(nonce, plaintext, self._active.encode())
        return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def _party(self, entity: str, values: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
        """One party's attributes: their canonical JSON without the hashed ones, and those hashed."""
        if not isinstance(values, Mapping):
            raise TypeError(f"{entity} attributes are not a mapping")
        remaining = redact(values)
        hashed = []
        for path in self._hashed:
            owner, _, name = path.partition(".")
            if owner == entity and name in remaining:
                hashed.append((path, self.hash_value(remaining.pop(name))))
        return _CANONICAL_JSON.encode(remaining), tuple(hashed)

    def reveal(self, ciphertext: str, key_id: str) -> dict[str, Any]:
        """The encrypted attributes; AttributeKeyError without the key, AttributeDecryptionError
        when the ciphertext does not open with it."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise AttributeKeyError(f"no audit key with id {key_id!r} is configured")
        version, _, token = ciphertext.partition(":")
        try:
            if version != _VERSION:
                raise ValueError(f"unknown ciphertext version {version!r}")
            raw = base64.b64decode(token, validate=True)
            plaintext = cipher.decrypt(raw[:12], raw[12:], key_id.encode())
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise AttributeDecryptionError(
                f"attributes do not decrypt with key {key_id!r}"
            ) from exc
        return dict(json.loads(plaintext))

    def hash_value(self, value: Any) -> str:
        """The keyed hash stored for a hashed attribute's value."""
        canonical = _CANONICAL_JSON.encode(value)
        digest = hmac.new(self._hash_key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text).strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttributeKeyError(f"{what}: not valid base64") from exc
