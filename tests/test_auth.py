"""Registry authentication: challenges, docker's config and credential helpers, tokens; and
logging in to real registries with htpasswd basic auth and with token auth."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

from kitdsl.oci.auth import (
    DOCKER_HUB_KEY,
    AuthError,
    Challenge,
    Credentials,
    DockerConfig,
    StaticCredentials,
    TokenCache,
    config_key_host,
    default_config_path,
    parse_challenges,
    parse_token_response,
    token_request,
)
from kitdsl.oci.registry import RegistryAuthError
from kitdsl.oci.store import ContentStore
from tests.images import Image, add_image
from tests.registry import (  # noqa: F401  (pytest fixtures)
    USERS,
    RegistryServer,
    TokenServer,
    basic_registry_fixture,
    make_client,
    store_fixture,
    token_registry_fixture,
    token_server_fixture,
)

ALICE = Credentials("alice", USERS["alice"])

# --- challenges ----------------------------------------------------------------------------


def test_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull",error="insufficient_scope"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["service"] == "registry.docker.io"
    assert challenge.scopes == ("repository:library/alpine:pull",)


def test_several_challenges_and_escapes() -> None:
    challenges = parse_challenges('Basic realm="say \\"hi\\"", Bearer realm=x, service="s"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == 'say "hi"'
    assert challenges[1].params == {"realm": "x", "service": "s"}
    assert parse_challenges("") == []


# --- docker's config -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "host"),
    [
        (DOCKER_HUB_KEY, "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://ghcr.io/v2/", "ghcr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://localhost:5000", "localhost:5000"),
    ],
)
def test_config_keys_compare_by_host(key: str, host: str) -> None:
    assert config_key_host(key) == host


def _config(tmp_path: Path, data: dict[str, object], **environ: str) -> DockerConfig:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", **environ}
    return DockerConfig(path, environ=env)


def _helper(tmp_path: Path, name: str, answers: dict[str, dict[str, str]]) -> Path:
    """A ``docker-credential-<name>`` that answers from ``answers`` and logs what it was asked."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    script = folder / f"docker-credential-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(log)!r}, 'a').write(sys.argv[1] + ' ' + server + '\\n')\n"
        f"answers = {answers!r}\n"
        "if server == 'broken':\n"
        "    sys.stderr.write('keychain locked'); sys.exit(2)\n"
        "if server not in answers:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "print(json.dumps(dict(answers[server], ServerURL=server)))\n"
    )
    script.chmod(0o755)
    return log


def test_auths_entries(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"bob:s3cret:with:colons").decode()
    config = _config(
        tmp_path,
        {
            "auths": {
                DOCKER_HUB_KEY: {"auth": encoded},
                "https://ghcr.io": {"username": "carol", "password": "pw"},
                "quay.io": {"identitytoken": "refresh"},
                "empty.example": {},
            }
        },
    )
    hub = config.credentials("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("bob", "s3cret:with:colons")
    ghcr = config.credentials("ghcr.io")
    assert ghcr is not None and ghcr.basic() == "Basic " + base64.b64encode(b"carol:pw").decode()
    quay = config.credentials("quay.io")
    assert quay is not None and quay.identity_token == "refresh"
    assert config.credentials("empty.example") is None
    assert config.credentials("other.example") is None


def test_config_location(tmp_path: Path) -> None:
    assert default_config_path({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert default_config_path({}).parts[-2:] == (".docker", "config.json")
    assert DockerConfig(tmp_path / "absent.json").credentials("ghcr.io") is None


def test_broken_config_is_an_auth_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(AuthError, match="not valid JSON"):
        DockerConfig(path).credentials("ghcr.io")
    path.write_text(json.dumps({"auths": {"ghcr.io": {"auth": "%%%"}}}))
    with pytest.raises(AuthError, match="base64"):
        DockerConfig(path).credentials("ghcr.io")


def test_helpers_come_before_auths(tmp_path: Path) -> None:
    answers = {
        "ghcr.io": {"Username": "helper-user", "Secret": "helper-secret"},
        DOCKER_HUB_KEY: {"Username": "<token>", "Secret": "hub-refresh"},
    }
    log = _helper(tmp_path, "store", answers)
    _helper(tmp_path, "special", {"quay.io": {"Username": "q", "Secret": "qs"}})
    config = _config(
        tmp_path,
        {
            "credsStore": "store",
            "credHelpers": {"quay.io": "special"},
            "auths": {
                "ghcr.io": {"username": "file-user", "password": "x"},
                "gitlab.example": {"username": "file-user", "password": "y"},
            },
        },
    )
    assert config.credentials("ghcr.io") == Credentials(
        "helper-user", "helper-secret", source="docker-credential-store"
    )
    hub = config.credentials("docker.io")
    assert hub is not None and hub.identity_token == "hub-refresh"
    quay = config.credentials("quay.io")
    assert quay is not None and quay.username == "q"
    gitlab = config.credentials("gitlab.example")  # the store has none: the file's entry
    assert gitlab is not None and gitlab.username == "file-user"
    config.credentials("ghcr.io")  # cached: the helper is not asked twice
    assert log.read_text().splitlines() == [
        "get ghcr.io",
        f"get {DOCKER_HUB_KEY}",
        "get gitlab.example",
    ]


def test_failing_or_missing_helper(tmp_path: Path) -> None:
    _helper(tmp_path, "store", {})
    with pytest.raises(AuthError, match="keychain locked"):
        _config(tmp_path, {"credsStore": "store"}).credentials("broken")
    with pytest.raises(AuthError, match="docker-credential-nowhere is not installed"):
        _config(tmp_path, {"credsStore": "nowhere"}).credentials("ghcr.io")


# --- tokens --------------------------------------------------------------------------------


def test_token_requests() -> None:
    challenge = Challenge("bearer", {"realm": "https://auth.example/token", "service": "reg"})
    anonymous = token_request(challenge, ["repository:a:pull"], None)
    assert (anonymous.method, anonymous.authorization) == ("GET", None)
    assert anonymous.params == [("service", "reg"), ("scope", "repository:a:pull")]
    basic = token_request(challenge, ["repository:a:pull"], ALICE)
    assert basic.authorization == ALICE.basic() and ("account", "alice") in basic.params
    refresh = token_request(challenge, ["a", "b"], Credentials(identity_token="r"))
    assert refresh.method == "POST" and refresh.form is not None
    assert refresh.form["grant_type"] == "refresh_token" and refresh.form["scope"] == "a b"


def test_tokens_expire_early_and_are_cached_per_scope() -> None:
    token = parse_token_response(b'{"access_token": "t", "expires_in": 300}', now=1000.0)
    assert token.value == "t" and token.expires_at == 1000.0 + 300 - 30
    assert parse_token_response(b'{"token": "u"}', now=0.0).expires_at == 54.0
    with pytest.raises(AuthError):
        parse_token_response(b'{"nothing": 1}')
    cache = TokenCache()
    challenge = Challenge("bearer", {"realm": "r"})
    key = TokenCache.key(challenge, ["b", "a", "a"], "")
    assert key == TokenCache.key(challenge, ["a", "b"], "")
    cache.put(key, token)
    assert cache.get(key, now=1100.0) == "t"
    assert cache.get(key, now=1280.0) is None


# --- real registries -----------------------------------------------------------------------


def _image(tmp_path: Path) -> tuple[ContentStore, Image]:
    source = ContentStore(tmp_path / "source")
    return source, add_image(source, files={"secret": b"data"})


def test_basic_auth(basic_registry: RegistryServer, tmp_path: Path, store: ContentStore) -> None:
    source, image = _image(tmp_path)
    ref = f"{basic_registry.host}/private/app:1"
    encoded = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    config = _config(tmp_path, {"auths": {basic_registry.host: {"auth": encoded}}})
    with make_client(credentials=config) as client:
        client.push(ref, source, image.manifest)
        pulled = client.pull(ref, "linux/amd64", store)
    assert pulled.manifest.digest == image.manifest.digest
    with make_client() as client, pytest.raises(RegistryAuthError) as caught:
        client.resolve(ref, "linux/amd64", store)
    assert basic_registry.url in str(caught.value) and "private/app" in str(caught.value)
    assert caught.value.status == 401
    assert f"docker login {basic_registry.host}" in (caught.value.hint or "")
    wrong = StaticCredentials({basic_registry.host: Credentials("alice", "nope")})
    with make_client(credentials=wrong) as client, pytest.raises(RegistryAuthError) as caught:
        client.resolve(ref, "linux/amd64", store)
    assert "check the credentials" in (caught.value.hint or "")


def test_token_auth(
    token_registry: RegistryServer,
    token_server: TokenServer,
    tmp_path: Path,
    store: ContentStore,
) -> None:
    source, image = _image(tmp_path)
    ref = f"{token_registry.host}/tokens/app:1"
    _helper(tmp_path, "test", {token_registry.host: {"Username": "alice", "Secret": "wonderland"}})
    config = _config(tmp_path, {"credHelpers": {token_registry.host: "test"}})
    with make_client(credentials=config) as client:
        client.push(ref, source, image.manifest)
    token_server.grants.clear()
    with make_client() as client:  # anyone may pull
        resolved = client.pull(ref, "linux/amd64", store)
        client.resolve(ref, "linux/amd64", store)
    assert resolved.manifest.digest == image.manifest.digest
    # One token served the manifest, config and layer requests of both calls.
    assert token_server.grants == [("", ("repository:tokens/app:pull",))]
    with make_client() as client, pytest.raises(RegistryAuthError) as caught:
        client.push(f"{token_registry.host}/tokens/other:1", source, image.manifest)
    assert "tokens/other" in str(caught.value) and "docker login" in (caught.value.hint or "")


def test_token_auth_with_refresh_token_or_wrong_password(
    token_registry: RegistryServer,
    token_server: TokenServer,
    tmp_path: Path,
) -> None:
    source, image = _image(tmp_path)
    ref = f"{token_registry.host}/tokens/refresh:1"
    refresh = StaticCredentials(
        {token_registry.host: Credentials(identity_token="refresh-for-alice")}
    )
    with make_client(credentials=refresh) as client:
        client.push(ref, source, image.manifest)
    assert token_server.grants[-1][0] == "alice"
    wrong = StaticCredentials({token_registry.host: Credentials("alice", "guess")})
    with make_client(credentials=wrong) as client, pytest.raises(RegistryAuthError) as caught:
        client.push(ref, source, image.manifest)
    assert "token server" in str(caught.value) and "as alice" in str(caught.value)
    assert caught.value.status == 401
