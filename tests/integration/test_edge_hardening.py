"""The hardened edge against real servers: connection floods, a taken port, the default
start's admin credential, health Watch/List, and failures that must not leak or mislead."""

from __future__ import annotations

import getpass
import io
import logging
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from policy_engine.bundle import load_bundle
from policy_engine.cli import policyctl, serve
from policy_engine.client import SyncClient
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.config import ConnectionSettings, EdgeSettings, RateSettings
from policy_engine.metrics import METRICS
from policy_engine.server.app import AddressInUseError
from policy_engine.store import open_database
from policy_engine.store.db import upgrade
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import admin_pb2, admin_pb2_grpc, authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.support.processes import BIN, admin_token, admin_token_file, free_port, serve_process, wait_serving
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
CHECK = "/policy_engine.v1.AuthorizationService/Check"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def check_request(**overrides: object) -> authorization_pb2.CheckRequest:
    fields: dict[str, object] = dict(
        tenant="acme",
        subject=types_pb2.Entity(id="dave"),
        action="invoke",
        resource=types_pb2.Resource(kind="tool", id="web_search"),
    )
    fields.update(overrides)
    return authorization_pb2.CheckRequest(**fields)  # type: ignore[arg-type]


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value.code(), caught.value.details() or ""


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(0.05)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def bundle_files() -> BundleFiles:
    bundle = load_bundle(ROOT / "policies" / "default")
    rules = bundle.policy_text + "p, viewer, *, tool:pushed_by_anyone, invoke, True, allow\n"
    return BundleFiles(bundle.model_text, rules, dict(bundle.tests), bundle.schema_text)


# ---- 20.1 connections ------------------------------------------------------------------------


class TestConnections:
    def test_connection_flood_is_capped_and_a_connected_client_keeps_its_answers(self) -> None:
        """Beyond the cap, new connections are closed at once; the client already connected still gets its answers."""
        edge = EdgeSettings(connections=ConnectionSettings(max=20, handshake_timeout_seconds=30))
        with running_server(ROOT / "policies", edge=edge) as server, SyncClient(server.target) as client:
            assert client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed
            flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
            try:
                closed = [closed_by_server(s, 0.02) for s in flood]
                # 1 legitimate + 60 flood connections against a cap of 20: at least 41 go at once.
                assert sum(closed) >= 41
                for _ in range(20):
                    assert client.check(
                        tenant="acme", subject="dave", action="invoke", resource="tool:web_search"
                    ).allowed
            finally:
                for s in flood:
                    s.close()

    def test_idle_and_silent_connections_are_closed(self) -> None:
        """A connection that never finishes its handshake, and one idle after it, are both closed by the server."""
        edge = EdgeSettings(connections=ConnectionSettings(idle_timeout_seconds=1, handshake_timeout_seconds=1))
        with running_server(ROOT / "policies", edge=edge) as server:
            silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]
            idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]
            for s in idle:
                s.sendall(PREFACE)
            try:
                assert all(closed_by_server(s, 10) for s in silent + idle)
                with SyncClient(server.target) as client:  # a new client still gets in
                    assert client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed
            finally:
                for s in silent + idle:
                    s.close()

    def test_streams_per_connection_are_capped(self) -> None:
        """One connection holds at most max_streams calls at once: the fifth health Watch waits for a free stream."""
        edge = EdgeSettings(connections=ConnectionSettings(max_streams=4))
        with running_server(ROOT / "policies", edge=edge) as server, grpc.insecure_channel(server.target) as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = health_pb2_grpc.HealthStub(channel)
            first: list[threading.Event] = [threading.Event() for _ in range(5)]
            calls = []
            for event in first:
                call = stub.Watch(health_pb2.HealthCheckRequest())
                calls.append(call)
                threading.Thread(target=lambda c=call, e=event: (next(c, None), e.set()), daemon=True).start()
                time.sleep(0.05)
            try:
                assert all(event.wait(10) for event in first[:4])
                assert not first[4].wait(1.0)
                calls[0].cancel()  # a stream frees up: the waiting Watch gets its answer
                assert first[4].wait(10)
            finally:
                for call in calls:
                    call.cancel()

    def test_calls_started_per_connection_are_rate_limited_without_harming_other_connections(self) -> None:
        """A connection starting calls beyond its rate gets RESOURCE_EXHAUSTED; another connection is answered."""
        edge = EdgeSettings(connections=ConnectionSettings(calls=RateSettings(rate=20, burst=20)))
        with running_server(ROOT / "policies", edge=edge) as server:
            own = [("grpc.use_local_subchannel_pool", 1)]  # two channels, two connections
            with grpc.insecure_channel(server.target, options=own) as abusive, grpc.insecure_channel(
                server.target, options=own
            ) as legit:
                stub = authorization_pb2_grpc.AuthorizationServiceStub(abusive)
                futures = [stub.Check.future(check_request(), timeout=10) for _ in range(200)]
                codes = []
                for future in futures:
                    try:
                        future.result()
                        codes.append(grpc.StatusCode.OK)
                    except grpc.RpcError as exc:
                        codes.append(exc.code())
                assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 100
                assert authorization_pb2_grpc.AuthorizationServiceStub(legit).Check(check_request(), timeout=10).allowed

    @pytest.mark.parametrize(
        ("method", "request_type", "size"),
        [
            (CHECK, authorization_pb2.CheckRequest, 300 * 1024),
            ("/policy_engine.v1.AuthorizationService/BatchCheck", authorization_pb2.BatchCheckRequest, 3 * 1024 * 1024),
            ("/policy_engine.v1.PolicyAdminService/ListVersions", admin_pb2.ListVersionsRequest, 100 * 1024),
            ("/policy_engine.v1.PolicyAdminService/ActivateVersion", admin_pb2.ActivateVersionRequest, 100 * 1024),
        ],
    )
    def test_oversized_requests_are_refused_unparsed_before_authentication(
        self, method: str, request_type: type, size: int
    ) -> None:
        """A body larger than its method needs is RESOURCE_EXHAUSTED, even from an anonymous caller of an admin method."""
        with running_server(ROOT / "policies") as server, grpc.insecure_channel(
            server.target, options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]
        ) as channel:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            body = request_type(**{_string_field(request_type): "x" * size}).SerializeToString()
            code, details = code_of(call, body, timeout=10)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert method.rsplit("/", 1)[-1] in details


def _string_field(request_type: type) -> str:
    return "tenant" if "tenant" in request_type.DESCRIPTOR.fields_by_name else "policy_set"


# ---- 20.2 one server per port ----------------------------------------------------------------


class TestTakenPort:
    def test_a_second_server_on_the_same_port_does_not_start(self) -> None:
        """A second in-process server on a port in use fails with AddressInUseError instead of sharing it."""
        with running_server(ROOT / "policies") as first:
            with pytest.raises(AddressInUseError, match="in use"), running_server(ROOT / "policies", port=first.port):
                pass
            with SyncClient(first.target) as client:
                assert client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed

    @pytest.mark.parametrize("workers", [None, "2"])
    def test_serve_on_a_taken_port_exits_non_zero_with_a_clear_message(self, tmp_path: Path, workers: str | None) -> None:
        """`policy-engine serve` (with or without --workers) on a port another server holds exits 1 saying so."""
        with serve_process(f"sqlite:///{tmp_path / 'a.db'}", ROOT / "policies", tmp_path) as (target, _):
            args = [str(BIN / "policy-engine"), "serve", "--listen", target, "--db", f"sqlite:///{tmp_path / 'b.db'}"]
            args += ["--workers", workers] if workers else []
            environment = {**os.environ, "POLICY_ENGINE_ADMIN_TOKEN_FILE": str(admin_token_file(tmp_path))}
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=environment, check=False
            )
            assert result.returncode == 1
            assert f"cannot listen on {target}" in result.stderr
            assert "in use" in result.stderr
            wait_serving(target)  # the first one is untouched


# ---- 20.3 the default start ------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`policy-engine serve` as the README starts it: no --config."""
    workdir = tmp_path_factory.mktemp("default-start")
    with serve_process(f"sqlite:///{workdir / 'pe.db'}", ROOT / "policies", workdir) as (target, _):
        yield target, workdir


class TestDefaultStart:
    def test_an_anonymous_local_process_cannot_push_activate_or_read(self, default_server: tuple[str, Path]) -> None:
        """Without the credential, PushVersion(activate=true), ActivateVersion, Rollback and reads are refused; Check answers."""
        target, _ = default_server
        with grpc.insecure_channel(target) as channel:
            admin = admin_pb2_grpc.PolicyAdminServiceStub(channel)
            files = bundle_files()
            push = admin_pb2.PushVersionRequest(
                policy_set="default",
                content=admin_pb2.BundleContent(
                    model=files.model, policy=files.policy, tests=dict(files.tests), schema=files.schema
                ),
                message="takeover",
                author="someone-else",
                activate=True,
            )
            for call, request in (
                (admin.PushVersion, push),
                (admin.ActivateVersion, admin_pb2.ActivateVersionRequest(policy_set="default", number=1)),
                (admin.Rollback, admin_pb2.RollbackRequest(policy_set="default")),
                (admin.ListVersions, admin_pb2.ListVersionsRequest(policy_set="default")),
                (admin.QueryDecisions, admin_pb2.QueryDecisionsRequest()),
            ):
                code, _ = code_of(call, request, timeout=10)
                assert code == grpc.StatusCode.PERMISSION_DENIED
            forged = (("authorization", "Bearer " + "A" * 43),)
            code, _ = code_of(admin.PushVersion, push, metadata=forged, timeout=10)
            assert code == grpc.StatusCode.UNAUTHENTICATED
            response = authorization_pb2_grpc.AuthorizationServiceStub(channel).Check(check_request(), timeout=10)
            assert response.allowed and response.policy_version == 1

    def test_the_credential_is_private_and_the_local_admin_is_the_author(self, default_server: tuple[str, Path]) -> None:
        """The credential file is 0600; with it a push works and is recorded under the local admin, not the claimed author."""
        target, workdir = default_server
        mode = stat.S_IMODE(admin_token_file(workdir).stat().st_mode)
        assert mode == 0o600
        with AdminClient(target, token=admin_token(workdir)) as admin:
            outcome = admin.push("default", bundle_files(), message="by the admin", author="mallory")
        assert outcome.version.author == f"local-admin:{getpass.getuser()}"

    def test_policyctl_picks_up_the_credential_for_a_loopback_server(
        self, default_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """policyctl reads the credential the server created; pointed elsewhere, it has none and is refused (exit 2)."""
        target, workdir = default_server
        monkeypatch.setenv("POLICY_ENGINE_ADMIN_TOKEN_FILE", str(admin_token_file(workdir)))
        monkeypatch.delenv("POLICY_ENGINE_TOKEN", raising=False)
        out, err = io.StringIO(), io.StringIO()
        assert policyctl.run(["versions", "--server", target], out, err) == 0, err.getvalue()
        monkeypatch.setenv("POLICY_ENGINE_ADMIN_TOKEN_FILE", str(workdir / "nowhere"))
        out, err = io.StringIO(), io.StringIO()
        assert policyctl.run(["versions", "--server", target], out, err) == 2
        assert "PERMISSION_DENIED" in err.getvalue()
        assert admin_token(workdir) not in out.getvalue() + err.getvalue()

    def test_a_credential_file_others_can_read_stops_the_start(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A credential file readable by group or others is refused at start with a message naming it."""
        token_file = tmp_path / "admin-token"
        token_file.write_text("t" * 43 + "\n")
        token_file.chmod(0o644)
        monkeypatch.setenv("POLICY_ENGINE_ADMIN_TOKEN_FILE", str(token_file))
        out, err = io.StringIO(), io.StringIO()
        code = serve.run(
            ["serve", "--listen", f"127.0.0.1:{free_port()}", "--db", f"sqlite:///{tmp_path / 'pe.db'}",
             "--policies", str(ROOT / "policies"), "--log-format", "text"],
            out, err,
        )
        assert code == 1
        assert str(token_file) in err.getvalue() and "chmod 600" in err.getvalue()


# ---- 20.4 health -----------------------------------------------------------------------------


def test_health_watch_streams_serving_then_not_serving_and_list_answers() -> None:
    """A grpc health Watch gets SERVING, then NOT_SERVING when the server shuts down; List lists every service."""
    statuses: list[int] = []
    with running_server(ROOT / "policies") as server:
        channel = grpc.insecure_channel(server.target)
        stub = health_pb2_grpc.HealthStub(channel)
        listed = stub.List(health_pb2.HealthListRequest(), timeout=10)
        assert listed.statuses[""].status == health_pb2.HealthCheckResponse.SERVING
        assert listed.statuses["policy_engine.v1.AuthorizationService"].status == health_pb2.HealthCheckResponse.SERVING
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="policy_engine.v1.AuthorizationService"))
        first = threading.Event()

        def follow() -> None:
            try:
                for response in watch:
                    statuses.append(response.status)
                    first.set()
            except grpc.RpcError:
                pass

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        assert first.wait(10)
    follower.join(10)
    channel.close()
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses[1:]


# ---- 20.8 failures ---------------------------------------------------------------------------


class TestFailures:
    def test_a_request_whose_deadline_passed_is_not_decided_nor_logged(self, tmp_path: Path) -> None:
        """A Check that waited past its deadline (the server was paused) is neither decided nor logged as an allow."""
        with serve_process(f"sqlite:///{tmp_path / 'pe.db'}", ROOT / "policies", tmp_path) as (target, process):
            with SyncClient(target) as client:
                client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
                process.send_signal(signal.SIGSTOP)
                try:
                    outcome: dict[str, object] = {}

                    def late() -> None:
                        try:
                            client.check(
                                tenant="acme", subject="dave", action="invoke", resource="tool:web_search",
                                request_id="too-late", timeout=0.5,
                            )
                            outcome["answer"] = "decided"
                        except Exception as exc:  # noqa: BLE001 - inspected below
                            outcome["answer"] = exc

                    caller = threading.Thread(target=late)
                    caller.start()
                    time.sleep(1.5)
                finally:
                    process.send_signal(signal.SIGCONT)
                caller.join(10)
                client.check(
                    tenant="acme", subject="dave", action="invoke", resource="tool:web_search", request_id="in-time"
                )
            assert outcome["answer"] != "decided"
            with AdminClient(target, token=admin_token(tmp_path)) as admin:
                deadline = time.monotonic() + 15
                while not any(d.request_id == "in-time" for d in admin.decisions(limit=100)):
                    assert time.monotonic() < deadline, "the in-time decision never reached the log"
                    time.sleep(0.2)
                assert not any(d.request_id == "too-late" for d in admin.decisions(limit=100))

    def test_a_database_failure_during_a_push_is_unavailable(self, postgres_url: str) -> None:
        """PostgreSQL cut while a push waits on a lock: the push answers UNAVAILABLE, and nothing is half-written."""
        proxy = TcpProxy(("127.0.0.1", 5432))
        proxy.start()
        url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        direct = sqlalchemy.create_engine(postgres_url)
        try:
            with running_server(ROOT / "policies", db_url=url) as server, AdminClient(server.target, token=server.admin_token) as admin:
                result: dict[str, object] = {}
                with direct.connect() as locker:
                    locker.exec_driver_sql("BEGIN")
                    locker.exec_driver_sql("LOCK TABLE policy_versions IN ACCESS EXCLUSIVE MODE")

                    def push() -> None:
                        try:
                            admin.push("default", bundle_files(), message="blocked", author="x")
                            result["code"] = grpc.StatusCode.OK
                        except grpc.RpcError as exc:
                            result["code"] = exc.code()

                    pusher = threading.Thread(target=push)
                    pusher.start()
                    time.sleep(1.0)  # the push now waits on the lock, mid-transaction
                    proxy.stop()
                    pusher.join(30)
                    locker.exec_driver_sql("ROLLBACK")
                assert result["code"] == grpc.StatusCode.UNAVAILABLE
                proxy.start()
                deadline = time.monotonic() + 20
                while True:
                    try:
                        assert [v.number for v in admin.versions("default")] == [1]
                        break
                    except grpc.RpcError:
                        assert time.monotonic() < deadline
                        time.sleep(0.3)
        finally:
            proxy.close()
            direct.dispose()

    def test_refused_admin_calls_leave_a_log_line_and_a_metric(self, caplog: pytest.LogCaptureFixture) -> None:
        """An anonymous push and a forged credential are logged (one line each) and counted as security events."""
        refused = METRICS.security_events.labels(kind="refused_admin_call")
        before = refused._value.get()
        with running_server(ROOT / "policies") as server, grpc.insecure_channel(server.target) as channel:
            admin = admin_pb2_grpc.PolicyAdminServiceStub(channel)
            with caplog.at_level(logging.WARNING, logger="policy_engine"):
                code_of(admin.ActivateVersion, admin_pb2.ActivateVersionRequest(policy_set="default", number=1), timeout=10)
                time.sleep(1.1)  # the refusal log keeps one line per second
                code_of(
                    admin.ActivateVersion,
                    admin_pb2.ActivateVersionRequest(policy_set="default", number=1),
                    metadata=(("authorization", "Bearer forged"),),
                    timeout=10,
                )
        lines = [r.getMessage() for r in caplog.records if "refused admin call" in r.getMessage()]
        assert len(lines) == 2
        assert "ActivateVersion" in lines[0] and "PERMISSION_DENIED" in lines[0]
        assert "UNAUTHENTICATED" in lines[1] and "forged" not in lines[1].split("UNAUTHENTICATED", 1)[1].split(":")[0]
        assert refused._value.get() - before == 2

    def test_ten_thousand_undecodable_bodies_give_bounded_log_output(self, caplog: pytest.LogCaptureFixture) -> None:
        """10,000 bodies that are not protobuf: each INVALID_ARGUMENT, a few log lines and no traceback, all counted."""
        counter = METRICS.undecodable.labels(reason="malformed")
        before = counter._value.get()
        with running_server(ROOT / "policies") as server, grpc.insecure_channel(server.target) as channel:
            call = channel.unary_unary(CHECK, request_serializer=None, response_deserializer=None)
            started = time.monotonic()
            with caplog.at_level(logging.INFO):
                codes: dict[grpc.StatusCode, int] = {}
                for start in range(0, 10_000, 200):
                    futures = [call.future(b"\xff\xff\xff\xff" + bytes([i % 256]), timeout=30) for i in range(start, start + 200)]
                    for future in futures:
                        code = future.exception().code() if future.exception() else grpc.StatusCode.OK
                        codes[code] = codes.get(code, 0) + 1
            elapsed = time.monotonic() - started
        assert codes == {grpc.StatusCode.INVALID_ARGUMENT: 10_000}
        lines = [r for r in caplog.records if "undecodable" in r.getMessage()]
        assert 1 <= len(lines) <= elapsed + 2
        assert not any(r.exc_info for r in caplog.records)
        assert sum(len(r.getMessage()) for r in caplog.records) < 20_000
        assert counter._value.get() - before == 10_000

    @pytest.mark.parametrize("where", ["subject.attributes", "actor.attributes", "resource.attributes", "context"])
    def test_deeply_nested_structs_are_invalid_argument_naming_the_field(self, where: str) -> None:
        """A Struct nested 50 or more levels deep answers INVALID_ARGUMENT naming the field, not UNKNOWN."""
        deep = struct_pb2.Struct()
        level = deep
        for _ in range(60):
            level = level.fields["x"].struct_value
        request = check_request(actor=types_pb2.Entity(id="agent:helper"))
        if where == "context":
            request.context.CopyFrom(deep)
        else:
            getattr(request, where.split(".")[0]).attributes.CopyFrom(deep)
        with running_server(ROOT / "policies") as server, grpc.insecure_channel(server.target) as channel:
            code, details = code_of(authorization_pb2_grpc.AuthorizationServiceStub(channel).Check, request, timeout=10)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith(f"{where}:")

    def test_an_old_schema_hint_and_an_unparseable_url_never_show_the_password(
        self, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Starting on an old schema prints the --db URL with its password hidden; so does a URL that does not parse."""
        engine = open_database(postgres_url)
        upgrade(engine, "0001")
        engine.dispose()
        monkeypatch.setenv("POLICY_ENGINE_ADMIN_TOKEN_FILE", str(tmp_path / "admin-token"))
        with_password = postgres_url.replace("postgres@", "postgres:hunter2secret@")
        printed = []
        for url in (with_password, with_password.replace(":5432/", ":notaport/")):
            out, err = io.StringIO(), io.StringIO()
            code = serve.run(
                ["serve", "--listen", f"127.0.0.1:{free_port()}", "--db", url, "--policies", str(ROOT / "policies"),
                 "--log-format", "text"],
                out, err,
            )
            assert code == 1
            printed.append(out.getvalue() + err.getvalue())
        assert all("hunter2secret" not in text for text in printed)
        assert "policy-engine db upgrade --db postgresql+psycopg://postgres:***@" in printed[0]
        assert "does not parse" in printed[1]


def test_health_watchers_are_bounded() -> None:
    """Unauthenticated health Watches beyond the bound are RESOURCE_EXHAUSTED; Checks still answer."""
    from policy_engine.server.health import MAX_WATCHERS

    with running_server(ROOT / "policies") as server:
        channels = [grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(3)]
        watches = []
        try:
            for index in range(MAX_WATCHERS):
                watch = health_pb2_grpc.HealthStub(channels[index % 3]).Watch(health_pb2.HealthCheckRequest())
                next(watch)
                watches.append(watch)
            extra = health_pb2_grpc.HealthStub(channels[0]).Watch(health_pb2.HealthCheckRequest())
            with pytest.raises(grpc.RpcError) as caught:
                next(extra)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            with SyncClient(server.target) as client:
                assert client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed
        finally:
            for watch in watches:
                watch.cancel()
            for channel in channels:
                channel.close()


def test_an_undecodable_message_in_a_bidi_stream_is_invalid_argument() -> None:
    """A reflection stream whose message does not decode answers INVALID_ARGUMENT, not INTERNAL with a traceback."""
    with running_server(ROOT / "policies") as server, grpc.insecure_channel(server.target) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=None,
            response_deserializer=None,
        )
        responses = call(iter([b"\xff\xff\xff\xff"]), metadata=(("authorization", f"Bearer {server.admin_token}"),))
        with pytest.raises(grpc.RpcError) as caught:
            next(responses)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_check_whose_deadline_passes_while_waiting_for_log_room_is_not_decided(tmp_path: Path) -> None:
    """The decision log is full (its database locked): a Check whose deadline passes while it waits is
    DEADLINE_EXCEEDED and never logged, while requests that could wait are answered and logged."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    from policy_engine.config import AuditSettings
    from policy_engine.store.decision_log import DecisionLogRepository

    db_path = tmp_path / "log.db"
    url = f"sqlite:///{db_path}"
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer="thread", queue_size=50, max_wait_seconds=30)
    batch = authorization_pb2.BatchCheckRequest(
        tenant="acme",
        subject=types_pb2.Entity(id="carol"),
        items=[
            authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id="web_search"))
            for _ in range(40)
        ],
    )
    with running_server(ROOT / "policies", db_url=url, audit=audit) as server, grpc.insecure_channel(server.target) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        stub.Check(check_request(), timeout=10)
        lock = sqlite3.connect(db_path, isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            with ThreadPoolExecutor(3) as pool:
                waiting = [pool.submit(stub.BatchCheck, batch, timeout=60) for _ in range(3)]
                time.sleep(1.0)  # the queue is full now: these wait for room
                code, _ = code_of(stub.Check, check_request(request_id="too-late"), timeout=0.5)
                lock.execute("ROLLBACK")
                assert all(len(f.result().results) == 40 for f in waiting)
        finally:
            lock.close()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    engine = open_database(url)
    logged = DecisionLogRepository(engine).query(limit=1000)
    engine.dispose()
    assert len(logged) == 1 + 3 * 40
    assert not any(d.request_id == "too-late" for d in logged)
