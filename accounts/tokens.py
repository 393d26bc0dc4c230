"""API tokens for scripts: ``Authorization: Token <key>``. Only a hash of each key is stored."""

import hashlib
import secrets

from django.utils import timezone

PREFIX = "lg_"


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def new_token(user, name=""):
    """Create a token for ``user``; returns ``(token_row, key)``. The key is shown once and never stored."""
    from accounts.models import ApiToken

    key = PREFIX + secrets.token_urlsafe(32)
    return ApiToken.objects.create(user=user, name=name, key_hash=hash_key(key), hint=key[:8]), key


def user_from_request(request):
    """The active user whose token is in the Authorization header, or None."""
    from accounts.models import ApiToken

    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "token" or not key.startswith(PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key.strip()), revoked=False).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
