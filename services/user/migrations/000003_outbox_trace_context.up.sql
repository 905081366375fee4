-- The W3C trace context of the request that wrote an event, so that its publish and its
-- consumers continue that request's trace.
ALTER TABLE outbox ADD COLUMN traceparent text NOT NULL DEFAULT '',
                   ADD COLUMN tracestate  text NOT NULL DEFAULT '';
