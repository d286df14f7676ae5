"""Operator messages to the public `system:notifications` room, with a log of who sent what."""
