"""Payload shapes of the built-in connection events, and the strict string field they share."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text.

    DRF's CharField accepts 123 as "123"; a socket payload with the wrong type is a client bug
    the client should hear about as such (invalid_payload), not as some later, odder error.
    """

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField, StrictCharField):
    pass


class RoomSerializer(serializers.Serializer):
    room = StrictCharField(max_length=100)


class AuthenticateSerializer(serializers.Serializer):
    # Longer than any real token, so the verifier (not this field) says "token too large".
    token = StrictCharField(max_length=65536, trim_whitespace=False)
