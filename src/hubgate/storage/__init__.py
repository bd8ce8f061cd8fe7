"""Storage behind two small interfaces: metadata (SQL) and content-addressed blobs."""
