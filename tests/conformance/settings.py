"""Django settings for the conformance server: nothing but a channel layer."""

SECRET_KEY = "conformance-only"
INSTALLED_APPS: list = []
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
