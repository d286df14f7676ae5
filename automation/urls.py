"""URLs of the automation app, mounted under /api/automations/."""

from django.urls import path

from .views import AutomationDetailView, AutomationDisableView, AutomationEnableView, AutomationListView, AutomationRunsView

urlpatterns = [
    path("", AutomationListView.as_view()),
    path("<str:automation_id>", AutomationDetailView.as_view()),
    path("<str:automation_id>/enable", AutomationEnableView.as_view()),
    path("<str:automation_id>/disable", AutomationDisableView.as_view()),
    path("<str:automation_id>/runs", AutomationRunsView.as_view()),
]
