"""The real server's logs: one JSON object per line, request context bound, no secrets."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import grpc
import yaml

from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.support.credentials import AUDIENCE, ISSUER, SUBJECT_AUDIENCE, TokenFactory
from tests.support.processes import BIN, free_port, wait_serving

ROOT = Path(__file__).resolve().parents[2]


def test_logs_are_json_with_context_and_never_hold_tokens(tmp_path: Path) -> None:
    """At DEBUG, with valid and forged tokens in play, no token or authorization header reaches a log line."""
    factory = TokenFactory()
    jwks = factory.write_jwks(tmp_path / "jwks.json")
    config = {
        "auth": {
            "callers": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)},
            "subjects": {"issuer": ISSUER, "audience": SUBJECT_AUDIENCE, "jwks_file": str(jwks),
                         "attributes": {"mfa": {"claim": "amr", "contains": "mfa"}}},
        },
        "audit": {"spill_dir": str(tmp_path / "audit")},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [str(BIN / "policy-engine"), "serve", "--listen", target, "--db", f"sqlite:///{tmp_path}/pe.db",
         "--policies", str(ROOT / "policies"), "--config", str(tmp_path / "config.yaml"), "--log-level", "DEBUG"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    caller = factory.token(scope="authz:check")
    forged = factory.token("stranger")
    user = factory.token(aud=SUBJECT_AUDIENCE, sub="bob", tenant="acme", amr=["mfa"])
    try:
        wait_serving(target, process)
        with grpc.insecure_channel(target) as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            request = authorization_pb2.CheckRequest(
                tenant="acme", action="invoke", resource=types_pb2.Resource(kind="tool", id="shell_exec"),
                subject_token=user, request_id="req-42",
            )
            assert stub.Check(request, metadata=(("authorization", f"Bearer {caller}"),)).allowed
            for token in (forged, "garbage"):
                try:
                    stub.Check(request, metadata=(("authorization", f"Bearer {token}"),))
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    lines = [line for line in stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any(r.get("message", "").startswith("listening on") for r in records)
    decided = [r for r in records if r.get("message") == "decided"]
    assert decided and decided[0]["request_id"] == "req-42"
    assert (decided[0]["policy_set"], decided[0]["policy_version"]) == ("default", 1)
    for secret in (caller, forged, user, caller[:40], user.split(".")[1][:40], "Bearer"):
        assert secret not in stderr
