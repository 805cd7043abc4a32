"""SAGE orchestrator: where the kernel spends its limited compute (ATP).

Pure cores (no rclpy): `irp` (the refinement contract), `allocator` (ATP shares and
reallocation), `trust` (learning from refinement outcomes), `metabolic` (the state machine),
`pressure` (Linux memory-pressure readings and their classifier), `effects` (remote parameter
reconciliation), `orchestrator_core` (ties them into one `tick(now)`), `plugins` (in-process
IRP plugins), `persist` (trust across restarts). The node shell is `orchestrator_node`;
parameters are declared once in `orchestrator_params`; `sim` and `bench` drive the core on a
simulated clock. See README.md for the documented rules.
"""
