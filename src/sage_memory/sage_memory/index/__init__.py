"""Recall by similarity: the vector indexes of the stored embeddings and the queries they
answer with the store."""
