"""Shared pieces of SAGE nodes: parameter specs, diagnostics, stamps, QoS and main()."""
