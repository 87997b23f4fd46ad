"""Services that run on a held socket: HTTP and TCP stubs, and real programs."""
