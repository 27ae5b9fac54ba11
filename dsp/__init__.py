"""Streaming signal processing: pure numpy/aubio, explicit sample rate and hop, no I/O."""
