"""NATS JetStream for remote workers (adapters layer, issue 26, being built): the server-side
permissions that tie each worker to its own subjects. Nothing here imports ``nats`` (the
``orchd[workers]`` extra); what does will live beside it."""
