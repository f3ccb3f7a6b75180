"""AttributeProtector: AES-GCM per key id, keyed hashes, key material from a file or the environment."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from policy_engine.audit import AttributeDecryptionError, AttributeKeyError, AttributeProtector

KEY_1, KEY_2, HASH_KEY = b"1" * 32, b"2" * 32, b"h" * 32
ATTRIBUTES = {"subject": {"email": "a@x.io", "mfa": True}, "context": {"ip": "10.1.2.3"}}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_round_trip_removes_hashed_attributes() -> None:
    """protect encrypts all but the hashed attributes; reveal gives them back."""
    protector = AttributeProtector({"k1": KEY_1}, "k1", hashed=["subject.email"], hash_key=HASH_KEY)
    ciphertext, key_id, hashed = protector.protect(ATTRIBUTES)
    assert key_id == "k1" and "a@x.io" not in ciphertext and "10.1.2.3" not in ciphertext
    assert hashed == {"subject.email": protector.hash_value("a@x.io")}
    assert hashed["subject.email"].startswith("hmac-sha256:")
    assert protector.reveal(ciphertext, key_id) == {"subject": {"mfa": True}, "context": {"ip": "10.1.2.3"}}


def test_same_value_same_hash_different_key_different_hash() -> None:
    """Keyed hashes compare across rows, and mean nothing without the hash key."""
    one = AttributeProtector({"k1": KEY_1}, "k1", hashed=["subject.email"], hash_key=HASH_KEY)
    other = AttributeProtector({"k1": KEY_1}, "k1", hashed=["subject.email"], hash_key=b"o" * 32)
    assert one.protect(ATTRIBUTES)[2] == one.protect(ATTRIBUTES)[2]
    assert one.protect(ATTRIBUTES)[2] != other.protect(ATTRIBUTES)[2]


def test_ciphertext_is_bound_to_its_key_id() -> None:
    """A ciphertext presented under another key id does not open, even with the same key bytes."""
    protector = AttributeProtector({"k1": KEY_1, "k2": KEY_1}, "k1")
    ciphertext, _, _ = protector.protect(ATTRIBUTES)
    with pytest.raises(AttributeDecryptionError):
        protector.reveal(ciphertext, "k2")


def test_tampered_ciphertext_is_refused() -> None:
    """Editing one character of the ciphertext makes reveal fail with a named error."""
    protector = AttributeProtector({"k1": KEY_1}, "k1")
    ciphertext, key_id, _ = protector.protect(ATTRIBUTES)
    version, _, body = ciphertext.partition(":")
    raw = bytearray(base64.b64decode(body))
    raw[len(raw) // 2] ^= 0x01  # one bit of the sealed bytes, not a base64 padding bit
    flipped = f"{version}:{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(AttributeDecryptionError):
        protector.reveal(flipped, key_id)


def test_unknown_key_id_is_a_key_error() -> None:
    """Revealing without the key raises AttributeKeyError naming the key id."""
    ciphertext, _, _ = AttributeProtector({"old": KEY_1}, "old").protect(ATTRIBUTES)
    with pytest.raises(AttributeKeyError, match="old"):
        AttributeProtector({"new": KEY_2}, "new").reveal(ciphertext, "old")


def test_bad_configuration_is_refused() -> None:
    """Short keys, an absent active key, or hashing without a hash key are refused at start."""
    with pytest.raises(AttributeKeyError):
        AttributeProtector({"k1": b"short"}, "k1")
    with pytest.raises(AttributeKeyError):
        AttributeProtector({"k1": KEY_1}, "k2")
    with pytest.raises(AttributeKeyError):
        AttributeProtector({"k1": KEY_1}, "k1", hashed=["subject.email"])


def test_keys_from_file(tmp_path: Path) -> None:
    """A JSON key file gives the keys, the active key and the hash key."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"active": "k2", "keys": {"k1": b64(KEY_1), "k2": b64(KEY_2)},
                                "hash_key": b64(HASH_KEY)}))
    protector = AttributeProtector.from_file(path, hashed=["context.ip"])
    ciphertext, key_id, hashed = protector.protect(ATTRIBUTES)
    assert key_id == "k2" and list(hashed) == ["context.ip"]
    old = AttributeProtector({"k1": KEY_1}, "k1").protect(ATTRIBUTES)
    assert protector.reveal(old[0], "k1") == ATTRIBUTES


def test_keys_from_environment() -> None:
    """POLICY_ENGINE_AUDIT_KEYS / _ACTIVE_KEY / _HASH_KEY configure the protector."""
    env = {"POLICY_ENGINE_AUDIT_KEYS": f"k1:{b64(KEY_1)},k2:{b64(KEY_2)}",
           "POLICY_ENGINE_AUDIT_ACTIVE_KEY": "k2", "POLICY_ENGINE_AUDIT_HASH_KEY": b64(HASH_KEY)}
    protector = AttributeProtector.from_env(env, hashed=["subject.email"])
    assert protector.active_key_id == "k2"
    with pytest.raises(AttributeKeyError):
        AttributeProtector.from_env({})
    with pytest.raises(AttributeKeyError):
        AttributeProtector.from_env({"POLICY_ENGINE_AUDIT_KEYS": "k1:not base64!"})


def test_generated_keys_are_usable() -> None:
    """generate_key gives a fresh 256-bit key in the format the file and environment expect."""
    key = AttributeProtector.generate_key()
    assert len(base64.b64decode(key)) == 32 and key != AttributeProtector.generate_key()


class TestProtectMany:
    def protector(self) -> AttributeProtector:
        return AttributeProtector({"k1": KEY_1}, "k1", hashed=["subject.email", "context.ip"], hash_key=HASH_KEY)

    def test_same_plaintext_and_hashes_as_redact_then_protect(self) -> None:
        """protect_many stores what redact + protect store, entry by entry, shared objects included."""
        from types import MappingProxyType

        from policy_engine.audit import redact

        protector = self.protector()
        subject = MappingProxyType({"email": "a@x.io", "mfa": True, "token": "secret"})
        batch = [
            {"subject": subject, "actor": {}, "resource": {"n": n, "note": "Bearer abc"}, "context": {"ip": f"10.0.0.{n}"}}
            for n in range(3)
        ] + [{"subject": subject}, {}, {"authorization": {"x": 1}, "resource": MappingProxyType({"k": [1, {"b": 2}]})}]
        results = protector.protect_many(batch)
        assert len(results) == len(batch)
        for attributes, (ciphertext, key_id, hashed) in zip(batch, results, strict=True):
            expected_ciphertext, _, expected_hashed = protector.protect(redact(attributes))
            assert protector.reveal(ciphertext, key_id) == protector.reveal(expected_ciphertext, "k1")
            assert json.loads(hashed) == expected_hashed
        assert results[0][0] != results[1][0]

    def test_equal_attributes_never_share_a_ciphertext(self) -> None:
        """Every entry gets its own nonce: identical attributes give different ciphertexts."""
        shared = {"subject": {"mfa": True}}
        ciphertexts = [c for c, _, _ in self.protector().protect_many([shared] * 50)]
        assert len(set(ciphertexts)) == 50
        nonces = {base64.b64decode(c.partition(":")[2])[:12] for c in ciphertexts}
        assert len(nonces) == 50

    def test_unencodable_attributes_become_empty_and_are_reported(self) -> None:
        """An entry whose attributes are not a mapping is stored as {} and reported; the others are kept."""
        errors: list[int] = []
        protector = self.protector()
        results = protector.protect_many([{"subject": ["not", "a", "mapping"]}, {"subject": {"mfa": False}}],
                                         on_error=lambda index, exc: errors.append(index))
        assert errors == [0]
        assert protector.reveal(results[0][0], "k1") == {}
        assert protector.reveal(results[1][0], "k1") == {"subject": {"mfa": False}}


class TestProtectGroup:
    def protector(self) -> AttributeProtector:
        return AttributeProtector({"k1": KEY_1}, "k1", hashed=["subject.email", "context.ip"], hash_key=HASH_KEY)

    def test_each_item_reads_back_as_redact_then_protect_would_store_it(self) -> None:
        """One ciphertext for the group; each item's attributes and hashes equal a single entry's."""
        from types import MappingProxyType

        from policy_engine.audit import redact

        protector = self.protector()
        subject = MappingProxyType({"email": "a@x.io", "mfa": True, "token": "secret"})
        # Equal-looking values of different types must not share an encoding (1 == True == 1.0).
        resources = [{"n": 1}, {"n": True}, {"n": 1.0}, {"n": 1}, {"n": [1, {"b": 2}]}, {}, {"password": "x"}]
        shared = {"subject": subject, "actor": {}}
        items = [{"resource": resource, "context": {"ip": f"10.0.0.{n}"}} for n, resource in enumerate(resources)]
        group = [{**shared, **item} for item in items]
        ciphertext, key_id, shared_hashed, item_hashed = protector.protect_group(items, shared)
        revealed = protector.reveal(ciphertext, key_id)
        assert json.loads(shared_hashed) == {"subject.email": protector.hash_value("a@x.io")}
        for index, attributes in enumerate(group):
            expected_ciphertext, _, expected_hashed = protector.protect(redact(attributes))
            assert AttributeProtector.item_attributes(revealed, index) == protector.reveal(expected_ciphertext, "k1")
            assert {**json.loads(shared_hashed), **json.loads(item_hashed[index])} == expected_hashed
        assert json.dumps(revealed["items"][1]["resource"]) == '{"n": true}'
        assert "secret" not in json.dumps(revealed) and "a@x.io" not in json.dumps(revealed)

    def test_items_sharing_one_attributes_object(self) -> None:
        """Items handed over with one shared attributes object read back alike, and when that
        object does not encode, every item is reported, not only the first."""
        good = {"resource": {"level": 2}, "context": {"ip": "10.0.0.1"}}
        bad = {"resource": ["not", "a", "mapping"]}
        items = [good, bad, good, bad, {"resource": {"level": 2}, "context": {"ip": "10.0.0.1"}}]
        errors: list[int] = []
        protector = self.protector()
        ciphertext, key_id, _, item_hashed = protector.protect_group(
            items, {"subject": {}}, on_error=lambda i, exc: errors.append(i))
        revealed = protector.reveal(ciphertext, key_id)
        assert errors == [1, 3]
        readings = [AttributeProtector.item_attributes(revealed, i) for i in range(5)]
        assert readings[0] == readings[2] == readings[4] == {"subject": {}, "resource": {"level": 2}, "context": {}}
        assert readings[1] == readings[3] == {"subject": {}}
        assert item_hashed[0] == item_hashed[2] == item_hashed[4] != "" and item_hashed[1] == item_hashed[3] == ""
        # All items one object (a FilterAllowed's candidates without attributes): alike, and each reported.
        ciphertext, key_id, _, item_hashed = protector.protect_group([good] * 3, {"subject": {}})
        revealed = protector.reveal(ciphertext, key_id)
        assert [AttributeProtector.item_attributes(revealed, i) for i in range(3)] == [readings[0]] * 3
        assert item_hashed == [json.dumps({"context.ip": protector.hash_value("10.0.0.1")})] * 3
        errors.clear()
        ciphertext, key_id, _, item_hashed = protector.protect_group(
            [bad] * 3, {"subject": {}}, on_error=lambda i, exc: errors.append(i))
        assert errors == [0, 1, 2] and item_hashed == [""] * 3
        assert [AttributeProtector.item_attributes(protector.reveal(ciphertext, key_id), i) for i in range(3)] == [
            {"subject": {}}] * 3

    def test_a_group_whose_items_have_no_attributes_of_their_own_seals_only_the_shared_ones(self) -> None:
        """PlainItems: the ciphertext holds the shared parties only, and every item reads back with
        empty resource and context attributes, as items handed over with them empty do."""
        protector = self.protector()
        shared = {"subject": {"email": "a@x.io", "mfa": True}, "actor": {}}
        ciphertext, key_id, shared_hashed, item_hashed = protector.protect_group((), shared)
        revealed = protector.reveal(ciphertext, key_id)
        assert revealed == {"subject": {"mfa": True}, "actor": {}} and item_hashed == []
        assert json.loads(shared_hashed) == {"subject.email": protector.hash_value("a@x.io")}
        empty = {"resource": {}, "context": {}}
        listed, key_id, _, _ = protector.protect_group([empty] * 3, shared)
        for index in (0, 2, 57):
            assert AttributeProtector.item_attributes(revealed, index) == {
                "subject": {"mfa": True}, "actor": {}, "resource": {}, "context": {}}
        assert AttributeProtector.item_attributes(protector.reveal(listed, key_id), 2) == (
            AttributeProtector.item_attributes(revealed, 2))

    def test_an_item_that_does_not_encode_is_empty_and_reported(self) -> None:
        """An item's own attributes that cannot be encoded become {}; the other items are kept."""
        errors: list[int] = []
        items = [{"resource": {"n": n}} for n in range(3)]
        items[1] = {"resource": ["not", "a", "mapping"]}
        protector = self.protector()
        ciphertext, key_id, _, _ = protector.protect_group(
            items, {"subject": {"mfa": True}}, on_error=lambda i, exc: errors.append(i))
        revealed = protector.reveal(ciphertext, key_id)
        assert errors == [1]
        assert [AttributeProtector.item_attributes(revealed, i) for i in range(3)] == [
            {"subject": {"mfa": True}, "resource": {"n": 0}},
            {"subject": {"mfa": True}},
            {"subject": {"mfa": True}, "resource": {"n": 2}},
        ]
