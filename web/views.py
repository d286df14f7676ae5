"""The live page at / and the socket.io client bundle at /socket.io/socket.io.min.js."""

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseNotFound
from django.shortcuts import render
from django.views.decorators.http import require_safe

from market.selectors import enabled_pairs
from realtime.rest import DATABASE_RETRY_AFTER

from .socketio_client import BundleMissing, bundle_file

DEFAULT_PAIR = "XLM_USDC"


@require_safe
def live_page(request):
    try:
        pairs = sorted(pair.name for pair in enabled_pairs())  # every pair a visitor may watch
    except (OperationalError, InterfaceError):  # a restart or a failover: as the API answers it
        return HttpResponse("The database is unavailable: try again shortly.", status=503,
                            content_type="text/plain; charset=utf-8", headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    wanted = request.GET.get("pair", "").replace("/", "_").upper()
    pair = wanted if wanted in pairs else (DEFAULT_PAIR if DEFAULT_PAIR in pairs or not pairs else pairs[0])
    return render(request, "web/live.html", {
        "pair": pair, "pairs": pairs, "network": settings.STELLAR_NETWORK, "development": not settings.PRODUCTION,
    })


@require_safe
def socketio_client(request, name: str):
    """As Socket.IO's server serves its client: an ETag of the version, revalidated on each load."""
    try:
        found = bundle_file(name)
    except BundleMissing as exc:
        return HttpResponseNotFound(str(exc), content_type="text/plain; charset=utf-8")
    if found is None:
        return HttpResponseNotFound(f"no such client file: {name}", content_type="text/plain; charset=utf-8")
    if request.headers.get("If-None-Match") in (found.etag, "W/" + found.etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(found.body, content_type=found.content_type)
    response["ETag"] = found.etag
    # Revalidate every time (a 304 costs one small round trip) so an upgraded client is never stale.
    response["Cache-Control"] = "public, max-age=0"
    return response
