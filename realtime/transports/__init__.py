"""The Engine.IO transports as Channels consumers: the only code that does socket or HTTP I/O."""
