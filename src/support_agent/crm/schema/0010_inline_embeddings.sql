-- Keep the searched columns inline in the row (storage MAIN): the embedding (pgvector's default
-- is EXTERNAL) and the full-text vector. A knowledge document row (title, content, 1.5 kB
-- vector, ~1 kB tsvector) passes the 2 kB TOAST threshold, and with the defaults the searched
-- columns could go out of line, so every scanned row cost extra TOAST reads. Measured on the
-- bank's 698 documents (EXPLAIN ANALYZE, warm cache): exact nearest-neighbour scan 4,084 → 175
-- buffers, 6.0 → 1.0 ms; full-text ranking 5.6 → 1.7 ms. The content, read only for the few
-- hits returned, is compressed or moved out of line instead. Existing rows are rewritten.
ALTER TABLE knowledge_documents ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE knowledge_documents ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE resolution_records ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE resolution_records ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE offers ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE offers ALTER COLUMN tsv SET STORAGE MAIN;
UPDATE knowledge_documents SET embedding = embedding::text::vector;
UPDATE resolution_records SET embedding = embedding::text::vector;
UPDATE offers SET embedding = embedding::text::vector WHERE embedding IS NOT NULL;
