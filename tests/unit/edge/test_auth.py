"""The authenticator against a real local identity provider (an HTTP server publishing a JWKS).

Tokens are shaped like those of Auth0, Clerk and Supabase; every refusal is
``UNAUTHENTICATED`` (or ``TOKEN_EXPIRED``) with a reason, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from accord.common.config import ConfigError
from accord.edge import metrics
from accord.edge.auth import Authenticator, AuthError, IdentitySettings, claim_at
from accord.edge.jwks import DEFAULT_TTL, MAX_TTL, MIN_TTL, cache_ttl, parse_key_set

from tests.support.idp import IdentityProvider, new_key

SECRET = "s" * 32


def settings(**env: str) -> IdentitySettings:
    return IdentitySettings.from_env(env)


async def refused(auth: Authenticator, token: str, code: str = "UNAUTHENTICATED") -> str:
    with pytest.raises(AuthError) as caught:
        await auth.authenticate(token)
    assert caught.value.code == code
    return caught.value.message


# -- settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"JWKS_URL": "http://idp.example.com/jwks.json"}, "must be an https:// URL"),
        ({"JWKS_URL": "ftp://127.0.0.1/jwks.json"}, "must be an https:// URL"),
        ({"JWKS_URL": "https:///jwks.json"}, "must be an https:// URL"),
        ({"JWT_SECRET": "x" * 31}, "at least 32 bytes"),
        ({"JWT_SECRET": SECRET, "JWT_ROOMS_CLAIM": "app_metadata..rooms"}, "dotted claim path"),
        ({"JWT_SECRET": SECRET, "JWT_AUDIENCE": " , "}, "names nothing"),
        ({"JWT_SECRET": SECRET, "JWT_LEEWAY": "-1"}, "JWT_LEEWAY"),
        ({}, "no way to authenticate clients"),
    ],
)
def test_bad_identity_settings_stop_start_up_with_one_line(
    env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_loopback_and_https_jwks_urls_are_accepted() -> None:
    for url in (
        "https://tenant.auth0.com/.well-known/jwks.json",
        "http://127.0.0.1:9999/jwks.json",
        "http://localhost:9999/jwks.json",
        "http://[::1]:9999/jwks.json",
    ):
        assert settings(JWKS_URL=url).jwks_url == url


def test_key_files_are_checked_at_start_up(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="neither a PEM public key nor a JWKS"):
        settings(JWT_PUBLIC_KEY_FILE=str(garbage))
    only_secret = tmp_path / "oct.json"
    only_secret.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}))
    with pytest.raises(ConfigError, match="no RS256 or ES256 signing key"):
        settings(JWT_PUBLIC_KEY_FILE=str(only_secret))
    with pytest.raises(ConfigError, match="cannot be read"):
        settings(JWT_JWKS_FILE=str(tmp_path / "missing.json"))


def test_a_key_set_never_yields_symmetric_encryption_or_private_keys() -> None:
    rsa_key, ec_key = new_key("r"), new_key("e", "ES256")
    document = {
        "keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct", "alg": "HS256"},
            {**rsa_key.public_jwk(), "kid": "enc", "use": "enc"},
            {**rsa_key.public_jwk(), "kid": "private", "d": "AAAA"},
            rsa_key.public_jwk(),
            ec_key.public_jwk(),
            "not an object",
        ]
    }
    keys = parse_key_set(json.dumps(document))
    assert sorted(keys) == ["e", "r"]
    assert (keys["r"].algorithm, keys["e"].algorithm) == ("RS256", "ES256")


def test_cache_control_sets_how_long_a_key_set_is_fresh() -> None:
    assert cache_ttl({"Cache-Control": "public, max-age=3600, must-revalidate"}) == 3600
    assert cache_ttl({"Cache-Control": 's-maxage=10, max-age="120"'}) == 120
    assert cache_ttl({"Cache-Control": "max-age=1"}) == MIN_TTL
    assert cache_ttl({"Cache-Control": "max-age=99999999"}) == MAX_TTL
    assert cache_ttl({"Cache-Control": "no-cache"}) == MIN_TTL
    assert cache_ttl({}) == DEFAULT_TTL


def test_claim_paths_walk_nested_objects_and_match_dotted_names_whole() -> None:
    claims = {
        "app_metadata": {"accord": {"rooms": ["a"]}},
        "https://accord.example.com/rooms": ["b"],
        "https://accord.example.com": {"write": ["c"]},
    }
    assert claim_at(claims, "app_metadata.accord.rooms") == ["a"]
    assert claim_at(claims, "https://accord.example.com/rooms") == ["b"]
    assert claim_at(claims, "https://accord.example.com.write") == ["c"]
    absent = claim_at(claims, "nope")
    assert not isinstance(absent, list)
    assert claim_at(claims, "app_metadata.missing.rooms") is absent
    assert claim_at(claims, "app_metadata.accord.rooms.0") is absent


# -- HS256 and strict claims ----------------------------------------------------------


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    body = {"sub": "u-1", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


@pytest.mark.parametrize("claim", ["rooms", "write"])
@pytest.mark.parametrize("value", [None, "todo-*", 7, {"todo-*": True}, [1], ["ok", None]])
async def test_a_grants_claim_that_is_not_a_list_of_strings_is_malformed(
    claim: str, value: Any
) -> None:
    async with Authenticator(settings(JWT_SECRET=SECRET)) as auth:
        message = await refused(auth, hs256({claim: value}))
    assert f"token claim {claim!r} must be a list of strings" == message


async def test_grants_are_read_from_the_configured_paths() -> None:
    env = {
        "JWT_SECRET": SECRET,
        "JWT_ROOMS_CLAIM": "app_metadata.accord.rooms",
        "JWT_WRITE_CLAIM": "app_metadata.accord.write",
    }
    async with Authenticator(settings(**env)) as auth:
        grants = {"accord": {"rooms": ["team-*"], "write": ["team-a"]}}
        identity = await auth.authenticate(hs256({"app_metadata": grants, "rooms": ["other"]}))
        assert identity.can_read("team-b") and not identity.can_read("other")
        assert identity.can_write("team-a") and not identity.can_write("team-b")
        # A path's object present but its grants absent: the protocol's default, every room.
        assert (await auth.authenticate(hs256({"app_metadata": {}}))).read is None
    async with Authenticator(settings(**env, JWT_ROOMS_REQUIRED="true")) as auth:
        assert "required" in await refused(auth, hs256({"app_metadata": {}}))


async def test_leeway_extends_expiry_and_the_session_expires_that_much_later() -> None:
    past = {"exp": int(time.time()) - 5}
    async with Authenticator(settings(JWT_SECRET=SECRET)) as auth:
        await refused(auth, hs256(past), "TOKEN_EXPIRED")
    async with Authenticator(settings(JWT_SECRET=SECRET, JWT_LEEWAY="30")) as auth:
        identity = await auth.authenticate(hs256(past))
        assert identity.expires_at == past["exp"] + 30
        await refused(auth, hs256({"exp": int(time.time()) - 60}), "TOKEN_EXPIRED")


async def test_algorithms_without_a_configured_key_are_refused() -> None:
    async with Authenticator(settings(ALLOW_ANONYMOUS="true")) as auth:
        assert "'HS256' is not accepted" in await refused(auth, hs256({}))
        unsigned = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, None, algorithm="none")
        assert "'none' is not accepted" in await refused(auth, unsigned)
        assert "not a valid JWT" in await refused(auth, "garbage")


# -- a real identity provider ------------------------------------------------------------


def auth0_claims(provider: IdentityProvider) -> dict[str, Any]:
    return {
        "sub": "auth0|64f1c0ffee",
        "aud": ["https://api.todo.example", f"{provider.issuer}userinfo"],
        "azp": "Zr3CLIENTID",
        "scope": "openid profile",
        "https://accord.example.com/rooms": ["todo-*"],
    }


async def test_auth0_shaped_rs256_token_with_audience_issuer_and_namespaced_grants(
    idp: IdentityProvider,
) -> None:
    key = idp.add(new_key("auth0-1"))
    env = {
        "JWKS_URL": idp.jwks_url,
        "JWT_AUDIENCE": "https://api.todo.example",
        "JWT_ISSUER": idp.issuer,
        "JWT_ROOMS_CLAIM": "https://accord.example.com/rooms",
    }
    async with Authenticator(settings(**env)) as auth:
        assert auth.ready
        identity = await auth.authenticate(idp.token(key, auth0_claims(idp)))
        assert identity.user_id == "auth0|64f1c0ffee"
        assert identity.can_write("todo-1") and not identity.can_read("admin")
        wrong_aud = {**auth0_claims(idp), "aud": "https://other.example"}
        assert "audience" in await refused(auth, idp.token(key, wrong_aud))
        wrong_iss = {**auth0_claims(idp), "iss": "https://evil.example/"}
        assert "issuer" in await refused(auth, idp.token(key, wrong_iss))
        no_iss = idp.token(key, auth0_claims(idp))
        no_iss = jwt.encode(
            {
                k: v
                for k, v in jwt.decode(no_iss, options={"verify_signature": False}).items()
                if k != "iss"
            },
            key.private,
            algorithm="RS256",
            headers={"kid": key.kid},
        )
        assert "'iss'" in await refused(auth, no_iss)
        await refused(auth, idp.token(key, auth0_claims(idp), ttl=-10), "TOKEN_EXPIRED")


async def test_clerk_shaped_token_checks_the_authorized_party(idp: IdentityProvider) -> None:
    key = idp.add(new_key("ins_2abc"))
    env = {"JWKS_URL": idp.jwks_url, "JWT_AUTHORIZED_PARTIES": "https://app.example.com"}
    claims = {
        "sub": "user_2NNEqL2nrIRdJ194ndJqAHwEfxC",
        "azp": "https://app.example.com",
        "sid": "sess_123",
        "nbf": int(time.time()) - 5,
        "public_metadata": {"accord": {"rooms": ["chat-*"]}},
    }
    async with Authenticator(
        settings(**env, JWT_ROOMS_CLAIM="public_metadata.accord.rooms")
    ) as auth:
        assert (await auth.authenticate(idp.token(key, claims))).can_read("chat-1")
        other = {**claims, "azp": "https://phishing.example"}
        assert "authorized party" in await refused(auth, idp.token(key, other))
        early = {**claims, "nbf": int(time.time()) + 120}
        assert "invalid token" in await refused(auth, idp.token(key, early))


async def test_supabase_shaped_es256_token(idp: IdentityProvider) -> None:
    key = idp.add(new_key(str(uuid.uuid4()), "ES256"))
    env = {
        "JWKS_URL": idp.jwks_url,
        "JWT_AUDIENCE": "authenticated",
        "JWT_ROOMS_CLAIM": "app_metadata.accord_rooms",
    }
    claims = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "email": "ada@example.com",
        "session_id": str(uuid.uuid4()),
        "app_metadata": {"provider": "email", "accord_rooms": ["notes-ada"]},
    }
    async with Authenticator(settings(**env)) as auth:
        identity = await auth.authenticate(idp.token(key, claims))
        assert identity.can_read("notes-ada") and not identity.can_read("notes-bob")
        anon = {**claims, "aud": "anon"}
        assert "audience" in await refused(auth, idp.token(key, anon))


async def test_an_algorithm_the_key_does_not_have_is_refused(idp: IdentityProvider) -> None:
    rsa_key = idp.add(new_key("rsa"))
    ec_signer = new_key("rsa", "ES256")  # the RSA key's kid on an ES256 token
    async with Authenticator(settings(JWKS_URL=idp.jwks_url)) as auth:
        message = await refused(auth, idp.token(ec_signer, {"sub": "u"}))
        assert "'ES256' is not allowed for key 'rsa'" in message
        # HS256 "signed" with the provider's public key: algorithm confusion.
        forged = jwt.encode(
            {"sub": "u", "exp": int(time.time()) + 60},
            rsa_key.public_jwk()["n"],
            algorithm="HS256",
            headers={"kid": "rsa"},
        )
        assert "'HS256' is not accepted" in await refused(auth, forged)


async def test_rotation_is_picked_up_without_restart_and_removed_keys_stop_working(
    idp: IdentityProvider,
) -> None:
    old = idp.add(new_key("k-2025"))
    env = {"JWKS_URL": idp.jwks_url, "JWKS_REFETCH_INTERVAL": "0"}
    async with Authenticator(settings(**env)) as auth:
        old_token = idp.token(old, {"sub": "u-old"})
        assert (await auth.authenticate(old_token)).user_id == "u-old"
        fetched = idp.requests
        new = idp.add(new_key("k-2026", "ES256"))
        assert (await auth.authenticate(idp.token(new, {"sub": "u-new"}))).user_id == "u-new"
        assert idp.requests == fetched + 1  # one refetch, for the unknown kid
        idp.remove("k-2025")
        await refused(auth, idp.token(new_key("k-unknown"), {"sub": "u"}))  # refetches again
        message = await refused(auth, old_token)
        assert "'k-2025' is not in the key set" in message


async def test_a_flood_of_forged_kids_fetches_the_set_at_most_once_per_interval(
    idp: IdentityProvider,
) -> None:
    idp.add(new_key("real"))
    async with Authenticator(settings(JWKS_URL=idp.jwks_url)) as auth:
        before = idp.requests
        forged = [idp.token(new_key(f"forged-{i}", "ES256"), {"sub": "x"}) for i in range(40)]
        results = await asyncio.gather(
            *(auth.authenticate(token) for token in forged), return_exceptions=True
        )
        assert all(isinstance(r, AuthError) and r.code == "UNAUTHENTICATED" for r in results)
        assert idp.requests - before <= 1


async def test_the_last_good_set_is_kept_while_the_provider_is_down(
    idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    key = idp.add(new_key("k1"))
    env = {"JWKS_URL": idp.jwks_url, "JWKS_REFETCH_INTERVAL": "0"}
    async with Authenticator(settings(**env)) as auth:
        idp.down = True
        with caplog.at_level(logging.WARNING, logger="accord.edge.jwks"):
            await refused(auth, idp.token(new_key("k2"), {"sub": "u"}))  # a refetch that fails
            await refused(auth, idp.token(new_key("k3"), {"sub": "u"}))
        assert metrics.JWKS_STALE._value.get() == 1
        warnings = [r for r in caplog.records if "cannot be fetched" in r.getMessage()]
        assert len(warnings) == 1  # one line per outage, not one per token
        assert (await auth.authenticate(idp.token(key, {"sub": "still"}))).user_id == "still"
        idp.down = False
        await refused(auth, idp.token(new_key("k4"), {"sub": "u"}))  # fetches, works
        assert metrics.JWKS_STALE._value.get() == 0


async def test_start_up_with_an_unreachable_provider_is_a_degraded_state_that_heals(
    idp: IdentityProvider,
) -> None:
    key = idp.add(new_key("k1"))
    idp.down = True
    env = {"JWKS_URL": idp.jwks_url, "JWT_SECRET": SECRET}
    async with Authenticator(settings(**env)) as auth:
        assert not auth.ready
        assert "not available yet" in await refused(auth, idp.token(key, {"sub": "u"}))
        assert (await auth.authenticate(hs256({"sub": "svc"}))).user_id == "svc"
        idp.down = False
        async with asyncio.timeout(10):
            while not auth.ready:  # noqa: ASYNC110 - the refresher retries in the background
                await asyncio.sleep(0.05)
        assert (await auth.authenticate(idp.token(key, {"sub": "u"}))).user_id == "u"
