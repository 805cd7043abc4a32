"""sage_orchestrator."""
