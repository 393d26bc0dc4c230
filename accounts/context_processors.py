from accounts.roles import can


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "can_vote": can(user, "vote"),
        "can_annotate": can(user, "annotate"),
        "can_coordinate": can(user, "coordinate"),
        "can_run": can(user, "run"),
    }
