from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import capability_required, home_url_name


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


@login_not_required
@require_GET
@cache_control(public=True, max_age=7 * 24 * 3600)
def favicon(request):
    """Browsers ask for /favicon.ico whatever the page says; send them to the static icon."""
    return redirect(static("favicon.svg"), permanent=True)


def lockout_minutes():
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def locked_out(request, original_response=None, credentials=None):
    """What django-axes answers a locked-out login (429): the login page, saying why and for how long."""
    return render(request, "registration/login.html", {"locked_out": True, "minutes": lockout_minutes()},
                  status=429)


@capability_required("coordinate")
def lockouts(request):
    """Coordinators and admins see the user names and addresses locked out of logging in, and clear them."""
    from axes.models import AccessAttempt
    from axes.utils import reset

    if request.method == "POST":
        username, ip = request.POST.get("username") or None, request.POST.get("ip") or None
        if request.POST.get("all"):
            cleared = reset()
        elif username or ip:
            cleared = reset(username=username, ip=ip, ip_or_username=True)
        else:
            cleared = 0
        messages.success(request, f"Cleared {cleared} record(s) of failed logins.")
        return redirect("lockouts")
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    rows = AccessAttempt.objects.filter(attempt_time__gte=since).order_by("-attempt_time")
    return render(request, "accounts/lockouts.html", {
        "rows": rows, "limit": settings.AXES_FAILURE_LIMIT, "minutes": lockout_minutes()})
