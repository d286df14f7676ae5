"""Payload shapes of the built-in connection events."""

from rest_framework import serializers


class RoomSerializer(serializers.Serializer):
    room = serializers.CharField(max_length=100)


class AuthenticateSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=8192)
