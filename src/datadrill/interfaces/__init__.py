"""What the stack speaks over the network: the small JSON-over-HTTP server helper shared by
the stack process's control API and the query service (``http_server``). The fault proxy's
Toxiproxy API lives in :mod:`datadrill.netfaults`; clients use httpx (the control client,
readiness checks), toxiproxy-python (Toxiproxy) and the trino client (Trino)."""
