"""sage_memory: SAGE's persistent, salience-gated experience store, recall and sleep."""
