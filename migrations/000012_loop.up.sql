-- Closing the loop: every promotion of a model, so a rollback knows what
-- served before, and who asked.
CREATE TABLE model_promotions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A version that once served is history: keep it.
    model_version_id bigint NOT NULL REFERENCES model_versions (id) ON DELETE RESTRICT,
    promoted_at      timestamptz NOT NULL DEFAULT now(),
    -- Who: a token's name, "cli", or "retraining" for the champion/challenger rule.
    promoted_by      text NOT NULL DEFAULT '',
    -- Why, in words ("rollback from ...", the comparison's reason, ...).
    reason           text NOT NULL DEFAULT ''
);

CREATE INDEX model_promotions_promoted_at_idx ON model_promotions (promoted_at, id);

-- The promotions of versions promoted before this migration.
INSERT INTO model_promotions (model_version_id, promoted_at, reason)
SELECT id, promoted_at, 'promoted before promotions were recorded' FROM model_versions WHERE promoted;
