"""Readable answers for the errors Django leaves bare.

``require_POST`` and friends answer 405 with an empty body; a user who followed a link to such a URL saw
a blank page. This middleware fills those bodies: the API (``/api/``) gets JSON, pages get the site's
405 page, which says to use the page's button.
"""

from django.http import JsonResponse
from django.template.loader import render_to_string


class ReadableErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 405 or response.content:
            return response
        allowed = response.get("Allow", "")
        if request.path.startswith("/api/"):
            filled = JsonResponse({"error": f"method {request.method} not allowed here; use {allowed}"}, status=405)
        else:
            filled = response.__class__(allowed.split(", ") if allowed else [],
                                         render_to_string("405.html", {"allowed": allowed}, request=request))
        filled["Allow"] = allowed
        return filled
