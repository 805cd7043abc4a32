"""Sleep: consolidation of experiences into patterns, and retraining of the encoders on the
stored training inputs in a worker process (torch never loads in the memory node)."""
