"""URLs of the transactions app, mounted under /api/transactions/."""

from django.urls import path

from .views import RegisterView, SubmitView

urlpatterns = [path("", RegisterView.as_view()), path("submit", SubmitView.as_view())]
