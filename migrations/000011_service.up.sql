-- The service's compose jobs (River, 000003-000010) and templates over the API.

-- Where a composition's environment was materialised, as "<host>:<dir>":
-- the server process that ran its job wrote it there.
ALTER TABLE compositions ADD COLUMN output text;

-- The capacity pool the composition was provisioned from.
ALTER TABLE compositions ADD COLUMN pool text;

-- When a finished composition's environment was torn down: its capacity
-- went back to the pool and its directory was removed. Its history stays.
ALTER TABLE compositions ADD COLUMN released_at timestamptz;

-- A template deleted over the API leaves the catalog but not the history:
-- its versions stay, for the compositions that used them, and a PUT brings
-- it back.
ALTER TABLE templates ADD COLUMN deleted_at timestamptz;
