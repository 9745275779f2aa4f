"""The console: a web dashboard of the site, served by the daemon under ``/ui/`` on its control
socket (adapters layer). docs/CONSOLE.md says how to open it and what it enforces.

``web`` answers one request (the Host, the scope, the session, static files, pages, forms);
``sessions`` holds the single-use tokens and the session cookies; ``pages`` reads the daemon's
read actions and renders the templates (Jinja2, autoescaped); ``forward`` is ``orchd
console``'s loopback port, which carries the operator's browser to the socket. The daemon has
no TCP listener of its own.
"""
