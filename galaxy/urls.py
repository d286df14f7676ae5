"""Django URLs: health, admin, the REST API (market, transactions, automations, system notifications) and the live page."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from realtime.rest import api_not_found
from realtime.views import HealthView, MeView, metrics_view

urlpatterns = [
    path("health", HealthView.as_view()),
    path("metrics", metrics_view),
    path("metrics/prometheus", metrics_view),
    path("admin/", admin.site.urls),
    path("api/auth/me", MeView.as_view()),
    path("api/market/", include("market.urls")),
    path("api/transactions/", include("transactions.urls")),
    path("api/automations/", include("automation.urls")),
    path("api/system/", include("realtime.notifications.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"^api/", api_not_found),  # last of the API's: what none of them serves
    path("", include("web.urls")),
]

# Django's own 500 page is HTML: the API answers JSON (realtime.rest.server_error).
handler500 = "realtime.rest.server_error"
