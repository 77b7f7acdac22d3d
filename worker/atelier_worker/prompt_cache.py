"""Text-encoder outputs kept for repeated prompts."""

from __future__ import annotations

from typing import Any


class PromptCache:
    """A bounded LRU of text-encoder outputs by (prompt, LoRA scale): a repeated prompt skips CLIP and T5. The
    scale is part of the key because a LoRA with text-encoder layers changes the embeddings. On FLUX.1-dev one
    entry is about 4 MB (512 × 4096 bf16), so the default 32 entries hold about 128 MB on the GPU."""

    def __init__(self, capacity: int) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self.entries: OrderedDict[tuple[str, str, float], tuple[Any, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def embeddings(self, pipe: Any, prompt: str, model_id: str, lora_scale: float) -> tuple[Any, Any]:
        # The model and scale are part of the key: a LoRA with text-encoder layers changes the embeddings.
        key = (prompt, model_id, lora_scale)
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        # The LoRA scale is already written into the adapter slot; None keeps encode_prompt from scaling again.
        embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=pipe._execution_device,
                                               num_images_per_prompt=1, max_sequence_length=512, lora_scale=None)
        self.entries[key] = (embeds, pooled)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return embeds, pooled
