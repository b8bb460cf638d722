"""The Chinese analyzer (jieba + ontology and knowledge-base dictionaries), the index protocol and its backends
(tantivy embedded, OpenSearch) — arriving with the engines work."""
