"""URLs of system notifications, mounted under /api/system/."""

from django.urls import path

from .views import NotificationView

urlpatterns = [path("notifications", NotificationView.as_view())]
