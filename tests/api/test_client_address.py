"""Who the client is: its connection's peer, unless the peer is a reverse proxy named in
CIM_API_TRUSTED_PROXIES, whose X-Forwarded-For then names it (read from the right, so what the
client itself put there counts for nothing). The failed-login limit counts that client (an IPv6
client by its /64), so no header can lock out another address or step round the limit; and a
valid key is let in even from an address that is locked out, so others' failures behind a shared
address (a NAT, a proxy that forwards nothing) lock out no key holder."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine
from uvicorn.config import LOGGING_CONFIG

from api.app import create_app
from api.edge import RealClient
from api.limits import FailureLimiter, client_key
from api.serve import ErrorsLoggedOnce
from cim.settings import ApiSettings, settings_problem
from grading import access
from tests.ops.serving import served_in_thread

README = Path(__file__).resolve().parents[2] / "README.md"
BAD = {"X-API-Key": "cim_k_00000000_guess"}
LIMIT = 3


@pytest.fixture(scope="module")
def engine(new_database: Callable[[], Engine]) -> Engine:
    return new_database()


@pytest.fixture(scope="module")
def admin(engine: Engine) -> dict[str, str]:
    _, key = access.create_key(engine, access.cli_actor(), "admin", "admin")
    return {"X-API-Key": key}


def _app(engine: Engine, **settings: Any) -> Any:
    return create_app(engine=engine, settings=ApiSettings(auth_failures=LIMIT, **settings))


def _fail(client: TestClient, forwarded: str | None = None) -> int:
    headers = {**BAD, **({"X-Forwarded-For": forwarded} if forwarded else {})}
    return client.get("/grading/rounds", headers=headers).status_code


def test_without_trusted_proxies_forwarded_headers_change_nothing(engine: Engine) -> None:
    app = _app(engine)
    local = TestClient(app, client=("127.0.0.1", 5000))
    # a new X-Forwarded-For each time does not make a new client: the limit holds ...
    codes = [_fail(local, f"198.51.100.{n}") for n in range(LIMIT + 1)]
    assert codes == [401] * LIMIT + [429]
    # ... and the addresses it named are not locked out
    victim = TestClient(app, client=("198.51.100.0", 5000))
    assert _fail(victim) == 401


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(engine: Engine) -> None:
    app = _app(engine, trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    proxy = TestClient(app, client=("127.0.0.1", 5000))
    # what the client sent is left of what the proxies appended: the first address from the
    # right that is not a trusted proxy is the client, whatever it claims
    chain = "192.0.2.77, 203.0.113.5, 10.1.2.3"
    assert [_fail(proxy, chain) for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert _fail(proxy, "203.0.113.5") == 429  # the same client, however it is forwarded
    assert _fail(proxy, "192.0.2.77") == 401  # the address it claimed is not locked out
    assert _fail(proxy, "203.0.113.6") == 401  # another client behind the same proxy
    assert _fail(proxy) == 401  # the proxy itself (nothing forwarded)
    # a peer that is not a trusted proxy is the client, whatever it forwards
    outsider = TestClient(app, client=("192.0.2.1", 5000))
    assert [_fail(outsider, "203.0.113.9") for _ in range(LIMIT + 1)][-1] == 429
    assert _fail(proxy, "203.0.113.9") == 401


def test_a_trusted_proxy_sets_the_scheme_others_do_not(engine: Engine) -> None:
    app = _app(engine, trusted_proxies=["127.0.0.1"])
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    links = TestClient(app, client=("127.0.0.1", 5000)).get("/", headers=https).json()["links"]
    assert links[0]["href"].startswith("https://")
    other = TestClient(app, client=("192.0.2.1", 5000)).get("/", headers=https).json()["links"]
    assert other[0]["href"].startswith("http://")


def test_a_valid_key_is_let_in_from_a_locked_out_address(
    engine: Engine, admin: dict[str, str]
) -> None:
    # ten people behind one NAT: one of them guesses, the others hold keys
    shared = TestClient(_app(engine), client=("192.0.2.50", 5000))
    assert [_fail(shared) for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert shared.get("/grading/rounds", headers=admin).status_code == 200
    bearer = {"Authorization": f"Bearer {admin['X-API-Key']}"}
    assert shared.get("/grading/rounds", headers=bearer).status_code == 200
    # while the address is locked out, anything but a valid key is 429, and not counted again
    assert _fail(shared) == 429
    assert shared.post("/grading/rounds", json={}).status_code == 429  # no key at all
    assert shared.get("/grading/rounds", headers={"X-API-Key": ""}).status_code == 429


def test_ipv6_clients_are_counted_by_their_64(engine: Engine) -> None:
    app = _app(engine)
    for n in range(LIMIT):  # a /64 holds 2^64 addresses: each new one is no new client
        assert _fail(TestClient(app, client=(f"2001:db8:0:7::{n + 1}", 5000))) == 401
    assert _fail(TestClient(app, client=("2001:db8:0:7:ffff::1", 5000))) == 429
    assert _fail(TestClient(app, client=("2001:db8:0:8::1", 5000))) == 401  # the next /64


def test_client_keys() -> None:
    assert client_key("203.0.113.5") == "203.0.113.5"
    assert client_key("::ffff:203.0.113.5") == "203.0.113.5"  # IPv4 mapped into IPv6
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("testclient") == "testclient"  # not an address: as it is
    limiter = FailureLimiter(limit=1, window=60)
    limiter.failed("2001:db8::1")
    with pytest.raises(Exception, match="too many"):
        limiter.check("2001:db8::2")


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        (["203.0.113.5"], "203.0.113.5"),
        (["1.1.1.1", "203.0.113.5", "10.0.0.2"], "203.0.113.5"),
        (["203.0.113.5:4711", "[2001:db8::1]:443"], "2001:db8::1"),
        (["garbage", "203.0.113.5"], "203.0.113.5"),
        (["203.0.113.5", "garbage"], None),  # the nearest hop is no address: the peer stays
        (["10.0.0.3", "10.0.0.2"], "10.0.0.3"),  # only trusted hops: the first of them
        ([], None),
    ],
)
def test_the_client_in_a_forwarded_chain(chain: list[str], client: str | None) -> None:
    assert RealClient(None, ["10.0.0.0/8"]).client(chain) == client  # type: ignore[arg-type]


def test_trusted_proxies_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ApiSettings().trusted_proxies == []  # none by default
    monkeypatch.setenv("CIM_API_TRUSTED_PROXIES", "172.30.0.10, 10.0.0.0/8,::1")
    assert ApiSettings().trusted_proxies == ["172.30.0.10/32", "10.0.0.0/8", "::1/128"]
    monkeypatch.setenv("CIM_API_TRUSTED_PROXIES", '["172.30.0.10"]')
    assert ApiSettings().trusted_proxies == ["172.30.0.10/32"]
    monkeypatch.setenv("CIM_API_TRUSTED_PROXIES", "nginx")  # a name is not an address
    with pytest.raises(ValidationError) as refused:
        ApiSettings()
    assert "CIM_API_TRUSTED_PROXIES='nginx'" in settings_problem(refused.value)


@pytest.fixture(scope="module")
def served(engine: Engine) -> Iterator[str]:
    """The app under uvicorn as `cim serve` configures it (no trusted proxies)."""
    settings = ApiSettings(auth_failures=LIMIT)
    app = ErrorsLoggedOnce(create_app(engine=engine, settings=settings))
    with served_in_thread(
        app, settings, log_level="warning", log_config=LOGGING_CONFIG, access_log=True
    ) as port:
        yield f"http://127.0.0.1:{port}"


def test_uvicorn_believes_no_forwarded_header_either(served: str, admin: dict[str, str]) -> None:
    # uvicorn alone would take X-Forwarded-For from 127.0.0.1 as the client: each guess from
    # another "address", and any address locked out by naming it
    with httpx.Client(base_url=served) as http:
        codes = [
            http.get("/grading/rounds", headers={**BAD, "X-Forwarded-For": f"198.51.100.{n}"})
            for n in range(LIMIT + 1)
        ]
        assert [r.status_code for r in codes] == [401] * LIMIT + [429]
        assert codes[-1].headers["content-type"] == "application/problem+json"
        assert http.get("/grading/rounds", headers=admin).status_code == 200


class _ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: `!reset` empties what it tags."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def test_the_readme_proxy_setups_trust_the_proxy_they_run() -> None:
    section = README.read_text().split("### Behind a reverse proxy")[1].split("\n## ")[0]
    nginx = re.search(r"```nginx\n(.*?)```", section, re.S)
    compose = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert nginx and compose
    # nginx replaces what the client sent with the address it saw, and says the scheme
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx.group(1)
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx.group(1)
    doc = yaml.load(compose.group(1), Loader=_ComposeLoader)  # a SafeLoader
    proxy, cim = doc["services"]["proxy"], doc["services"]["cim"]
    env = cim["environment"]
    assert set(env) <= {f"CIM_API_{name.upper()}" for name in ApiSettings.model_fields}
    trusted = ApiSettings(trusted_proxies=env["CIM_API_TRUSTED_PROXIES"]).trusted_proxies
    address = ipaddress.ip_address(proxy["networks"]["front"]["ipv4_address"])
    subnet = ipaddress.ip_network(doc["networks"]["front"]["ipam"]["config"][0]["subnet"])
    assert address in subnet and [str(ipaddress.ip_network(address))] == trusted
    assert cim["ports"] is None and "front" in cim["networks"]  # reached through nginx only
