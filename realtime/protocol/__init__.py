"""Sans-IO Engine.IO v4 and Socket.IO v5 codecs: text and bytes in, packets out, no I/O."""
