-- The reconciler: the relay checks that the streams still hold the events
-- it published, and publishes again those they lost.

-- name: PublishedSince :many
-- The events published since a time, in outbox order, and where their
-- streams keep them. They are found through the outbox's index on sent_at
-- (the log has none on its time; an event still in the outbox is also one
-- that can be published again). An erased event has no stream_seq; the
-- events of a customer whose erasure is under way are left out too: the
-- erasure may have deleted them already.
SELECT l.outbox_id, l.event_id, l.stream, l.stream_seq::bigint AS stream_seq, o.sent_at::timestamptz AS sent_at
FROM outbox o
JOIN event_log l ON l.outbox_id = o.id
WHERE o.sent_at >= sqlc.arg(since)::timestamptz AND l.stream_seq IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM erasures e
      WHERE e.erased_at IS NULL AND l.partition_key = ANY(e.partition_keys))
ORDER BY l.outbox_id;

-- name: OutboxEvents :many
SELECT * FROM outbox WHERE id = ANY(sqlc.arg(ids)::bigint[]) ORDER BY id;

-- name: LogRepublishedEvents :exec
-- Where the streams keep the events published again. Their outbox rows are
-- marked sent again (MarkOutboxSent): kept and checked from then on.
UPDATE event_log l SET stream = r.stream, stream_seq = r.stream_seq, published_at = now()
FROM (SELECT unnest(sqlc.arg(outbox_ids)::bigint[]) AS outbox_id, unnest(sqlc.arg(streams)::text[]) AS stream,
             unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seq) r
WHERE l.outbox_id = r.outbox_id;
