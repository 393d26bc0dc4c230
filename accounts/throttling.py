"""Login throttling helpers for django-axes (settings in labelgen_web/settings.py)."""

from django.conf import settings


def client_address(request):
    """The address a login came from, as django-axes counts it.

    Behind the one TLS proxy of ``LABELGEN_BEHIND_PROXY`` every request arrives from the proxy, so counting
    REMOTE_ADDR would lock everyone out together; the proxy appends the address it saw to X-Forwarded-For,
    and that last entry is the one a client cannot forge.
    """
    if settings.LABELGEN_BEHIND_PROXY:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")
