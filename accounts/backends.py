"""The login backend: Django's ModelBackend, whose per-request user lookup also reads the user's roles.

Every request loads its user from the session; reading the three role groups in that same statement (one
EXISTS per role) spares each request the separate groups query that :func:`accounts.roles.roles_of` would
otherwise run. Between requests the user is kept in the cache (:mod:`accounts.user_cache`); a change of
account or roles drops it, so it still takes effect on the user's next request.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Exists, OuterRef

from accounts import user_cache
from accounts.roles import ADMIN, GROUPS


class RoleBackend(ModelBackend):
    def get_user(self, user_id):
        user = user_cache.get(user_id)
        if user is None:
            user = self._load(user_id)
            if user is None:
                return None
            user_cache.put(user)
        return user if self.user_can_authenticate(user) else None

    def _load(self, user_id):
        User = get_user_model()
        memberships = User.groups.through.objects.filter(user_id=OuterRef("pk"))
        flags = {f"_has_{role}": Exists(memberships.filter(group__name=group)) for role, group in GROUPS.items()}
        user = User._default_manager.annotate(**flags).filter(pk=user_id).first()
        if user is None:
            return None
        user._labelgen_roles = {role for role in GROUPS if getattr(user, f"_has_{role}")}
        if user.is_superuser:
            user._labelgen_roles.add(ADMIN)
        return user
