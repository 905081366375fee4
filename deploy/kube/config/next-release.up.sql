-- A later release's migration, for the rollback test (deploy/kube/images.sh next): an expand
-- step, a column the release before neither reads nor writes.
ALTER TABLE orders ADD COLUMN channel text;
