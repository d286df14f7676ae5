"""The live page's URLs: / and the client bundle (Channels routes /socket.io/ itself elsewhere)."""

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("", views.live_page, name="live"),
    re_path(r"^socket\.io/(?P<name>socket\.io[a-z.]*\.js(?:\.map)?)$", views.socketio_client),
]
