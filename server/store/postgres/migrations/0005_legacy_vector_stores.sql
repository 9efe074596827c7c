-- Vector stores still holding an earlier server version's snapshot (their
-- data begins with {"obj":) are found through this partial index, which is
-- empty once they are upgraded: a start checks for them with one lookup.
CREATE INDEX vector_stores_legacy ON vector_stores (id) WHERE substr(data, 1, 7) = '\x7b226f626a223a'::bytea;
