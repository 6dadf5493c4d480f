ALTER TABLE templates DROP COLUMN deleted_at;
ALTER TABLE compositions DROP COLUMN released_at;
ALTER TABLE compositions DROP COLUMN pool;
ALTER TABLE compositions DROP COLUMN output;
