"""ATLAS's ears and mouth: audio I/O, VAD, STT and TTS. Knows nothing about LLMs."""
