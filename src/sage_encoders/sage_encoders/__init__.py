"""sage_encoders: vision/audio puzzle VQ-VAEs, MiniLM language encoder, IRP refinement.

Cores (no rclpy, no torch): vision_core.VisionEncoderCore, audio_core.AudioEncoderCore,
language_core.LanguageEncoderCore; input_ring keeps the newest vision/audio inputs that
the nodes serve to memory (/sage/<modality>/encoder_input). IRP contract: irp (Protocol +
refine). Nodes:
vision_encoder_node, audio_encoder_node, language_encoder_node. Offline tools (torch):
train (`python -m sage_encoders.train vision|audio`), export
(`python -m sage_encoders.export vision|audio|language`), bench (`run_bench`).
"""
