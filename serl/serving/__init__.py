"""A base policy served by another process (a large pretrained policy on a GPU, or the project's
own BC policy): a small request/reply protocol over ZeroMQ DEALER/ROUTER with the transport's
msgpack conventions (`messages`), the server (`serl serve-policy FILE`, `server`) and the client the
env's `BaseActionWrapper` calls (`client.ServedBasePolicy`)."""
