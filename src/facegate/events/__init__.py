"""Events out of facegate (video tracks appearing and leaving, recurring unknown people): an in-process hub for
Server-Sent Events and the embedded default, plus publishers to a broker (NATS, Redis, MQTT) and webhooks."""
