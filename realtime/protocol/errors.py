"""The codec's one error class: everything the decoders refuse raises DecodeError."""


class DecodeError(Exception):
    """Input that is not a valid Engine.IO or Socket.IO packet or payload."""
