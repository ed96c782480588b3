"""datadrill's TCP fault proxy against real sockets on 127.0.0.1, driven through toxiproxy-python.

Every test measures the effect of one fault on a local echo server, so a toxic that does
nothing fails. All traffic stays on loopback; sends and reads are bounded in count and time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import toxiproxy
import toxiproxy.api
import toxiproxy.exceptions

from datadrill.netfaults import (
    FaultProxyError,
    FaultProxyServer,
    FaultProxyUnreachable,
    ProxyAlreadyExists,
    ProxyInfo,
    ProxyNotFound,
    ToxicAlreadyExists,
    ToxicNotFound,
    ToxiproxyAdmin,
)

pytestmark = pytest.mark.integration

REMOTE = "10.1.2.3"  # a private address nothing here may ever be sent to
IO_TIMEOUT_S = 5.0


# --------------------------------------------------------------------------- helpers


class EchoServer:
    """A threaded TCP echo server on 127.0.0.1 that closes everything it opened on stop."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="echo-accept", daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed by stop()
            with self._lock:
                self._conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn,), name="echo-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)  # echo the half-close too, so slow_close is measurable
        except OSError:
            return  # the proxy reset or closed us: that is what several tests do on purpose

    def stop(self) -> None:
        # On Linux only shutdown wakes a thread blocked in accept/recv; close alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def recv_until_eof(sock: socket.socket, *, limit: int = 1_000_000) -> bytes:
    data = bytearray()
    while len(data) <= limit:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
    raise AssertionError(f"more than {limit} bytes without EOF")


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def api(url: str, method: str, path: str, body: object = None, *, agent: str = "test") -> tuple[int, object]:
    """A raw API call, for status codes and bodies toxiproxy-python hides."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"User-Agent": agent})
    try:
        with urllib.request.urlopen(request, timeout=IO_TIMEOUT_S) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# toxiproxy-python keeps the server address in class attributes; point them at our server.
def use_toxiproxy_python(url: str) -> toxiproxy.Toxiproxy:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    client = toxiproxy.Toxiproxy()
    client.update_api_consumer(host, int(port))
    return client


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[FaultProxyServer]:
    with FaultProxyServer() as running:
        yield running


@pytest.fixture
def admin(server: FaultProxyServer) -> ToxiproxyAdmin:
    return ToxiproxyAdmin(server.url)


@pytest.fixture
def proxy(admin: ToxiproxyAdmin, echo: EchoServer, request: pytest.FixtureRequest) -> Iterator[ProxyInfo]:
    info = admin.create_proxy(request.node.name[:60], "127.0.0.1:0", f"127.0.0.1:{echo.port}")
    yield info
    admin.delete_proxy(info.name)


# --------------------------------------------------------------------------- the client library


def test_toxiproxy_python_drives_the_server(server: FaultProxyServer, echo: EchoServer) -> None:
    client = use_toxiproxy_python(server.url)
    assert client.running()
    assert json.loads(client.version()) == {"version": "2.0.0+datadrill"}

    created = client.create(upstream=f"127.0.0.1:{echo.port}", name="py", listen="127.0.0.1:0")
    assert created.listen != "127.0.0.1:0"  # the bound port is reported back
    assert created.enabled is True
    with pytest.raises(toxiproxy.exceptions.ProxyExists):
        client.create(upstream=f"127.0.0.1:{echo.port}", name="py")
    assert set(client.proxies()) >= {"py"}
    proxy = client.get_proxy("py")
    assert proxy is not None and proxy.upstream == f"127.0.0.1:{echo.port}"

    proxy.add_toxic(type="latency", attributes={"latency": 150})
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic is not None
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1.0)
    assert toxic.attributes == {"latency": 150, "jitter": 0}
    port = int(created.listen.rsplit(":", 1)[1])
    with connect(port) as sock:
        assert round_trip(sock) >= 0.15
    assert proxy.destroy_toxic("latency_downstream") is True
    assert proxy.toxics() == {}

    with proxy.down():
        assert client.get_proxy("py").enabled is False
        with pytest.raises(ConnectionRefusedError):
            connect(port).close()
    assert client.get_proxy("py").enabled is True

    proxy.add_toxic(type="timeout", name="t", attributes={"timeout": 0})
    assert client.reset() is True
    assert proxy.toxics() == {}

    assert (
        client.populate([{"name": "py", "upstream": f"127.0.0.1:{echo.port}", "listen": created.listen}])
        == []
    )
    assert client.destroy(proxy) is True
    with pytest.raises(toxiproxy.exceptions.NotFound):
        proxy.destroy()
    assert "py" not in client.proxies()


def test_admin_typed_client(admin: ToxiproxyAdmin, echo: EchoServer) -> None:
    assert admin.version() == "2.0.0+datadrill"
    info = admin.create_proxy("typed", "127.0.0.1:0", f"127.0.0.1:{echo.port}")
    try:
        assert info.listen_host == "127.0.0.1" and info.listen_port > 0
        assert admin.proxies()["typed"].listen == info.listen
        with pytest.raises(ProxyAlreadyExists):
            admin.create_proxy("typed", "127.0.0.1:0", f"127.0.0.1:{echo.port}")
        name = admin.add_toxic("typed", "bandwidth", "upstream", 0.5, rate=100)
        assert name == "bandwidth_upstream"
        with pytest.raises(ToxicAlreadyExists):
            admin.add_toxic("typed", "bandwidth", "upstream", rate=100)
        (spec,) = admin.get_proxy("typed").toxics
        assert (spec.toxicity, spec.attribute("rate")) == (0.5, 100)
        admin.remove_toxic("typed", name)
        with pytest.raises(ToxicNotFound):
            admin.remove_toxic("typed", name)
        admin.disable("typed")
        assert admin.get_proxy("typed").enabled is False
        admin.enable("typed")
        assert admin.get_proxy("typed").listen == info.listen  # re-enabled on the same port
    finally:
        admin.delete_proxy("typed")
    with pytest.raises(ProxyNotFound):
        admin.delete_proxy("typed")


def test_admin_reports_an_unreachable_server() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    # The port was just released and nothing listens on it.
    with pytest.raises(FaultProxyUnreachable, match=re.escape(f"127.0.0.1:{port}")):
        ToxiproxyAdmin(f"http://127.0.0.1:{port}").proxies()


def test_api_status_codes_and_json_shapes(server: FaultProxyServer, echo: EchoServer) -> None:
    url = server.url
    assert api(url, "GET", "/version") == (200, {"version": "2.0.0+datadrill"})
    status, created = api(url, "POST", "/proxies", {"name": "raw", "upstream": f"127.0.0.1:{echo.port}"})
    assert status == 201
    assert isinstance(created, dict) and set(created) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert created["enabled"] is True and created["toxics"] == []
    assert api(url, "POST", "/proxies", {"name": "raw", "upstream": f"127.0.0.1:{echo.port}"})[0] == 409
    assert api(url, "POST", "/proxies", {"name": "nope"})[0] == 400

    status, toxic = api(
        url, "POST", "/proxies/raw/toxics", {"type": "slow_close", "attributes": {"delay": 10}}
    )
    assert (status, toxic) == (
        200,
        {
            "attributes": {"delay": 10},
            "name": "slow_close_downstream",
            "type": "slow_close",
            "stream": "downstream",
            "toxicity": 1.0,
        },
    )
    assert api(url, "POST", "/proxies/raw/toxics", {"type": "slow_close"})[0] == 409
    status, error = api(url, "POST", "/proxies/raw/toxics", {"type": "latency", "attributes": {"latncy": 5}})
    assert status == 400 and isinstance(error, dict) and error["status"] == 400
    assert "latncy" in str(error["error"]) and "latency, jitter" in str(error["error"])
    status, updated = api(
        url, "POST", "/proxies/raw/toxics/slow_close_downstream", {"attributes": {"delay": 20}}
    )
    assert status == 200 and isinstance(updated, dict) and updated["attributes"] == {"delay": 20}
    assert api(url, "GET", "/proxies/raw/toxics")[1] == [updated]
    assert api(url, "GET", "/proxies/raw")[1] == {**created, "toxics": [updated]}
    assert api(url, "DELETE", "/proxies/raw/toxics/slow_close_downstream") == (204, None)
    assert api(url, "GET", "/proxies/raw/toxics/slow_close_downstream")[0] == 404

    status, patched = api(url, "PATCH", "/proxies/raw", {"enabled": False})
    assert status == 200 and isinstance(patched, dict) and patched["enabled"] is False
    status, error = api(url, "GET", "/proxies/missing")
    assert status == 404 and isinstance(error, dict) and error["status"] == 404
    assert str(error["error"]).startswith("proxy 'missing' not found")
    assert api(url, "PUT", "/proxies")[0] == 405
    assert api(url, "GET", "/nothing-here")[0] == 404
    assert api(url, "GET", "/proxies", agent="Mozilla/5.0")[0] == 403
    assert api(url, "DELETE", "/proxies/raw") == (204, None)

    status, populated = api(url, "POST", "/populate", [{"name": "pop", "upstream": f"127.0.0.1:{echo.port}"}])
    assert (
        status == 201 and isinstance(populated, dict) and [p["name"] for p in populated["proxies"]] == ["pop"]
    )
    assert api(url, "DELETE", "/proxies/pop") == (204, None)


# --------------------------------------------------------------------------- toxics


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_adds_at_least_the_configured_delay(
    admin: ToxiproxyAdmin, proxy: ProxyInfo, stream: str
) -> None:
    with connect(proxy.listen_port) as sock:
        baseline = round_trip(sock)
        admin.add_toxic(proxy.name, "latency", stream, latency=250)
        delayed = round_trip(sock)  # the toxic applies to a connection that was already open
    assert baseline < 0.2
    assert 0.25 <= delayed < 1.5


def test_jitter_varies_the_delay(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "latency", latency=150, jitter=100)  # 50..250 ms per chunk
    with connect(proxy.listen_port) as sock:
        samples = [round_trip(sock) for _ in range(8)]
    assert min(samples) >= 0.045
    assert max(samples) < 1.0
    # 8 uniform draws over 200 ms all inside 40 ms of each other: p < 1e-4.
    assert max(samples) - min(samples) >= 0.04, samples


def test_toxicity_zero_never_applies(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "latency", toxicity=0.0, latency=1000)
    with connect(proxy.listen_port) as sock:
        assert round_trip(sock) < 0.5


def test_bandwidth_limits_throughput(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    payload = os.urandom(150_000)

    def timed_echo() -> float:
        with connect(proxy.listen_port) as sock:
            sender = threading.Thread(target=sock.sendall, args=(payload,))
            start = time.monotonic()
            sender.start()
            received = recv_exactly(sock, len(payload))
            elapsed = time.monotonic() - start
            sender.join(timeout=IO_TIMEOUT_S)
        assert received == payload
        return elapsed

    assert timed_echo() < 1.0
    admin.add_toxic(proxy.name, "bandwidth", rate=50)  # 50 KB/s: 150 kB needs 3 s
    assert 2.7 <= timed_echo() < 5.0


def test_timeout_drops_data_then_closes(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "timeout", timeout=600)
    start = time.monotonic()
    with connect(proxy.listen_port) as sock:
        sock.sendall(b"ping")
        received = recv_until_eof(sock)
        elapsed = time.monotonic() - start
    assert received == b""
    assert 0.55 <= elapsed < 3.0


def test_timeout_zero_holds_the_connection_until_removed(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    name = admin.add_toxic(proxy.name, "timeout", timeout=0)
    with connect(proxy.listen_port) as sock:
        sock.sendall(b"ping")
        sock.settimeout(0.8)
        with pytest.raises(TimeoutError):
            sock.recv(16)  # neither data nor a close
        sock.settimeout(IO_TIMEOUT_S)
        # As upstream: removing it closes the connection, whose bytes were dropped.
        admin.remove_toxic(proxy.name, name)
        assert recv_until_eof(sock) == b""


def test_reset_peer_sends_a_tcp_reset(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "reset_peer", timeout=200)
    with connect(proxy.listen_port) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            recv_until_eof(sock)
        elapsed = time.monotonic() - start
    assert 0.18 <= elapsed < 3.0


def test_slow_close_delays_the_close(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    def time_to_close() -> float:
        with connect(proxy.listen_port) as sock:
            start = time.monotonic()
            sock.shutdown(socket.SHUT_WR)  # the echo server closes back; we time that close
            assert recv_until_eof(sock) == b""
            return time.monotonic() - start

    assert time_to_close() < 0.3
    admin.add_toxic(proxy.name, "slow_close", delay=800)
    assert 0.75 <= time_to_close() < 3.0


def test_limit_data_closes_after_the_limit(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "limit_data", bytes=1000)
    payload = os.urandom(5000)
    with connect(proxy.listen_port) as sock:
        sock.sendall(payload)
        received = recv_until_eof(sock)
    assert received == payload[:1000]


def test_slicer_cuts_and_spaces_the_data(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "slicer", average_size=100, delay=20_000)  # 10 slices, 20 ms apart
    payload = os.urandom(1000)
    with connect(proxy.listen_port) as sock:
        start = time.monotonic()
        sock.sendall(payload)
        received = recv_exactly(sock, len(payload))
        elapsed = time.monotonic() - start
    assert received == payload
    assert 0.17 <= elapsed < 2.0


def test_disabled_proxy_refuses_and_closes_then_recovers(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    with connect(proxy.listen_port) as sock:
        round_trip(sock)
        admin.disable(proxy.name)
        with contextlib.suppress(ConnectionResetError):  # FIN or RST: either way it is gone
            assert recv_until_eof(sock) == b""
    with pytest.raises(ConnectionRefusedError):
        connect(proxy.listen_port).close()
    admin.enable(proxy.name)
    with connect(proxy.listen_port) as sock:
        assert round_trip(sock) < 0.5


def test_reset_enables_proxies_and_clears_toxics(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    admin.add_toxic(proxy.name, "latency", latency=1000)
    admin.add_toxic(proxy.name, "limit_data", "upstream", bytes=1)
    admin.disable(proxy.name)
    admin.reset()
    info = admin.get_proxy(proxy.name)
    assert info.enabled is True and info.toxics == ()
    with connect(proxy.listen_port) as sock:
        assert round_trip(sock, b"x" * 100) < 0.5


def test_removing_a_toxic_restores_a_live_connection(admin: ToxiproxyAdmin, proxy: ProxyInfo) -> None:
    with connect(proxy.listen_port) as sock:
        name = admin.add_toxic(proxy.name, "latency", latency=300)
        assert round_trip(sock) >= 0.3
        admin.remove_toxic(proxy.name, name)
        assert round_trip(sock) < 0.2


# --------------------------------------------------------------------------- blast radius

_connects: list[object] = []
_recording = threading.Event()
_hook_installed = False


def _record_connects(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.connect" and _recording.is_set():
        _connects.append(args[1])


@contextlib.contextmanager
def recorded_connects() -> Iterator[list[object]]:
    """Every socket.connect in this process (any thread) while inside, via an audit hook."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_record_connects)  # hooks cannot be removed; it records only when asked
        _hook_installed = True
    _connects.clear()
    _recording.set()
    try:
        yield _connects
    finally:
        _recording.clear()


def test_upstream_outside_loopback_is_refused_without_traffic(server: FaultProxyServer) -> None:
    client = use_toxiproxy_python(server.url)
    with recorded_connects() as connects:
        with pytest.raises(toxiproxy.exceptions.InvalidToxic) as refused:  # its name for any 400
            client.create(upstream=f"{REMOTE}:5432", name="remote", listen="127.0.0.1:0")
        with pytest.raises(FaultProxyError) as typed:
            ToxiproxyAdmin(server.url).create_proxy("remote", "127.0.0.1:0", f"{REMOTE}:5432")
    for message in (refused.value.args[0].decode(), str(typed.value)):
        assert REMOTE in message and "allow_hosts" in message and "--allow-host" in message
    assert typed.value.status == 400
    assert "remote" not in client.proxies()
    assert [address for address in connects if REMOTE in str(address)] == []


def test_listen_outside_loopback_is_refused(server: FaultProxyServer, echo: EchoServer) -> None:
    status, error = api(
        server.url, "POST", "/proxies", {"name": "wide", "listen": "0.0.0.0:0", "upstream": "127.0.0.1:1"}
    )
    assert status == 400 and isinstance(error, dict)
    assert "0.0.0.0" in str(error["error"]) and "allow_hosts" in str(error["error"])


def test_allow_listed_host_is_accepted(echo: EchoServer) -> None:
    with recorded_connects() as connects, FaultProxyServer(allow_hosts=[REMOTE]) as allowed:
        admin = ToxiproxyAdmin(allowed.url)
        info = admin.create_proxy("remote", "127.0.0.1:0", f"{REMOTE}:5432")  # nobody connects to it
        assert info.upstream == f"{REMOTE}:5432"
        admin.delete_proxy("remote")
    assert [address for address in connects if REMOTE in str(address)] == []


# --------------------------------------------------------------------------- lifecycle


def test_context_manager_stops_everything(echo: EchoServer) -> None:
    def own_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("datadrill-faultproxy")}

    before = own_threads()  # the module's server is still running
    with FaultProxyServer() as server:
        assert len(own_threads() - before) == 2  # the event loop and the API
        info = ToxiproxyAdmin(server.url).create_proxy("cm", "127.0.0.1:0", f"127.0.0.1:{echo.port}")
        open_conn = connect(info.listen_port)
        round_trip(open_conn)
    with open_conn, contextlib.suppress(ConnectionResetError):  # FIN or RST: either way it is gone
        assert recv_until_eof(open_conn) == b""
    assert own_threads() == before
    with pytest.raises(ConnectionRefusedError):
        connect(info.listen_port).close()


def test_standalone_process_serves_the_api_and_stops_on_sigterm(tmp_path: Path, echo: EchoServer) -> None:
    port_file = tmp_path / "api.port"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datadrill.netfaults",
            "--listen",
            "127.0.0.1:0",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "no port file after 15 s"
            time.sleep(0.05)
        admin = ToxiproxyAdmin(f"http://127.0.0.1:{int(port_file.read_text())}")
        info = admin.create_proxy("sub", "127.0.0.1:0", f"127.0.0.1:{echo.port}")
        with connect(info.listen_port) as sock:
            assert round_trip(sock, b"through the subprocess") < 1.0
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"SIGTERM" in stderr
    assert not port_file.exists()
