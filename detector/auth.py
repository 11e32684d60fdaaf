"""Bearer-token authentication with two roles: ``brand`` (registry writes) and ``moderator`` (scoring, feedback).

Tokens come from ``DETECTOR_BRAND_TOKENS`` / ``DETECTOR_MODERATOR_TOKENS`` (comma-separated). When both are unset,
the first start generates one token per role into ``<home>/tokens.json`` (mode 0600) and announces them once; later
starts read that file. Only SHA-256 digests of the tokens are kept in memory, and a presented token is compared with
every known digest by :func:`hmac.compare_digest` (fixed-length digests, no early exit), so neither the match nor the
token length leaks through timing. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

__all__ = [
    "BRAND",
    "MODERATOR",
    "ROLES",
    "TOKEN_ENV",
    "TOKENS_FILE",
    "AuthError",
    "TokenStore",
    "load_tokens",
]

log = logging.getLogger(__name__)

BRAND = "brand"
MODERATOR = "moderator"
ROLES = (BRAND, MODERATOR)
TOKEN_ENV = {BRAND: "DETECTOR_BRAND_TOKENS", MODERATOR: "DETECTOR_MODERATOR_TOKENS"}
TOKENS_FILE = "tokens.json"
MIN_TOKEN_CHARS = 16  # shorter secrets are refused at start-up: they are guessable


class AuthError(Exception):
    """A request is refused: ``status`` 401 (no or unknown token) or 403 (token of another role)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenStore:
    """Known tokens by role; answers which role a presented token has."""

    def __init__(self, tokens: Mapping[str, Sequence[str]]) -> None:
        """Keep digests of ``tokens`` (role -> tokens).

        Raises:
            ValueError: An unknown role, a token shorter than 16 characters or one token given to two roles.
        """
        unknown = set(tokens) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; known: {list(ROLES)}")
        self._digests: list[tuple[bytes, str]] = []
        seen: dict[bytes, str] = {}
        for role, values in tokens.items():
            for token in values:
                if len(token) < MIN_TOKEN_CHARS:
                    raise ValueError(f"a {role} token is shorter than {MIN_TOKEN_CHARS} characters")
                d = _digest(token)
                if d in seen and seen[d] != role:
                    raise ValueError(f"the same token is configured for roles {seen[d]!r} and {role!r}")
                seen[d] = role
                self._digests.append((d, role))
        self.counts = {role: sum(1 for _, r in self._digests if r == role) for role in ROLES}

    def role_of(self, token: str) -> str | None:
        """The role of ``token``, or None; takes the same time whichever token (if any) matches."""
        presented = _digest(token)
        role = None
        for known, known_role in self._digests:
            if hmac.compare_digest(presented, known):
                role = known_role
        return role

    def authorize(self, authorization: str | None, allowed: Collection[str]) -> str:
        """Check an ``Authorization`` header value against the roles a route accepts.

        Returns:
            The caller's role.

        Raises:
            AuthError: 401 for a missing, malformed or unknown bearer token; 403 for a token of another role.
        """
        if not authorization:
            raise AuthError(401, "unauthorized", "missing 'Authorization: Bearer <token>' header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'")
        role = self.role_of(token)
        if role is None:
            raise AuthError(401, "unauthorized", "unknown token")
        if role not in allowed:
            raise AuthError(403, "forbidden", f"this route needs the {' or '.join(sorted(allowed))} role")
        return role


def _split(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _announce_stderr(message: str) -> None:
    # Deliberately not a log record: the one-time token notice must not reach log aggregation.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _read_tokens_file(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(role), list) and all(isinstance(t, str) for t in data[role]) for role in ROLES
    ):
        raise ValueError(f"{path} must hold {{'brand': [tokens], 'moderator': [tokens]}}")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode)
    return {role: list(data[role]) for role in ROLES}


def _create_tokens_file(path: Path) -> dict[str, list[str]]:
    tokens = {role: [secrets.token_urlsafe(32)] for role in ROLES}
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once must not both generate (and one overwrite the other's) tokens.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (json.dumps(tokens, indent=2) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return tokens


def load_tokens(
    home: str | Path,
    environ: Mapping[str, str] | None = None,
    announce: Callable[[str], None] = _announce_stderr,
) -> TokenStore:
    """Build the token store from the environment, or from (or into) ``<home>/tokens.json``.

    Args:
        home: The service home (registry, indexes, tokens).
        environ: Where to read ``DETECTOR_BRAND_TOKENS`` / ``DETECTOR_MODERATOR_TOKENS``; default ``os.environ``.
        announce: Shows the freshly generated tokens once (default: standard error, not the log).

    Returns:
        The token store.

    Raises:
        ValueError: Malformed tokens or tokens file.
    """
    env = os.environ if environ is None else environ
    from_env = {role: _split(env.get(var)) for role, var in TOKEN_ENV.items()}
    if any(var in env for var in TOKEN_ENV.values()):
        for role, values in from_env.items():
            if not values:
                log.warning("no %s tokens configured (%s is empty): %s routes will refuse every request",
                            role, TOKEN_ENV[role], role)
        return TokenStore(from_env)
    path = Path(home) / TOKENS_FILE
    try:
        tokens = _create_tokens_file(path)
    except FileExistsError:
        return TokenStore(_read_tokens_file(path))
    announce(
        f"Generated API tokens (shown once; stored in {path}, mode 0600):\n"
        f"  brand:     {tokens[BRAND][0]}\n"
        f"  moderator: {tokens[MODERATOR][0]}"
    )
    log.info("generated one brand and one moderator token into %s", path)
    return TokenStore(tokens)
