"""A server configured as Socket.IO's own protocol test suites expect, from the product's layers."""
