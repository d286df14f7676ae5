"""Django URLs: health, admin and the REST API."""

from django.contrib import admin
from django.urls import include, path

from realtime.views import HealthView

urlpatterns = [
    path("health", HealthView.as_view()),
    path("admin/", admin.site.urls),
    path("api/market/", include("market.urls")),
]
