"""URLs of the market app, mounted under /api/market/."""

from django.urls import path

from .views import FeedView

urlpatterns = [path("feed", FeedView.as_view())]
