from django.contrib.auth import logout
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .roles import home_url_name


def home(request):
    """Send each role to its own start page."""
    target = home_url_name(request.user)
    if target is None:
        return render(request, "accounts/no_role.html", status=403)
    return redirect(target)


@require_POST
def logout_view(request):
    logout(request)
    return redirect("login")
