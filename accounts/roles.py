"""The three roles of labelgen, as Django groups, and the checks every view uses.

| | reader | coordinator | admin |
|---|---|---|---|
| own assigned study items, vote | yes | - | - |
| own annotation tasks: draw, make/correct AI labels | yes | - | - |
| study results, unblinding, exports, import cases, create studies and annotation tasks | - | yes | yes |
| launch/cancel runs | - | - | yes |
"""

from functools import wraps

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied

READER = "reader"
COORDINATOR = "coordinator"
ADMIN = "admin"
GROUPS = {READER: "Readers", COORDINATOR: "Coordinators", ADMIN: "Admins"}
ROLES = tuple(GROUPS)

# Which roles may use a capability. Admins can do everything a coordinator can, but do not vote:
# readers' votes are the study data, and an admin who can also unblind must not be a reader.
CAN = {
    "vote": {READER},
    "annotate": {READER},  # radiologists mark cases in the annotation tasks they are given
    "coordinate": {COORDINATOR, ADMIN},
    "run": {ADMIN},
}


def roles_of(user):
    """The set of role names a user holds (a superuser counts as admin)."""
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_labelgen_roles", None)
    if cached is None:
        by_group = {group: role for role, group in GROUPS.items()}
        cached = {by_group[n] for n in user.groups.values_list("name", flat=True) if n in by_group}
        if user.is_superuser:
            cached.add(ADMIN)
        user._labelgen_roles = cached
    return cached


def has_role(user, *roles):
    return bool(roles_of(user) & set(roles))


def can(user, capability):
    return bool(roles_of(user) & CAN[capability])


def home_url_name(user):
    """Where a user lands after login: admins on runs, coordinators on datasets, readers on their studies."""
    roles = roles_of(user)
    if ADMIN in roles:
        return "pipeline:run_list"
    if COORDINATOR in roles:
        return "pipeline:dataset_list"
    if READER in roles:
        return "evaluation:my_studies"
    return None


def capability_required(capability):
    """View decorator: 403 unless the logged-in user has a role allowed ``capability``."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not can(request.user, capability):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.labelgen_capability = capability
        return wrapper

    return decorator


class CapabilityRequiredMixin(AccessMixin):
    """Class-based twin of :func:`capability_required`; set ``capability`` on the view."""

    capability = None

    def dispatch(self, request, *args, **kwargs):
        if self.capability is None:
            raise AssertionError(f"{type(self).__name__} must set capability")
        if not can(request.user, self.capability):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)
